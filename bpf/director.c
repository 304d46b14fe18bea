/* GLB director: XDP program that maps each packet for a VIP to a row of its service's
 * forwarding table and sends it, GUE-encapsulated, to the row's primary proxy with the
 * secondary as the single GUE hop. Everything else is left to the kernel (XDP_PASS).
 *
 * Wire format (bpf/include/glb_gue.h), identical to upstream glb-director so either side can
 * be mixed with upstream: Ethernet (gateway MAC <- our MAC, the arrival VLAN tag kept) |
 * IPv4 (DF, TTL 64, id 0, our source address -> primary) | UDP (src 0x8000 | ((hash ^ hint)
 * & 0x7fff), dst 19523, checksum 0) | GUE (hlen 2, proto 4 or 41) | GLB private data
 * (next_hop 0, hop_count 1) | secondary | the original IP packet.
 *
 * Packet hash: SipHash-2-4, keyed by the table's 16-byte key, of the configured fields in
 * upstream's order and byte order: source address, destination address, source port,
 * destination port (4 or 16 bytes per address, 2 per port, as on the wire). row =
 * hash & 0xffff. The "hint" folded into the UDP source port is upstream's too: the client's
 * port for TCP/UDP and ICMP errors, the IPv4 identification / IPv6 flow label otherwise.
 *
 * Compile-time specialisation (bcc cflags, set by glb_agent/dataplane/director_maps.py):
 *   GLB_SRC_IP             outer source address, as the u32 the wire bytes load as
 *   GLB_ETH_W0..W2         outer dst+src MAC as three u32 loads of the wire bytes
 *   GLB_IP_CSUM_BASE       ones'-complement sum of the constant outer IPv4 header words
 *   GLB_HASH_SRC_ADDR ...  which fields the hash covers (0/1 each)
 *   GLB_MTU                largest outer IPv4 packet the interface carries
 *   GLB_MAX_TABLES, GLB_MAX_BINDS   map shapes
 *   GLB_IPV6, GLB_VLAN, GLB_ICMP    features compiled in (0/1)
 *   GLB_PIN_DIR            bpffs directory of the pinned maps (absent: maps not pinned)
 * so the per-packet path has no configuration lookups at all.
 *
 * Per packet, a forwarded TCP/IPv4 packet costs four array lookups the verifier inlines
 * (generation, first bind, row, counter), one SipHash block whose key-only steps the agent
 * precomputed (struct glb_sip) and whose last round keeps only the 16 bits used, and one
 * helper call (bpf_xdp_adjust_head). Every exit goes through one counter update at the end
 * of xdp_glb_director. Where the time goes, and what was tried: docs/director-dataplane.md.
 *
 * Policies (what "VIP" means: the destination matches a bind's address/prefix):
 *  - Not IPv4/IPv6, or no bind matches: XDP_PASS untouched.
 *  - Headers too short to read the destination: XDP_PASS (the kernel drops garbage).
 *  - To a VIP but truncated/inconsistent (bad IHL or version, lengths beyond the frame,
 *    short L4 header, ICMP error quoting another address): XDP_DROP, counted.
 *  - Fragments (IPv4 MF/offset, IPv6 fragment header): later fragments carry no ports.
 *    They are forwarded only when the hash uses no ports AND every bind overlapping the
 *    matched one for that protocol uses the same table (GLB_BIND_FRAG_OK, computed by the
 *    agent); then all fragments of a datagram reach the same proxy. Otherwise every
 *    fragment (first included, it would be useless alone) is dropped and counted.
 *  - ICMP to a VIP: errors (v4 dest-unreachable incl. frag-needed, time-exceeded,
 *    parameter-problem; v6 dest-unreachable, packet-too-big, time-exceeded,
 *    parameter-problem) are hashed on the quoted inner header with addresses and ports
 *    swapped, so they reach the proxy that owns the flow; echo requests are spread with
 *    ports taken as 0 (hash of the configured address fields); other ICMP (echo replies,
 *    IPv6 neighbour discovery...) is passed. ICMP fragments are treated like echo requests
 *    (only the first one would show the ICMP type).
 *  - The inner IPv4 header checksum and TTL are not touched or checked: the backend does.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/in.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>

#include "glb_gue.h"
#include "director_defs.h"
#include "glb_verifier.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the director assumes a little-endian host (wire bytes are loaded as LE words)"
#endif

#ifndef GLB_SRC_IP
#error "GLB_SRC_IP and the other GLB_* settings come from the agent's compile flags"
#endif

#define GLB_HASH_USES_PORTS (GLB_HASH_SRC_PORT || GLB_HASH_DST_PORT)
#define GLB_HASH_ADDR_FIELDS (GLB_HASH_SRC_ADDR + GLB_HASH_DST_ADDR)
#define GLB_HASH_PORT_BYTES (2 * GLB_HASH_SRC_PORT + 2 * GLB_HASH_DST_PORT)
#define GLB_HASH_LEN4 (4 * GLB_HASH_ADDR_FIELDS + GLB_HASH_PORT_BYTES)
#define GLB_HASH_LEN6 (16 * GLB_HASH_ADDR_FIELDS + GLB_HASH_PORT_BYTES)

/* Bytes pushed in front of the inner IP packet: outer IPv4 + UDP + GUE with one hop. */
#define GLB_ENCAP_LEN (20 + 8 + (int)sizeof(struct glb_gue_hdr1))
#define GLB_IPV6_MAX_EXT 4 /* extension headers walked before giving up (malformed) */

