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
#include "glb_consts.h"
#include "glb_gue.h"
#include "glb_parse.h"
#include "proxy_defs.h"

/* This proxy's identity (struct proxy_config, one entry). */
BPF_ARRAY(proxy_cfg, struct proxy_config, 1);
/* Who may send us GUE: directors and the other proxies (struct proxy_sender). */
BPF_HASH(proxy_senders, __be32, struct proxy_sender, 1024);
/* Acceptable inner destinations: VIPs, VIP prefixes and our own address (struct proxy_dst). */
BPF_LPM_TRIE(proxy_dsts, struct proxy_dst_key, struct proxy_dst, 4096);
/* Per-CPU packet counters indexed by enum proxy_counter (glb_reasons.h); the agent sums the CPUs. */
BPF_PERCPU_ARRAY(proxy_stats, __u64, PROXY_C_MAX);

/* The outer headers of a GUE packet addressed to this proxy, validated by proxy_gue(). */
struct proxy_gue {
	struct ethhdr *eth;
	struct iphdr *oip;
	struct udphdr *udp;
	struct glb_gue_priv *priv; /* the hop list follows it */
	void *inner;               /* the inner IP header */
	__u32 strip;               /* bytes from the end of the Ethernet header to the inner packet */
	__u32 inner_room;          /* bytes of inner packet the outer lengths vouch for */
	__u32 hop_count;
	__u32 next_hop;
	__be32 self;               /* this proxy's address */
	__u8 proto;                /* GUE proto: IPPROTO_IPIP or IPPROTO_IPV6 */
};

/* What to do with the inner packet: accept here or drop, with the counter that records it
 * (enum proxy_counter), or "not ours" (second chance). Packed in one u32. */
#define PROXY_ACCEPT(counter) (((__u32)XDP_PASS << 8) | (counter))
#define PROXY_DROP(counter) (((__u32)XDP_DROP << 8) | (counter))
#define PROXY_UNKNOWN 0 /* counter 0 is rx_gue, never a decision */

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

/* Is the inner destination at `daddr` (in the packet) one we serve? The trie holds IPv4 as
 * IPv4-mapped IPv6 (::ffff:a.b.c.d). */
static __always_inline int inner_dst_ok(const void *daddr, const int alen)
{
	struct proxy_dst_key key = {};

	key.prefixlen = 8 * sizeof(key.addr); /* exact address; the trie finds covering prefixes */
	if (GLB_IS_V4(alen)) {
		key.addr[10] = 0xff; /* ::ffff:a.b.c.d (RFC 4291 IPv4-mapped) */
		key.addr[11] = 0xff;
	}
	__builtin_memcpy(&key.addr[16 - alen], (const __u32 *)daddr, alen);
	return proxy_dsts.lookup(&key) != NULL;
}

/* Socket tuples for the lookups below, for both families. */
/* Fills the socket tuple (bpf_sock_tuple's ipv4 and ipv6 layouts are both saddr, daddr,
 * sport, dport) from addresses in the packet; returns the tuple length to pass to the
 * socket lookup helpers. */
static __always_inline __u32 glb_sock_tuple(struct bpf_sock_tuple *t, const void *saddr, const void *daddr,
					    __be16 sport, __be16 dport, const int alen)
{
	__be16 *ports = (void *)t + 2 * alen;

	__builtin_memcpy((__u32 *)t, (const __u32 *)saddr, alen);
	__builtin_memcpy((__u32 *)((void *)t + alen), (const __u32 *)daddr, alen);
	ports[0] = sport;
	ports[1] = dport;
	return 2 * alen + 2 * sizeof(__be16);
}
_Static_assert(sizeof(((struct bpf_sock_tuple *)0)->ipv4) == 2 * 4 + 4, "bpf_sock_tuple.ipv4 layout");
_Static_assert(sizeof(((struct bpf_sock_tuple *)0)->ipv6) == 2 * 16 + 4, "bpf_sock_tuple.ipv6 layout");

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

/* Second chance: send the unchanged GUE packet on to `next`, from this proxy.
 * The caller checked next_hop < hop_count and that the hop is not ourselves.
 */
