/* GLB proxy data plane: GUE decapsulation with "second chance" forwarding, in XDP.
 *
 * A director hashes each client packet to a primary proxy and names a secondary in the GUE
 * hop list. This program runs on the proxy's interface and, for each GUE packet addressed
 * to this proxy, decides:
 *
 *   inner TCP SYN                              -> accept here (new connections start here)
 *   inner TCP of a connection this host knows  -> accept here
 *   otherwise, if next_hop < hop_count         -> forward to hops[next_hop] (second chance)
 *   otherwise                                  -> accept here (last resort; the stack answers)
 *   inner UDP, ICMP other than PMTU errors     -> accept here (no connection state)
 *   ICMP frag-needed / packet-too-big          -> decided on the TCP connection it quotes
 *
 * "Accept" strips outer Ethernet+IPv4+UDP+GUE (with hops), writes a fresh Ethernet header
 * for the inner family and returns XDP_PASS: the kernel sees the client's original packet
 * to the VIP (bound on loopback) and replies straight to the client (DSR). No fou/GUE
 * kernel module is involved.
 *
 * Why XDP and not tc: everything the decision needs is reachable from XDP.
 * bpf_skc_lookup_tcp() (unlike bpf_sk_lookup_tcp()) returns the socket-common object it
 * finds in the kernel's TCP hash tables as is: full sockets (ESTABLISHED, FIN_WAIT*, ...),
 * request sockets (TCP_NEW_SYN_RECV, a handshake in progress without syncookies), TIME_WAIT
 * sockets, and, when no connection matches, the listener. A listener is NOT a known
 * connection: the ACK is ours only if it carries a valid SYN cookie, which
 * bpf_tcp_check_syncookie() verifies exactly like the stack would (it only says yes if this
 * listener has recently sent cookies, i.e. its SYN queue overflowed or tcp_syncookies=2).
 * Those are the same three sources of truth the upstream iptables module used (established
 * hash, SYN_RECV, cookie), without conntrack: since Linux 4.4 a half-open connection lives in
 * the established hash as a request socket, so no conntrack lookup is needed. XDP also lets
 * a second-chance forward leave with XDP_TX before an skb exists, which is the hot path when
 * proxies are added or removed. tc would only add bpf_redirect_neigh() (neighbour resolution
 * in the program); we get that property from "managed" neighbour entries the agent installs
 * for the other proxies instead (see docs/proxy-dataplane.md).
 *
 * Lookups happen in the network namespace of the receiving device (BPF_F_CURRENT_NETNS), so
 * the program must run on the interface of the namespace where the VIP sockets live.
 *
 * Only untagged Ethernet carrying IPv4 GUE is handled; everything else, including every
 * non-GUE packet, is passed to the kernel untouched.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/in.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>
#include <uapi/linux/udp.h>
#include <uapi/linux/tcp.h>
#include <uapi/linux/icmp.h>
#include <uapi/linux/icmpv6.h>

#include "glb_gue.h"
#include "proxy_defs.h"
#include "glb_verifier.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

#define IP_MF_BIT 0x2000
#define IP_OFFSET_MASK 0x1fff
#define IPV6_NEXTHDR_FRAGMENT 44
#define ICMP_V4_DEST_UNREACH 3
#define ICMP_V4_FRAG_NEEDED 4
#define ICMP_V6_PKT_TOOBIG 2
#define LOOPBACK_IFINDEX 1 /* the loopback device has ifindex 1 in every namespace */

/* This proxy's identity (struct proxy_config, one entry). */
BPF_ARRAY(proxy_cfg, struct proxy_config, 1);
/* Who may send us GUE: directors and the other proxies (struct proxy_sender). */
BPF_HASH(proxy_senders, __be32, struct proxy_sender, 1024);
/* Acceptable inner destinations: VIPs, VIP prefixes and our own address (struct proxy_dst). */
BPF_LPM_TRIE(proxy_dsts, struct proxy_dst_key, struct proxy_dst, 4096);
/* Per-CPU packet counters indexed by enum proxy_counter; the agent sums the CPUs. */
BPF_PERCPU_ARRAY(proxy_stats, __u64, PROXY_C_MAX);
/* Digest of the build that is attached (struct proxy_build), for adoption on restart. */
BPF_ARRAY(proxy_build, struct proxy_build, 1);