#define GLB_ETH_P_8021Q 0x8100
#define GLB_MODE_FULL 0  /* match address, protocol and port */
#define GLB_MODE_PROTO 1 /* match address and protocol (fragments: no ports) */
#define GLB_MODE_ADDR 2  /* match address only (ICMP echo, classifying malformed packets) */

/* Maps. The agent opens them by their pinned paths (GLB_PIN_DIR/<name>), so a restarted
 * agent keeps using the same ones while this program keeps running. */
#ifdef GLB_PIN_DIR
#define GLB_MAP(type, key, val, name, n) BPF_TABLE_PINNED(type, key, val, name, n, GLB_PIN_DIR "/" #name)
#else
#define GLB_MAP(type, key, val, name, n) BPF_TABLE(type, key, val, name, n)
#endif

/* glb_ctl[0]: live generation and "tables loaded" flag (struct glb_ctl). */
GLB_MAP("array", __u32, struct glb_ctl, glb_ctl, 1);
/* IPv4 binds, GLB_MAX_BINDS per generation, most specific first, proto 0 ends the list. */
GLB_MAP("array", __u32, struct glb_bind4, glb_binds4, GLB_GENERATIONS * GLB_MAX_BINDS);
/* IPv6 binds, same layout rules as glb_binds4. */
GLB_MAP("array", __u32, struct glb_bind6, glb_binds6, GLB_GENERATIONS * GLB_MAX_BINDS);
/* Forwarding rows of every table slot of both generations: (primary, secondary) IPv4. */
GLB_MAP("array", __u32, struct glb_row, glb_rows, GLB_GENERATIONS * GLB_MAX_TABLES * GLB_TABLE_ROWS);
/* Per-CPU counters per (table slot | unmatched, reason). */
GLB_MAP("percpu_array", __u32, struct glb_stat, glb_stats, (GLB_MAX_TABLES + 1) * GLB_NR_REASONS);
/* Agent-only bookkeeping (JSON: build signatures, slot names, row digests, attach mode).
 * Never read by this program; it lives here so the pinned directory alone describes the
 * running director and an agent restarted from scratch can adopt it. */
struct glb_meta {
	__u32 len;
	char json[GLB_META_BYTES - 4];
};
GLB_MAP("array", __u32, struct glb_meta, glb_meta, 1);