static __always_inline int forward(struct xdp_md *ctx, const struct proxy_gue *g, __be32 next)
{
	struct ethhdr *eth = g->eth;
	struct iphdr *oip = g->oip;
	struct udphdr *udp = g->udp;
	struct glb_gue_priv *priv = g->priv;
	__be32 self = g->self;
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
	fib.ifindex = GLB_LOOPBACK_IFINDEX;
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

/* Outer headers: is this GUE for us, and is it well-formed? Returns -1 and fills `g` for a
 * valid GUE packet from an allowed sender; otherwise the XDP action (pass: not GUE for us,
 * untouched; drop: GUE for us but invalid, counted). */
static __always_inline int proxy_gue(struct xdp_md *ctx, struct proxy_gue *g)
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
	__u32 zero = 0, ohl, hlen, udp_len;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	oip = (void *)(eth + 1);
	if ((void *)(oip + 1) > data_end || oip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	cfg = proxy_cfg.lookup(&zero);
	if (!cfg || cfg->address == 0 || oip->daddr != cfg->address)
		return XDP_PASS; /* not configured yet, or not addressed to this proxy */
	ohl = glb_ip_hdr_len(oip, 4);
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
	if (oip->version != 4 || (oip->frag_off & bpf_htons(GLB_IP_MF | GLB_IP_OFFSET)))
		return drop(PROXY_C_DROP_OUTER); /* directors set DF; fragments cannot be parsed */
	if ((void *)oip + glb_ip_len(oip, 4) > data_end)
		return drop(PROXY_C_DROP_OUTER);
	udp_len = bpf_ntohs(udp->len);
	if (udp_len != bpf_ntohs(oip->tot_len) - ohl)
		return drop(PROXY_C_DROP_OUTER);

	sender = proxy_senders.lookup(&oip->saddr);
	if (!sender)
		return drop(PROXY_C_DROP_SENDER);

	gue = (void *)(udp + 1);
	priv = (void *)(gue + 1);
	if ((void *)(priv + 1) > data_end || udp_len < sizeof(*udp) + GLB_GUE_HDR_LEN(0))
		return drop(PROXY_C_DROP_GUE_LENGTH);
	if ((gue->ver_c_hlen & (GLB_GUE_VERSION_MASK | GLB_GUE_C_BIT)) || gue->flags)
		return drop(PROXY_C_DROP_GUE_VERSION);
	if (gue->proto != IPPROTO_IPIP && gue->proto != IPPROTO_IPV6)
		return drop(PROXY_C_DROP_GUE_PROTO);
	if (priv->private_type)
		return drop(PROXY_C_DROP_GUE_PRIVATE);
	g->hop_count = priv->hop_count;
	g->next_hop = priv->next_hop;
	hlen = gue->ver_c_hlen & GLB_GUE_HLEN_MASK;
	if (g->hop_count > GLB_GUE_MAX_HOPS || hlen != GLB_GUE_HLEN(g->hop_count))
		return drop(PROXY_C_DROP_GUE_LENGTH);
	if (g->next_hop > g->hop_count)
		return drop(PROXY_C_DROP_GUE_NEXT_HOP);
	/* Another proxy only ever forwards (it increments next_hop first). */
	if (!(sender->roles & PROXY_SENDER_DIRECTOR) && g->next_hop == 0)
		return drop(PROXY_C_DROP_SENDER_ROLE);
	if (udp_len < sizeof(*udp) + sizeof(*gue) + hlen * 4)
		return drop(PROXY_C_DROP_GUE_LENGTH);

	g->eth = eth;
	g->oip = oip;
	g->udp = udp;
	g->priv = priv;
	g->inner = (void *)(priv + 1) + g->hop_count * 4;
	g->strip = ohl + sizeof(*udp) + sizeof(*gue) + hlen * 4;
	g->inner_room = udp_len - sizeof(*udp) - sizeof(*gue) - hlen * 4;
	g->self = cfg->address;
	g->proto = gue->proto;
	return -1;
}

/* Bytes of an ICMP error's quote that must be in the frame before its protocol is read:
 * the IPv4 header (its ports sit behind a variable IHL), the IPv6 header and the ports. */
#define PROXY_QUOTE_NEED(alen) (GLB_IS_V4(alen) ? sizeof(struct iphdr) : sizeof(struct ipv6hdr) + 4)

/* ICMP inside GUE: a PMTU error (IPv4 frag-needed, ICMPv6 packet too big) quoting TCP is
 * decided on the connection it quotes (a packet we sent: VIP -> client, so the quoted tuple
 * is reversed); any other ICMP is accepted here (echo: the director's health probe).
 * `l4_len` is the inner packet's own length after its IP header: every byte read must be
 * inside it, not merely in the frame after it. */
static __always_inline __u32 proxy_icmp(struct xdp_md *ctx, void *icmp, __u32 l4_len, void *data_end,
					 const int alen)
{
	struct bpf_sock_tuple tuple;
	void *q = icmp + GLB_ICMP_HDR_LEN;
	__u16 *ports;
	__u32 hl, tlen;

	if (q > data_end || l4_len < GLB_ICMP_HDR_LEN)
		return PROXY_DROP(PROXY_C_DROP_INNER);
	if (!glb_icmp_is_ptb(icmp, alen))
		return PROXY_ACCEPT(PROXY_C_ACCEPT_ICMP);
	hl = glb_quote_hdr_len(q, data_end, PROXY_QUOTE_NEED(alen), alen);
	if (!hl || l4_len < GLB_ICMP_HDR_LEN + PROXY_QUOTE_NEED(alen))
		return PROXY_DROP(PROXY_C_DROP_INNER);
	if (glb_ip_proto(q, alen) != IPPROTO_TCP)
		return PROXY_ACCEPT(PROXY_C_ACCEPT_ICMP);
	ports = q + hl;
	if ((void *)(ports + 2) > data_end || l4_len < GLB_ICMP_HDR_LEN + hl + 4)
		return PROXY_DROP(PROXY_C_DROP_INNER);
	__builtin_memset(&tuple, 0, sizeof(tuple));
	tlen = glb_sock_tuple(&tuple, q + GLB_IP_DADDR_OFF(alen), q + GLB_IP_SADDR_OFF(alen), ports[1], ports[0], alen);
	return known_locally(ctx, &tuple, tlen, NULL, 0, NULL, 0) ? PROXY_ACCEPT(PROXY_C_ACCEPT_PTB_KNOWN)
								  : PROXY_UNKNOWN;
}

/* The decision on the inner packet (either family): see the table at the top of this file. */
static __always_inline __u32 proxy_inner(struct xdp_md *ctx, const struct proxy_gue *g, const int alen)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *ip = g->inner, *l4;
	struct bpf_sock_tuple tuple;
	struct tcphdr *th;
	__u32 hl, len, l4_len, tlen, verdict;
	__u8 proto;

	if (ip + GLB_IP_HDR_LEN(alen) > data_end || glb_ip_version(ip) != GLB_IP_VERSION(alen))
		return PROXY_DROP(PROXY_C_DROP_INNER);
	hl = glb_ip_hdr_len(ip, alen);
	len = glb_ip_len(ip, alen);
	if (hl < GLB_IP_HDR_LEN(alen) || len < hl || len > g->inner_room)
		return PROXY_DROP(PROXY_C_DROP_INNER);
	l4_len = len - hl; /* decisions read only the inner packet, not bytes that follow it */
	if (!inner_dst_ok(ip + GLB_IP_DADDR_OFF(alen), alen))
		return PROXY_DROP(PROXY_C_DROP_INNER_DST);
	proto = glb_ip_proto(ip, alen);
	/* Non-first fragments carry no ports (IPv6: any fragment header, not walked). */
	if (GLB_IS_V4(alen) ? (((struct iphdr *)ip)->frag_off & bpf_htons(GLB_IP_OFFSET)) : proto == IPPROTO_FRAGMENT)
		return PROXY_ACCEPT(PROXY_C_ACCEPT_FRAGMENT);
	if (proto == IPPROTO_UDP)
		return PROXY_ACCEPT(PROXY_C_ACCEPT_UDP);
	l4 = ip + hl;
	if (proto == GLB_IPPROTO_ICMP(alen))
		return proxy_icmp(ctx, l4, l4_len, data_end, alen);
	if (proto != IPPROTO_TCP)
		return PROXY_DROP(PROXY_C_DROP_INNER_PROTO);
	th = l4;
	if ((void *)(th + 1) > data_end || l4_len < sizeof(*th) || th->doff < sizeof(*th) / 4)
		return PROXY_DROP(PROXY_C_DROP_INNER);
	if (th->syn && !th->ack)
		return PROXY_ACCEPT(PROXY_C_ACCEPT_SYN);
	__builtin_memset(&tuple, 0, sizeof(tuple));
	tlen = glb_sock_tuple(&tuple, ip + GLB_IP_SADDR_OFF(alen), ip + GLB_IP_DADDR_OFF(alen), th->source,
			      th->dest, alen);
	verdict = known_locally(ctx, &tuple, tlen, ip, GLB_IP_HDR_LEN(alen), th, 1);
	return verdict ? PROXY_ACCEPT(verdict) : PROXY_UNKNOWN;
}