static __always_inline void count(__u32 idx)
{
	__u64 *c = proxy_stats.lookup(&idx);

	if (c)
		*c += 1;
}

static __always_inline int drop(__u32 idx)
{
	count(idx);
	return XDP_DROP;
}

/* One's-complement incremental checksum update (RFC 1624, eqn. 3) for a 16-bit word that
 * changes from old to new. Works on words as stored in memory, so byte order cancels out.
 */
static __always_inline void csum_replace16(__u16 *sum, __u16 old, __u16 new)
{
	__u32 c = (__u16)~*sum;

	c += (__u16)~old;
	c += new;
	c = (c & 0xffff) + (c >> 16);
	c = (c & 0xffff) + (c >> 16);
	*sum = ~c;
}

static __always_inline void csum_replace32(__u16 *sum, __u32 old, __u32 new)
{
	csum_replace16(sum, old & 0xffff, new & 0xffff);
	csum_replace16(sum, old >> 16, new >> 16);
}

/* Is the inner destination one we serve? addr points at 4 or 16 bytes in the packet. */
static __always_inline int inner_dst_ok_v4(__be32 daddr)
{
	struct proxy_dst_key key = {};

	key.prefixlen = 128;
	key.addr[10] = 0xff;
	key.addr[11] = 0xff;
	__builtin_memcpy(&key.addr[12], &daddr, 4);
	return proxy_dsts.lookup(&key) != NULL;
}

static __always_inline int inner_dst_ok_v6(struct in6_addr *daddr)
{
	struct proxy_dst_key key = {};

	key.prefixlen = 128;
	__builtin_memcpy(key.addr, daddr, 16);
	return proxy_dsts.lookup(&key) != NULL;
}

/* Does this host own the TCP connection of tuple (client -> VIP)?
 * Returns the accept counter to use, or 0 if the connection is unknown here.
 * iph/th are the inner headers, used only for the syncookie check (check_cookie != 0).
 */
static __always_inline __u32 known_locally(struct xdp_md *ctx, struct bpf_sock_tuple *tuple,
					   __u32 tuple_len, void *iph, __u32 iph_len,
					   struct tcphdr *th, int check_cookie)
{
	struct bpf_sock *sk;
	__u32 verdict = 0;
	__u32 state;

	sk = bpf_skc_lookup_tcp(ctx, tuple, tuple_len, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	state = sk->state;
	if (state == BPF_TCP_NEW_SYN_RECV) {
		verdict = PROXY_C_ACCEPT_REQUEST;
	} else if (state == BPF_TCP_TIME_WAIT) {
		verdict = PROXY_C_ACCEPT_TIME_WAIT;
	} else if (state != BPF_TCP_LISTEN) {
		verdict = PROXY_C_ACCEPT_ESTABLISHED;
	} else if (check_cookie) {
		/* Only a listener matched: the packet belongs to no connection here unless it
		 * completes a handshake we answered with a cookie. */
		if (bpf_tcp_check_syncookie(sk, iph, iph_len, th, sizeof(struct tcphdr)) == 0)
			verdict = PROXY_C_ACCEPT_SYNCOOKIE;
	}
	bpf_sk_release(sk);
	return verdict;
}

/* Hand the inner packet to the kernel: drop outer IPv4+UDP+GUE (strip bytes after the
 * Ethernet header) and rebuild the Ethernet header in front of the inner packet, keeping the
 * MAC addresses (the frame was addressed to us) and setting the inner ethertype.
 */
static __always_inline int accept_here(struct xdp_md *ctx, __u32 strip, __u16 inner_ethertype,
				       __u32 reason)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	unsigned char macs[2 * ETH_ALEN];