_Static_assert(sizeof(struct glb_bind4) == 48, "glb_bind4 layout is shared with the agent");
_Static_assert(sizeof(struct glb_bind6) == 72, "glb_bind6 layout is shared with the agent");
_Static_assert(sizeof(struct glb_row) == 8, "glb_row layout is shared with the agent");
_Static_assert(sizeof(struct glb_gue_hdr1) == 12, "GUE header with one hop is 12 bytes");

/* What parsing found: the hash input, how to match binds, and what to encapsulate. */
struct glb_flow {
	__u32 saddr4;      /* hash input, wire order (IPv4) */
	__u32 daddr4;
	__u64 saddr6[2];   /* hash input, wire order (IPv6) */
	__u64 daddr6[2];
	__u16 sport;       /* hash input, wire order (0 when absent) */
	__u16 dport;
	__u16 hint;        /* upstream's flow hint, host order */
	__u16 match_port;  /* destination port to match binds with, host order */
	__u8 match_proto;  /* protocol to match binds with */
	__u8 mode;         /* GLB_MODE_* */
	__u8 fragment;     /* 1: part of a fragmented datagram */
	__u8 pad;
	__u32 inner_len;   /* inner IP packet length (IPv4 total length / 40 + payload) */
};

/* What the program does with a packet and which counter cell records it, packed in one
 * u32: the parsing and forwarding functions return it and xdp_glb_director counts once,
 * so the counter code (and the malformed-packet bind scan) exists once, not at every exit. */
#define GLB_VERDICT(action, slot, reason) ((__u32)(action) | ((__u32)(reason) << 8) | ((__u32)(slot) << 16))
#define GLB_NOT_VIP GLB_VERDICT(XDP_PASS, GLB_MAX_TABLES, GLB_R_PASS_NOT_VIP)

static __always_inline void glb_count(__u32 slot, __u32 reason, __u64 bytes)
{
	__u32 key = slot * GLB_NR_REASONS + reason;
	struct glb_stat *s = glb_stats.lookup(&key);

	if (s) {
		s->packets += 1;
		s->bytes += bytes;
	}
}

static __always_inline __u32 glb_live_gen(void)
{
	__u32 zero = 0;
	struct glb_ctl *c = glb_ctl.lookup(&zero);

	return c ? (c->gen & 1) : 0;
}

static __always_inline __u16 glb_ntohs(__u16 v)
{
	return __builtin_bswap16(v);
}

/* First IPv4 bind of generation `gen` matching `daddr` (and protocol/port per `mode`). */
static __always_inline struct glb_bind4 *glb_match4(__u32 gen, __u32 daddr, __u8 proto, __u16 port,
						    int mode)
{
	__u32 base = gen * GLB_MAX_BINDS;
	int i;

	for (i = 0; i < GLB_MAX_BINDS; i++) {
		__u32 key = base + i;
		struct glb_bind4 *b = glb_binds4.lookup(&key);

		if (!b || !b->proto)
			return NULL;
		if ((daddr & b->mask) != b->net)
			continue;
		if (mode != GLB_MODE_ADDR && b->proto != proto)
			continue;
		if (mode == GLB_MODE_FULL && (__u16)(port - b->port_lo) > b->port_span)
			continue;
		return b;
	}
	return NULL;
}

#if GLB_IPV6
static __always_inline struct glb_bind6 *glb_match6(__u32 gen, const __u64 *daddr, __u8 proto,
						    __u16 port, int mode)
{
	__u32 base = gen * GLB_MAX_BINDS;
	int i;

	for (i = 0; i < GLB_MAX_BINDS; i++) {
		__u32 key = base + i;
		struct glb_bind6 *b = glb_binds6.lookup(&key);

		if (!b || !b->proto)
			return NULL;
		if ((daddr[0] & b->mask[0]) != b->net[0] || (daddr[1] & b->mask[1]) != b->net[1])
			continue;
		if (mode != GLB_MODE_ADDR && b->proto != proto)
			continue;
		if (mode == GLB_MODE_FULL && (__u16)(port - b->port_lo) > b->port_span)
			continue;
		return b;
	}
	return NULL;
}
#endif