/* Not ours: give the next proxy in the list its second chance, if there is one. */
static __always_inline int proxy_second_chance(struct xdp_md *ctx, const struct proxy_gue *g, __u16 ethertype)
{
	void *data_end = (void *)(long)ctx->data_end;
	__be32 *hop;

	if (g->next_hop >= g->hop_count)
		return accept_here(ctx, g->strip, ethertype, PROXY_C_ACCEPT_LAST_RESORT);
	hop = (void *)(g->priv + 1) + (g->next_hop & (GLB_GUE_MAX_HOPS - 1)) * 4;
	if ((void *)(hop + 1) > data_end)
		return drop(PROXY_C_DROP_GUE_LENGTH);
	if (*hop == g->self)
		return accept_here(ctx, g->strip, ethertype, PROXY_C_ACCEPT_SELF_HOP);
	return forward(ctx, g, *hop);
}

/* A valid GUE packet of inner family `alen`: decide, then accept, drop or pass it on. */
static __always_inline int proxy_decap(struct xdp_md *ctx, const struct proxy_gue *g, const int alen)
{
	__u32 d = proxy_inner(ctx, g, alen);

	if (d == PROXY_UNKNOWN)
		return proxy_second_chance(ctx, g, GLB_ETH_P(alen));
	if ((d >> 8) == XDP_DROP)
		return drop(d & 0xff);
	return accept_here(ctx, g->strip, GLB_ETH_P(alen), d & 0xff);
}

int xdp_glb_proxy(struct xdp_md *ctx)
{
	struct proxy_gue g;
	int rc = proxy_gue(ctx, &g);

	if (rc >= 0)
		return rc;
	if (g.proto == IPPROTO_IPIP)
		return proxy_decap(ctx, &g, 4);
	return proxy_decap(ctx, &g, 16);
}