	if ((void *)(eth + 1) > data_end)
		return drop(PROXY_C_DROP_DECAP);
	__builtin_memcpy(macs, eth, sizeof(macs));
	if (bpf_xdp_adjust_head(ctx, (int)strip))
		return drop(PROXY_C_DROP_DECAP);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return drop(PROXY_C_DROP_DECAP);
	__builtin_memcpy(eth, macs, sizeof(macs));
	eth->h_proto = bpf_htons(inner_ethertype);
	count(reason);
	return XDP_PASS;
}

/* Second chance: send the unchanged GUE packet on to hops[next_hop], from this proxy.
 * The caller checked next_hop < hop_count and that the hop is not ourselves.
 */
static __always_inline int forward(struct xdp_md *ctx, struct ethhdr *eth, struct iphdr *oip,
				   struct udphdr *udp, struct glb_gue_priv *priv, __be32 self,
				   __be32 next)
{
	struct bpf_fib_lookup fib = {};
	__u16 old_word, new_word;
	__u8 ttl_proto[2];
	int rc;

	fib.family = AF_INET;
	fib.l4_protocol = IPPROTO_UDP;
	fib.sport = udp->source;
	fib.dport = udp->dest;
	fib.tot_len = bpf_ntohs(oip->tot_len);
	fib.ipv4_src = self;
	fib.ipv4_dst = next;
	/* Look the route up as for a packet this host originates: "received on loopback".
	 * bpf_fib_lookup() insists that the interface it is given has IPv4 forwarding on;
	 * loopback forwarding is inert (nothing arrives on lo that is not already routed), so
	 * the agent turns it on there instead of making the proxy's real interface a router.
	 * It also makes policy rules written for local traffic ("iif lo") apply. */
	fib.ifindex = LOOPBACK_IFINDEX;
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_FWD_DISABLED)
		return drop(PROXY_C_DROP_FWD_DISABLED);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return drop(PROXY_C_DROP_FWD_FIB);

	/* GUE: next_hop += 1. It shares a 16-bit word with hop_count in the UDP checksum. */
	__builtin_memcpy(&old_word, &priv->next_hop, 2);
	priv->next_hop += 1;
	__builtin_memcpy(&new_word, &priv->next_hop, 2);
	if (udp->check) {
		/* Optional in IPv4; directors send 0. If a sender filled it in, keep it right:
		 * pseudo-header src (old sender -> us) and dst (us -> next hop), next_hop. */
		csum_replace16(&udp->check, old_word, new_word);
		csum_replace32(&udp->check, oip->saddr, self);
		csum_replace32(&udp->check, oip->daddr, next);
		if (udp->check == 0)
			udp->check = 0xffff;
	}

	/* Outer IPv4: this proxy originates the forward (src = us, dst = next hop, fresh TTL;
	 * the hop list, not the TTL, bounds the chain). */
	__builtin_memcpy(ttl_proto, &oip->ttl, 2);
	__builtin_memcpy(&old_word, ttl_proto, 2);
	ttl_proto[0] = GLB_IPV4_TTL;
	__builtin_memcpy(&new_word, ttl_proto, 2);
	oip->ttl = GLB_IPV4_TTL;
	csum_replace16(&oip->check, old_word, new_word);
	csum_replace32(&oip->check, oip->saddr, self);
	csum_replace32(&oip->check, oip->daddr, next);
	oip->saddr = self;
	oip->daddr = next;

	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	if (fib.ifindex == ctx->ingress_ifindex) {
		count(PROXY_C_FORWARDED_TX);
		return XDP_TX;
	}
	count(PROXY_C_FORWARDED_REDIRECT);
	return bpf_redirect(fib.ifindex, 0);
}