/* Byte offsets of the hash fields in the message, in upstream's order. A field never
 * straddles an 8-byte word (addresses sit at 0/4 or 0/16, ports at even offsets), so each
 * is OR-ed into one word: the message is built in registers, never on the stack. */
#define GLB_OFF_DADDR(alen) ((alen) * GLB_HASH_SRC_ADDR)
#define GLB_OFF_SPORT(alen) (GLB_OFF_DADDR(alen) + (alen) * GLB_HASH_DST_ADDR)
#define GLB_OFF_DPORT(alen) (GLB_OFF_SPORT(alen) + 2 * GLB_HASH_SRC_PORT)
#define GLB_MIX(w, off, val) ((w)[(off) / 8] |= (__u64)(val) << (8 * ((off) % 8)))

static __always_inline __u32 glb_hash4(const struct glb_flow *f, const struct glb_sip *sip)
{
	__u64 w[GLB_HASH_LEN4 / 8 + 1] = {};

#if GLB_HASH_SRC_ADDR
	GLB_MIX(w, 0, f->saddr4);
#endif
#if GLB_HASH_DST_ADDR
	GLB_MIX(w, GLB_OFF_DADDR(4), f->daddr4);
#endif
#if GLB_HASH_SRC_PORT
	GLB_MIX(w, GLB_OFF_SPORT(4), f->sport);
#endif
#if GLB_HASH_DST_PORT
	GLB_MIX(w, GLB_OFF_DPORT(4), f->dport);
#endif
	return glb_siphash24_lo16(w, GLB_HASH_LEN4, sip);
}

#if GLB_IPV6
static __always_inline __u32 glb_hash6(const struct glb_flow *f, const struct glb_sip *sip)
{
	__u64 w[GLB_HASH_LEN6 / 8 + 1] = {};

#if GLB_HASH_SRC_ADDR
	GLB_MIX(w, 0, f->saddr6[0]);
	GLB_MIX(w, 8, f->saddr6[1]);
#endif
#if GLB_HASH_DST_ADDR
	GLB_MIX(w, GLB_OFF_DADDR(16), f->daddr6[0]);
	GLB_MIX(w, GLB_OFF_DADDR(16) + 8, f->daddr6[1]);
#endif
#if GLB_HASH_SRC_PORT
	GLB_MIX(w, GLB_OFF_SPORT(16), f->sport);
#endif
#if GLB_HASH_DST_PORT
	GLB_MIX(w, GLB_OFF_DPORT(16), f->dport);
#endif
	return glb_siphash24_lo16(w, GLB_HASH_LEN6, sip);
}
#endif

/* Pushes the outer headers and bounces the frame. `l2` is 14, or 18 with a VLAN tag whose
 * TCI (`tci`, wire order) is kept; `gue_proto` is 4 or 41 (the inner family).
 *
 * Everything that can fail (no backend, MTU) is decided before bpf_xdp_adjust_head, so a
 * dropped packet is never modified. (Hashing after the helper, to overlap the two, was
 * measured: ~0.04x of the baseline slower.) */
static __always_inline __u32 glb_encap(struct xdp_md *ctx, __u32 gen, __u32 slot, const struct glb_sip *sip,
				     const struct glb_flow *f, __u32 l2, __u16 tci, __u8 gue_proto)
{
	void *data, *data_end, *ip;
	__u64 hops, ipw0, ipw1, udpw, gue0;
	__u32 hash, primary, csum, rkey, inner_len = f->inner_len;
	__u16 tot, udp_len, sport;
	struct glb_row *row;

#if GLB_IPV6
	hash = gue_proto == 4 ? glb_hash4(f, sip) : glb_hash6(f, sip); /* low 16 bits only */
#else
	hash = glb_hash4(f, sip);
#endif
	rkey = ((gen * GLB_MAX_TABLES + slot) << GLB_TABLE_ROW_BITS) | hash; /* hash < 2^16 */
	row = glb_rows.lookup(&rkey);
	if (__builtin_expect(!row || !row->primary, 0))
		return GLB_VERDICT(XDP_DROP, slot, GLB_R_DROP_NO_BACKEND);
	if (__builtin_expect(inner_len + GLB_ENCAP_LEN > GLB_MTU, 0))
		return GLB_VERDICT(XDP_DROP, slot, GLB_R_DROP_TOO_BIG);
	hops = *(__u64 *)row; /* primary in the low half, secondary in the high half */
	if (__builtin_expect(bpf_xdp_adjust_head(ctx, -GLB_ENCAP_LEN) != 0, 0))
		return GLB_VERDICT(XDP_DROP, slot, GLB_R_DROP_ENCAP);
	primary = (__u32)hops;
	tot = __builtin_bswap16((__u16)(inner_len + GLB_ENCAP_LEN));
	udp_len = __builtin_bswap16((__u16)(inner_len + GLB_ENCAP_LEN - 20));
	sport = __builtin_bswap16(0x8000 | ((__u16)(hash ^ f->hint) & 0x7fff));
	/* Ones'-complement sum of the header's 16-bit words as loaded; byte order does not
	 * matter as long as the result is stored the same way. */
	csum = GLB_IP_CSUM_BASE + tot + (primary & 0xffff) + (primary >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	/* IPv4 bytes 0-7: 45 00 | total length | id 0 | flags DF, offset 0 */
	ipw0 = 0x45 | ((__u64)tot << 16) | (0x40ULL << 48);
	/* bytes 8-15: TTL | protocol UDP | checksum | source address */
	ipw1 = GLB_IPV4_TTL | (IPPROTO_UDP << 8) | ((__u64)(__u16)~csum << 16) | ((__u64)GLB_SRC_IP << 32);
	/* UDP: source port | 19523 | length | checksum 0 */
	udpw = sport | ((__u64)__constant_htons(GLB_GUE_PORT) << 16) | ((__u64)udp_len << 32);
	/* GUE: hlen 2 | proto | flags 0 | private type 0 | next hop 0 | hop count 1 */
	gue0 = 2 | ((__u64)gue_proto << 8) | (1ULL << 56);

	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + 18 + GLB_ENCAP_LEN > data_end) /* l2 <= 18; the inner packet follows */
		return GLB_VERDICT(XDP_DROP, slot, GLB_R_DROP_ENCAP);

	/* Ethernet: gateway <- us; keep the VLAN the packet arrived on (XDP_TX leaves by the
	 * same port, towards the same gateway). */
	*(__u64 *)(data + 0) = ((__u64)GLB_ETH_W1 << 32) | GLB_ETH_W0;
	*(__u32 *)(data + 8) = GLB_ETH_W2;
	if (l2 == 18) {
		*(__u32 *)(data + 12) = __constant_htons(GLB_ETH_P_8021Q) | ((__u32)tci << 16);
		*(__u16 *)(data + 16) = __constant_htons(ETH_P_IP);
	} else {
		*(__u16 *)(data + 12) = __constant_htons(ETH_P_IP);
	}
	ip = data + l2;
	if (ip + GLB_ENCAP_LEN > data_end)
		return GLB_VERDICT(XDP_DROP, slot, GLB_R_DROP_ENCAP);
	*(__u64 *)(ip + 0) = ipw0;
	*(__u64 *)(ip + 8) = ipw1;
	*(__u32 *)(ip + 16) = primary;
	*(__u64 *)(ip + 20) = udpw;
	*(__u64 *)(ip + 28) = gue0;
	*(__u32 *)(ip + 36) = (__u32)(hops >> 32); /* the secondary, GUE hop 0 */

	return GLB_VERDICT(XDP_TX, slot, GLB_R_FORWARDED);
}