int xdp_glb_proxy(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct proxy_config *cfg;
	struct proxy_sender *sender;
	struct iphdr *oip;
	struct udphdr *udp;
	struct glb_gue_base *gue;
	struct glb_gue_priv *priv;
	struct bpf_sock_tuple tuple;
	struct tcphdr *th;
	void *inner;
	__u32 zero = 0;
	__u32 ohl, hlen, hop_count, next_hop, strip, udp_len, inner_room, verdict;
	__u32 l4_len; /* bytes after the inner IP header, per the inner packet's own length */
	__u16 ethertype;
	__u8 l4proto;
	__be32 self;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	oip = (void *)(eth + 1);
	if ((void *)(oip + 1) > data_end || oip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	cfg = proxy_cfg.lookup(&zero);
	if (!cfg || cfg->address == 0 || oip->daddr != cfg->address)
		return XDP_PASS; /* not configured yet, or not addressed to this proxy */
	self = cfg->address;
	ohl = oip->ihl * 4;
	if (ohl < sizeof(*oip))
		return XDP_PASS; /* not a valid IPv4 header: the kernel drops it */
	udp = (void *)oip + ohl;
	if ((void *)(udp + 1) > data_end)
		return XDP_PASS;
	if (udp->dest != cfg->gue_port)
		return XDP_PASS;

	/* From here on the packet is GUE for us: it is either used or dropped, never passed
	 * whole (the kernel would only answer it with ICMP port unreachable). */
	count(PROXY_C_RX_GUE);
	if (oip->version != 4 || (oip->frag_off & bpf_htons(IP_MF_BIT | IP_OFFSET_MASK)))
		return drop(PROXY_C_DROP_OUTER); /* directors set DF; fragments cannot be parsed */
	if ((void *)oip + GLB_BOUND16(bpf_ntohs(oip->tot_len)) > data_end)
		return drop(PROXY_C_DROP_OUTER);
	udp_len = bpf_ntohs(udp->len);
	if (udp_len != bpf_ntohs(oip->tot_len) - ohl)
		return drop(PROXY_C_DROP_OUTER);

	sender = proxy_senders.lookup(&oip->saddr);
	if (!sender)
		return drop(PROXY_C_DROP_SENDER);

	gue = (void *)(udp + 1);
	priv = (void *)(gue + 1);
	if ((void *)(priv + 1) > data_end || udp_len < sizeof(*udp) + sizeof(*gue) + sizeof(*priv))
		return drop(PROXY_C_DROP_GUE_LENGTH);
	if ((gue->ver_c_hlen & (GLB_GUE_VERSION_MASK | GLB_GUE_C_BIT)) || gue->flags)
		return drop(PROXY_C_DROP_GUE_VERSION);
	if (gue->proto == IPPROTO_IPIP)
		ethertype = ETH_P_IP;
	else if (gue->proto == IPPROTO_IPV6)
		ethertype = ETH_P_IPV6;
	else
		return drop(PROXY_C_DROP_GUE_PROTO);
	if (priv->private_type)
		return drop(PROXY_C_DROP_GUE_PRIVATE);
	hop_count = priv->hop_count;
	next_hop = priv->next_hop;
	hlen = gue->ver_c_hlen & GLB_GUE_HLEN_MASK;
	if (hop_count > GLB_GUE_MAX_HOPS || hlen != hop_count + 1)
		return drop(PROXY_C_DROP_GUE_LENGTH);
	if (next_hop > hop_count)
		return drop(PROXY_C_DROP_GUE_NEXT_HOP);
	/* Another proxy only ever forwards (it increments next_hop first). */
	if (!(sender->roles & PROXY_SENDER_DIRECTOR) && next_hop == 0)
		return drop(PROXY_C_DROP_SENDER_ROLE);

	inner = (void *)(priv + 1) + hop_count * 4;
	strip = ohl + sizeof(*udp) + sizeof(*gue) + hlen * 4;
	if (udp_len < sizeof(*udp) + sizeof(*gue) + hlen * 4)
		return drop(PROXY_C_DROP_GUE_LENGTH);
	/* Bytes of inner packet the outer headers vouch for. */
	inner_room = udp_len - sizeof(*udp) - sizeof(*gue) - hlen * 4;

	__builtin_memset(&tuple, 0, sizeof(tuple));
	if (ethertype == ETH_P_IP) {
		struct iphdr *iip = inner;
		__u32 ihl;

		if ((void *)(iip + 1) > data_end || iip->version != 4 || iip->ihl < 5)
			return drop(PROXY_C_DROP_INNER);
		ihl = iip->ihl * 4;
		if (bpf_ntohs(iip->tot_len) < ihl || bpf_ntohs(iip->tot_len) > inner_room)
			return drop(PROXY_C_DROP_INNER);
		/* Decisions read only the inner packet, not bytes that follow it in the frame. */
		l4_len = bpf_ntohs(iip->tot_len) - ihl;
		if (!inner_dst_ok_v4(iip->daddr))
			return drop(PROXY_C_DROP_INNER_DST);
		if (iip->frag_off & bpf_htons(IP_OFFSET_MASK))
			return accept_here(ctx, strip, ethertype, PROXY_C_ACCEPT_FRAGMENT);
		l4proto = iip->protocol;
		if (l4proto == IPPROTO_UDP)
			return accept_here(ctx, strip, ethertype, PROXY_C_ACCEPT_UDP);
		if (l4proto == IPPROTO_ICMP) {
			struct icmphdr *icmp = (void *)iip + ihl;
			struct iphdr *eip;
			__u16 *ports;

			if ((void *)(icmp + 1) > data_end || l4_len < sizeof(*icmp))
				return drop(PROXY_C_DROP_INNER);
			if (icmp->type != ICMP_V4_DEST_UNREACH || icmp->code != ICMP_V4_FRAG_NEEDED)
				return accept_here(ctx, strip, ethertype, PROXY_C_ACCEPT_ICMP);
			/* Frag-needed quotes a packet we sent: VIP -> client. Its connection is
			 * ours if the reversed quoted tuple is. The quote holds >= 8 bytes of L4. */
			eip = (void *)(icmp + 1);
			if ((void *)(eip + 1) > data_end || l4_len < sizeof(*icmp) + sizeof(*eip) ||
			    eip->version != 4 || eip->ihl < 5)
				return drop(PROXY_C_DROP_INNER);
			if (eip->protocol != IPPROTO_TCP)
				return accept_here(ctx, strip, ethertype, PROXY_C_ACCEPT_ICMP);
			ports = (void *)eip + eip->ihl * 4;
			if ((void *)(ports + 2) > data_end || l4_len < sizeof(*icmp) + eip->ihl * 4 + 4)
				return drop(PROXY_C_DROP_INNER);
			tuple.ipv4.saddr = eip->daddr;
			tuple.ipv4.daddr = eip->saddr;
			tuple.ipv4.sport = ports[1];
			tuple.ipv4.dport = ports[0];
			verdict = known_locally(ctx, &tuple, sizeof(tuple.ipv4), NULL, 0, NULL, 0);
			if (verdict)
				return accept_here(ctx, strip, ethertype, PROXY_C_ACCEPT_PTB_KNOWN);
			goto unknown;
		}
		if (l4proto != IPPROTO_TCP)
			return drop(PROXY_C_DROP_INNER_PROTO);
		th = (void *)iip + ihl;
		if ((void *)(th + 1) > data_end || l4_len < sizeof(*th) || th->doff < 5)
			return drop(PROXY_C_DROP_INNER);
		if (th->syn && !th->ack)
			return accept_here(ctx, strip, ethertype, PROXY_C_ACCEPT_SYN);
		tuple.ipv4.saddr = iip->saddr;
		tuple.ipv4.daddr = iip->daddr;
		tuple.ipv4.sport = th->source;
		tuple.ipv4.dport = th->dest;
		verdict = known_locally(ctx, &tuple, sizeof(tuple.ipv4), iip, sizeof(*iip), th, 1);
		if (verdict)
			return accept_here(ctx, strip, ethertype, verdict);
	} else {
		struct ipv6hdr *ip6 = inner;

		if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
			return drop(PROXY_C_DROP_INNER);
		if (sizeof(*ip6) + bpf_ntohs(ip6->payload_len) > inner_room)
			return drop(PROXY_C_DROP_INNER);
		if (!inner_dst_ok_v6(&ip6->daddr))
			return drop(PROXY_C_DROP_INNER_DST);
		l4_len = bpf_ntohs(ip6->payload_len);
		l4proto = ip6->nexthdr;
		if (l4proto == IPV6_NEXTHDR_FRAGMENT)
			return accept_here(ctx, strip, ethertype, PROXY_C_ACCEPT_FRAGMENT);
		if (l4proto == IPPROTO_UDP)
			return accept_here(ctx, strip, ethertype, PROXY_C_ACCEPT_UDP);
		if (l4proto == IPPROTO_ICMPV6) {
			struct icmp6hdr *icmp6 = (void *)(ip6 + 1);
			struct ipv6hdr *eip6;
			__u16 *ports;

			if ((void *)(icmp6 + 1) > data_end || l4_len < sizeof(*icmp6))
				return drop(PROXY_C_DROP_INNER);
			if (icmp6->icmp6_type != ICMP_V6_PKT_TOOBIG)
				return accept_here(ctx, strip, ethertype, PROXY_C_ACCEPT_ICMP);
			eip6 = (void *)(icmp6 + 1);
			ports = (void *)(eip6 + 1);
			if ((void *)(ports + 2) > data_end || l4_len < sizeof(*icmp6) + sizeof(*eip6) + 4 ||
			    eip6->version != 6)
				return drop(PROXY_C_DROP_INNER);
			if (eip6->nexthdr != IPPROTO_TCP)
				return accept_here(ctx, strip, ethertype, PROXY_C_ACCEPT_ICMP);
			__builtin_memcpy(tuple.ipv6.saddr, &eip6->daddr, 16);
			__builtin_memcpy(tuple.ipv6.daddr, &eip6->saddr, 16);
			tuple.ipv6.sport = ports[1];
			tuple.ipv6.dport = ports[0];
			verdict = known_locally(ctx, &tuple, sizeof(tuple.ipv6), NULL, 0, NULL, 0);
			if (verdict)
				return accept_here(ctx, strip, ethertype, PROXY_C_ACCEPT_PTB_KNOWN);
			goto unknown;
		}
		if (l4proto != IPPROTO_TCP)
			return drop(PROXY_C_DROP_INNER_PROTO);
		th = (void *)(ip6 + 1);
		if ((void *)(th + 1) > data_end || l4_len < sizeof(*th) || th->doff < 5)
			return drop(PROXY_C_DROP_INNER);
		if (th->syn && !th->ack)
			return accept_here(ctx, strip, ethertype, PROXY_C_ACCEPT_SYN);
		__builtin_memcpy(tuple.ipv6.saddr, &ip6->saddr, 16);
		__builtin_memcpy(tuple.ipv6.daddr, &ip6->daddr, 16);
		tuple.ipv6.sport = th->source;
		tuple.ipv6.dport = th->dest;
		verdict = known_locally(ctx, &tuple, sizeof(tuple.ipv6), ip6, sizeof(*ip6), th, 1);
		if (verdict)
			return accept_here(ctx, strip, ethertype, verdict);
	}

unknown:
	/* Not ours. Give the next proxy in the list its second chance, if there is one. */
	if (next_hop >= hop_count)
		return accept_here(ctx, strip, ethertype, PROXY_C_ACCEPT_LAST_RESORT);
	{
		__be32 *hop = (void *)(priv + 1) + (next_hop & 0x7) * 4;
		__be32 next;

		if ((void *)(hop + 1) > data_end)
			return drop(PROXY_C_DROP_GUE_LENGTH);
		next = *hop;
		if (next == self)
			return accept_here(ctx, strip, ethertype, PROXY_C_ACCEPT_SELF_HOP);
		return forward(ctx, eth, oip, udp, priv, self, next);
	}
}