/* The matched bind's fragment policy, then encapsulation (both families). */
static __always_inline __u32 glb_forward(struct xdp_md *ctx, __u32 gen, __u16 slot, __u8 flags,
					 const struct glb_sip *sip, const struct glb_flow *f, __u32 l2,
					 __u16 tci, __u8 gue_proto)
{
	if (__builtin_expect(f->fragment && (GLB_HASH_USES_PORTS || !(flags & GLB_BIND_FRAG_OK)), 0))
		return GLB_VERDICT(XDP_DROP, slot, GLB_R_DROP_FRAGMENT);
	return glb_encap(ctx, gen, slot, sip, f, l2, tci, gue_proto);
}

/* A packet to `daddr` we could not make sense of: drop it if it is for a VIP, else pass. */
static __always_inline __u32 glb_bad4(__u32 gen, __u32 daddr)
{
	struct glb_bind4 *b = glb_match4(gen, daddr, 0, 0, GLB_MODE_ADDR);

	return b ? GLB_VERDICT(XDP_DROP, b->slot, GLB_R_DROP_MALFORMED) : GLB_NOT_VIP;
}

static __always_inline __u32 glb_ipv4(struct xdp_md *ctx, void *data, void *data_end, __u32 l2, __u16 tci)
{
	struct iphdr *ip = data + l2;
	struct glb_flow f = {};
	struct glb_bind4 *b;
	__u32 gen, ihl, tot, daddr;
	void *l4;

	if ((void *)(ip + 1) > data_end)
		return GLB_NOT_VIP;
	daddr = ip->daddr;
	gen = glb_live_gen();
	ihl = ip->ihl * 4;
	tot = GLB_BOUND16(glb_ntohs(ip->tot_len));
	if (ip->version != 4 || ihl < 20 || tot < ihl || (void *)ip + tot > data_end)
		goto bad;

	f.saddr4 = ip->saddr;
	f.daddr4 = daddr;
	f.inner_len = tot;
	f.match_proto = ip->protocol;
	f.fragment = (ip->frag_off & __constant_htons(0x3fff)) != 0;
	l4 = (void *)ip + ihl;

	if (ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP) {
		if (f.fragment) {
			f.mode = GLB_MODE_PROTO;
			f.hint = glb_ntohs(ip->id);
		} else {
			__u32 need = ip->protocol == IPPROTO_TCP ? 20 : 8;

			if (ihl + need > tot || l4 + 4 > data_end)
				goto bad;
			f.sport = *(__u16 *)l4;
			f.dport = *(__u16 *)(l4 + 2);
			f.match_port = glb_ntohs(f.dport);
			f.hint = glb_ntohs(f.sport);
			f.mode = GLB_MODE_FULL;
		}
	}
#if GLB_ICMP
	else if (ip->protocol == IPPROTO_ICMP) {
		__u8 type;

		f.mode = GLB_MODE_ADDR;
		f.hint = glb_ntohs(ip->id);
		if (!f.fragment) {
			if (ihl + 8 > tot || l4 + 8 > data_end)
				goto bad;
			type = *(__u8 *)l4;
			if (type == 3 || type == 11 || type == 12) {
				/* Error: quotes the IP header + 8 bytes of a packet the VIP sent. */
				struct iphdr *in = l4 + 8;
				__u32 in_ihl;
				void *in_l4;

				if ((void *)(in + 1) > data_end || ihl + 8 + 20 > tot)
					goto bad;
				in_ihl = in->ihl * 4;
				in_l4 = (void *)in + in_ihl;
				if (in->version != 4 || in_ihl < 20 || ihl + 8 + in_ihl + 4 > tot ||
				    in_l4 + 4 > data_end || in->saddr != daddr ||
				    (in->frag_off & __constant_htons(0x1fff)))
					goto bad;
				/* Reverse it: the client is the destination of the quoted packet. */
				f.saddr4 = in->daddr;
				f.daddr4 = in->saddr;
				f.sport = *(__u16 *)(in_l4 + 2);
				f.dport = *(__u16 *)in_l4;
				f.match_proto = in->protocol;
				f.match_port = glb_ntohs(f.dport);
				f.hint = glb_ntohs(f.sport);
				f.mode = GLB_MODE_FULL;
			} else if (type != 8) {
				b = glb_match4(gen, daddr, 0, 0, GLB_MODE_ADDR);
				return b ? GLB_VERDICT(XDP_PASS, b->slot, GLB_R_PASS_ICMP) : GLB_NOT_VIP;
			}
		}
		/* Echo requests (and ICMP fragments) hash with ports 0; no fragment policy. */
		f.fragment = 0;
	}
#endif
	else
		return GLB_NOT_VIP;

	b = glb_match4(gen, daddr, f.match_proto, f.match_port, f.mode);
	return b ? glb_forward(ctx, gen, b->slot, b->flags, &b->sip, &f, l2, tci, 4) : GLB_NOT_VIP;
bad:
	return glb_bad4(gen, daddr);
}

#if GLB_IPV6
static __always_inline __u32 glb_bad6(__u32 gen, const __u64 *daddr)
{
	struct glb_bind6 *b = glb_match6(gen, daddr, 0, 0, GLB_MODE_ADDR);

	return b ? GLB_VERDICT(XDP_DROP, b->slot, GLB_R_DROP_MALFORMED) : GLB_NOT_VIP;
}

static __always_inline __u32 glb_ipv6(struct xdp_md *ctx, void *data, void *data_end, __u32 l2, __u16 tci)
{
	struct ipv6hdr *ip6 = data + l2;
	struct glb_flow f = {};
	struct glb_bind6 *b;
	__u32 gen, plen, off = 40;
	__u8 nexthdr;
	void *l4;
	int i;

	if ((void *)(ip6 + 1) > data_end)
		return GLB_NOT_VIP;
	__builtin_memcpy(f.daddr6, &ip6->daddr, 16);
	__builtin_memcpy(f.saddr6, &ip6->saddr, 16);
	gen = glb_live_gen();
	plen = GLB_BOUND16(glb_ntohs(ip6->payload_len));
	if (ip6->version != 6 || plen == 0 || (void *)(ip6 + 1) + plen > data_end)
		goto bad;
	f.inner_len = 40 + plen;
	/* Low 16 bits of the flow label, upstream's hint when there are no ports. */
	f.hint = ((__u16)ip6->flow_lbl[1] << 8) | ip6->flow_lbl[2];
	nexthdr = ip6->nexthdr;

	/* Walk extension headers to the upper-layer header. */
#pragma unroll
	for (i = 0; i < GLB_IPV6_MAX_EXT; i++) {
		__u8 *h = (void *)ip6 + off;

		if (nexthdr != IPPROTO_HOPOPTS && nexthdr != IPPROTO_ROUTING &&
		    nexthdr != IPPROTO_DSTOPTS && nexthdr != IPPROTO_FRAGMENT)
			break;
		if ((void *)(h + 8) > data_end || off + 8 > 40 + plen)
			goto bad;
		if (nexthdr == IPPROTO_FRAGMENT) {
			f.fragment = 1;
			nexthdr = h[0];
			off += 8;
			if ((h[2] << 8 | h[3]) & 0xfff8) {
				f.mode = GLB_MODE_PROTO; /* not the first fragment: no L4 header */
				break;
			}
		} else {
			nexthdr = h[0];
			off += ((__u32)h[1] + 1) * 8;
		}
	}
	if (off > 40 + plen)
		goto bad;
	f.match_proto = nexthdr;
	l4 = (void *)ip6 + (off & 0x3fff);

	if (nexthdr == IPPROTO_TCP || nexthdr == IPPROTO_UDP) {
		if (f.mode != GLB_MODE_PROTO) {
			if (f.fragment) {
				f.mode = GLB_MODE_PROTO; /* first fragment: hash like the others */
			} else {
				__u32 need = nexthdr == IPPROTO_TCP ? 20 : 8;

				if (off + need > 40 + plen || l4 + 4 > data_end)
					goto bad;
				f.sport = *(__u16 *)l4;
				f.dport = *(__u16 *)(l4 + 2);
				f.match_port = glb_ntohs(f.dport);
				f.hint = glb_ntohs(f.sport);
				f.mode = GLB_MODE_FULL;
			}
		}
	}
#if GLB_ICMP
	else if (nexthdr == IPPROTO_ICMPV6) {
		if (!f.fragment) {
			__u8 type;

			if (off + 8 > 40 + plen || l4 + 8 > data_end)
				goto bad;
			type = *(__u8 *)l4;
			if (type >= 1 && type <= 4) {
				struct ipv6hdr *in = l4 + 8;
				__u16 *in_ports = l4 + 8 + 40;
				__u64 in_src[2];

				if ((void *)(in_ports + 2) > data_end || off + 8 + 40 + 4 > 40 + plen ||
				    in->version != 6)
					goto bad;
				__builtin_memcpy(in_src, &in->saddr, 16);
				if (in_src[0] != f.daddr6[0] || in_src[1] != f.daddr6[1])
					goto bad;
				__builtin_memcpy(f.saddr6, &in->daddr, 16);
				f.sport = in_ports[1];
				f.dport = in_ports[0];
				f.match_proto = in->nexthdr;
				f.match_port = glb_ntohs(f.dport);
				f.hint = glb_ntohs(f.sport);
				f.mode = GLB_MODE_FULL;
			} else if (type == 128) {
				f.mode = GLB_MODE_ADDR;
			} else {
				b = glb_match6(gen, f.daddr6, 0, 0, GLB_MODE_ADDR);
				return b ? GLB_VERDICT(XDP_PASS, b->slot, GLB_R_PASS_ICMP) : GLB_NOT_VIP;
			}
		} else {
			f.mode = GLB_MODE_ADDR;
		}
		f.fragment = 0;
	}
#endif
	else
		return GLB_NOT_VIP;

	b = glb_match6(gen, f.daddr6, f.match_proto, f.match_port, f.mode);
	return b ? glb_forward(ctx, gen, b->slot, b->flags, &b->sip, &f, l2, tci, 41) : GLB_NOT_VIP;
bad:
	return glb_bad6(gen, f.daddr6);
}
#endif

int xdp_glb_director(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u16 proto, tci = 0;
	__u32 l2 = 14, v = GLB_NOT_VIP;

	if (data + 14 > data_end)
		goto out;
	proto = *(__u16 *)(data + 12); /* struct ethhdr is packed: avoid byte loads */
#if GLB_VLAN
	if (proto == __constant_htons(GLB_ETH_P_8021Q)) {
		__u16 *tag = data + 14;

		if ((void *)(tag + 2) > data_end)
			goto out;
		tci = tag[0];
		proto = tag[1];
		l2 = 18;
	}
#endif
	if (proto == __constant_htons(ETH_P_IP))
		v = glb_ipv4(ctx, data, data_end, l2, tci);
#if GLB_IPV6
	else if (proto == __constant_htons(ETH_P_IPV6))
		v = glb_ipv6(ctx, data, data_end, l2, tci);
#endif
out:
	/* Frame bytes as the packet leaves (after encapsulation when forwarded). */
	glb_count(v >> 16, (v >> 8) & 0xff, ctx->data_end - ctx->data);
	return v & 0xff;
}
