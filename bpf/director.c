/* GLB director: XDP program that maps each packet for a VIP to a row of its service's
 * forwarding table and sends it, GUE-encapsulated, to the first proxy of the row's send
 * order with the rest of the row as the GUE hop list (second chance walks it). Everything
 * else is left to the kernel (XDP_PASS).
 *
 * Wire format (bpf/include/glb_gue.h), identical to upstream glb-director so either side can
 * be mixed with upstream: Ethernet (gateway MAC <- our MAC, the arrival VLAN tag kept) |
 * IPv4 (DF, TTL 64, id 0, our source address -> row[0]) | UDP (src 0x8000 | ((hash ^ hint)
 * & 0x7fff), dst 19523, checksum 0) | GUE (hlen 1 + n, proto 4 or 41) | GLB private data
 * (next_hop 0, hop_count n) | n hops: row[1..] | the original IP packet. With upstream's
 * two-column rows that is exactly upstream's packet (n = 1, the secondary). While hash
 * fields migrate (GLB_ALT_HASH), the hops continue with the whole row under the old fields,
 * as upstream's alt_hash_fields.
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
 *   GLB_ALT_HASH, GLB_ALT_HASH_SRC_ADDR ...   hash-field migration: the old field set (0/1)
 *   GLB_ROW_WIDTH          entries per row (K, 2-8; glb_table.h)
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
#include "glb_consts.h"
#include "glb_gue.h"
#include "glb_parse.h"
#include "director_defs.h"

#ifndef GLB_SRC_IP
#error "GLB_SRC_IP and the other GLB_* settings come from the agent's compile flags"
#endif

#ifndef GLB_ALT_HASH
#define GLB_ALT_HASH 0 /* no hash-field migration: one hash, one row */
#define GLB_ALT_HASH_SRC_ADDR 0
#define GLB_ALT_HASH_DST_ADDR 0
#define GLB_ALT_HASH_SRC_PORT 0
#define GLB_ALT_HASH_DST_PORT 0
#endif

/* A hash field set as one constant: bit 0 source address, 1 destination address, 2 source
 * port, 3 destination port (upstream's order). */
#define GLB_FIELDS(sa, da, sp, dp) ((sa) | (da) << 1 | (sp) << 2 | (dp) << 3)
#define GLB_HASH_FIELDS GLB_FIELDS(GLB_HASH_SRC_ADDR, GLB_HASH_DST_ADDR, GLB_HASH_SRC_PORT, GLB_HASH_DST_PORT)
#define GLB_ALT_FIELDS \
	GLB_FIELDS(GLB_ALT_HASH_SRC_ADDR, GLB_ALT_HASH_DST_ADDR, GLB_ALT_HASH_SRC_PORT, GLB_ALT_HASH_DST_PORT)
#define GLB_PORT_FIELDS GLB_FIELDS(0, 0, 1, 1)
/* Fragments carry no ports: they can only be mapped when no hash in use reads ports. */
#define GLB_HASH_USES_PORTS ((GLB_HASH_FIELDS | (GLB_ALT_HASH ? GLB_ALT_FIELDS : 0)) & GLB_PORT_FIELDS)

/* Bytes pushed in front of the inner IP packet: outer IPv4 + UDP + GUE with `hops` hops. */
#define GLB_ENCAP_LEN(hops) (sizeof(struct iphdr) + sizeof(struct udphdr) + GLB_GUE_HDR_LEN(hops))
#define GLB_ENCAP_BASE ((int)GLB_ENCAP_LEN(0))
/* Most hops a packet carries: the row's after its destination, then (migrating hash
 * fields) the whole row under the old fields, within the GUE hop list's limit. */
#define GLB_HOPS_MAX (GLB_ROW_WIDTH - 1 + GLB_ALT_HASH * GLB_ROW_WIDTH)
#if GLB_HOPS_MAX > GLB_GUE_MAX_HOPS
#error "GLB_ROW_WIDTH with GLB_ALT_HASH exceeds the GUE hop list (the agent refuses this)"
#endif
#define GLB_L2_MAX (sizeof(struct ethhdr) + sizeof(struct glb_vlan_hdr))
#define GLB_IPV6_MAX_EXT 4 /* extension headers walked before giving up (malformed) */

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
/* IPv4 binds (struct glb_bind4), GLB_MAX_BINDS per generation, most specific first,
 * proto 0 ends the list. */
GLB_MAP("array", __u32, struct glb_bind4, glb_binds4, GLB_GENERATIONS * GLB_MAX_BINDS);
/* IPv6 binds (struct glb_bind6), same layout rules as glb_binds4. */
GLB_MAP("array", __u32, struct glb_bind6, glb_binds6, GLB_GENERATIONS * GLB_MAX_BINDS);
/* Forwarding rows (struct glb_row) of every table slot of both generations:
 * glb_rows[((gen * GLB_MAX_TABLES + slot) << GLB_TABLE_ROW_BITS) | row]. */
GLB_MAP("array", __u32, struct glb_row, glb_rows, GLB_GENERATIONS * GLB_MAX_TABLES * GLB_TABLE_ROWS);
/* Per-CPU counters (struct glb_stat) per (table slot | unmatched, enum glb_reason). */
GLB_MAP("percpu_array", __u32, struct glb_stat, glb_stats, (GLB_MAX_TABLES + 1) * GLB_NR_REASONS);

/* What parsing found: the hash input, how to match binds, and what to encapsulate. */
struct glb_flow {
	__u64 saddr[2];    /* hash input, wire order (glb_parse.h: IPv4 in the low 4 bytes) */
	__u64 daddr[2];
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

/* First bind of generation `gen` and of the family matching `daddr` (and protocol/port per
 * `mode`). A bind is {net, mask, rule}, so its rule sits 2 * alen bytes in. */
static __always_inline const struct glb_bind_rule *glb_match(__u32 gen, const __u64 *daddr, const int alen,
							     __u8 proto, __u16 port, int mode)
{
	__u32 base = gen * GLB_MAX_BINDS;
	int i;

	for (i = 0; i < GLB_MAX_BINDS; i++) {
		__u32 key = base + i;
		void *b = GLB_IS_V4(alen) ? (void *)glb_binds4.lookup(&key) : (void *)glb_binds6.lookup(&key);
		const struct glb_bind_rule *r;

		if (!b)
			return NULL;
		r = b + 2 * alen;
		if (!r->proto)
			return NULL;
		if (!glb_addr_in(daddr, b, b + alen, alen))
			continue;
		if (mode != GLB_MODE_ADDR && r->proto != proto)
			continue;
		if (mode == GLB_MODE_FULL && (__u16)(port - r->port_lo) > r->port_span)
			continue;
		return r;
	}
	return NULL;
}

/* The hash message is built in registers, never on the stack: fields in upstream's order
 * (source address, destination address, source port, destination port) at byte offsets
 * where none straddles an 8-byte word (addresses sit at 0/4 or 0/16, ports at even
 * offsets), each OR-ed into its word. */
#define GLB_MIX(w, off, val) ((w)[(off) / 8] |= (__u64)(val) << (8 * ((off) % 8)))

static __always_inline void glb_mix_addr(__u64 *w, const int off, const __u64 *a, const int alen)
{
	if (GLB_IS_V4(alen)) {
		GLB_MIX(w, off, (__u32)a[0]);
	} else {
		GLB_MIX(w, off, a[0]);
		GLB_MIX(w, off + 8, a[1]);
	}
}

/* The low 16 bits (all the director uses) of the packet's SipHash-2-4 over the field set
 * `fields` (GLB_FIELDS, a constant). */
static __always_inline __u32 glb_hash(const struct glb_flow *f, const struct glb_sip *sip, const int alen,
				      const int fields)
{
	const int sa = fields & 1, da = (fields >> 1) & 1, sp = (fields >> 2) & 1, dp = (fields >> 3) & 1;
	const int off_da = alen * sa, off_sp = off_da + alen * da, off_dp = off_sp + 2 * sp;
	__u64 w[(2 * 16 + 2 * 2) / 8 + 1] = {}; /* room for the longest message; unused words fold away */

	if (sa)
		glb_mix_addr(w, 0, f->saddr, alen);
	if (da)
		glb_mix_addr(w, off_da, f->daddr, alen);
	if (sp)
		GLB_MIX(w, off_sp, f->sport);
	if (dp)
		GLB_MIX(w, off_dp, f->dport);
	return glb_siphash24_lo16(w, off_dp + 2 * dp, sip);
}

/* The row of `hash` in the bind's table of generation `gen`. */
static __always_inline struct glb_row *glb_row_of(__u32 gen, __u32 slot, __u32 hash)
{
	__u32 rkey = ((gen * GLB_MAX_TABLES + slot) << GLB_TABLE_ROW_BITS) | hash; /* hash < 2^16 */

	return glb_rows.lookup(&rkey);
}

/* Used entries of `row` from index `from` on (unused ones are 0, at the end). */
static __always_inline __u64 glb_row_used(const struct glb_row *row, const int from)
{
	__u64 n = 0;
	int i;

#pragma unroll
	for (i = from; i < GLB_ROW_WIDTH; i++)
		n += row->addr[i] != 0;
	return n;
}

/* Writes the `n` used hops of `src` (at most `max`) at `at`. The first `checked` slots are
 * known to be inside the frame; later ones are checked one by one. Returns 0, or -1 if the
 * frame ends first (it cannot: the inner packet follows the hop list). */
static __always_inline int glb_put_hops(void *at, void *data_end, const __be32 *src, __u64 n, const int max,
					const int checked)
{
	int i;

#pragma unroll
	for (i = 0; i < max; i++) {
		if ((__u64)i >= n)
			break;
		if (i >= checked && at + 4 * (i + 1) > data_end)
			return -1;
		*(__u32 *)(at + 4 * i) = src[i];
	}
	return 0;
}

/* Pushes the outer headers for `row` with `nhops` of its entries as hops (then, migrating
 * hash fields, `nold` entries of the old-fields row `old`) and bounces the frame. `l2` is
 * the Ethernet header's length, with a VLAN tag whose TCI (`tci`, wire order) is kept; the
 * GUE proto is the inner family. Called with a constant `nhops` for the common row shape,
 * so that case's header is built from constants. */
static __always_inline __u32 glb_push(struct xdp_md *ctx, __u32 slot, __u32 hash, const struct glb_flow *f,
				    __u32 l2, __u16 tci, const int alen, const struct glb_row *row, __u64 nhops,
				    const struct glb_row *old, __u64 nold)
{
	/* Hop slots covered by the one bounds check below: all of them when the hop list is at
	 * most as long as the shortest inner packet (an IPv4 header), which always follows. */
	const int checked = 4 * GLB_HOPS_MAX <= sizeof(struct iphdr) ? GLB_HOPS_MAX : 1;
	void *data, *data_end, *ip;
	__u64 ipw0, ipw1, udpw, gue0, hdr_len = GLB_ENCAP_BASE + 4 * (nhops + nold);
	__u32 dest = row->addr[0], csum, inner_len = f->inner_len;
	__u16 tot, udp_len, sport;

	if (__builtin_expect(inner_len + hdr_len > GLB_MTU, 0))
		return GLB_VERDICT(XDP_DROP, slot, GLB_R_DROP_TOO_BIG);
	if (__builtin_expect(bpf_xdp_adjust_head(ctx, -(int)hdr_len) != 0, 0))
		return GLB_VERDICT(XDP_DROP, slot, GLB_R_DROP_ENCAP);
	tot = __builtin_bswap16((__u16)(inner_len + hdr_len));
	udp_len = __builtin_bswap16((__u16)(inner_len + hdr_len - sizeof(struct iphdr)));
	sport = __builtin_bswap16(GLB_GUE_SPORT_BASE | ((__u16)(hash ^ f->hint) & GLB_GUE_SPORT_MASK));
	/* Ones'-complement sum of the header's 16-bit words as loaded; byte order does not
	 * matter as long as the result is stored the same way. */
	csum = GLB_IP_CSUM_BASE + tot + (dest & 0xffff) + (dest >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	/* IPv4 bytes 0-7: version 4, IHL 5 | TOS 0 | total length | id 0 | flags DF, offset 0 */
	ipw0 = (4 << 4 | sizeof(struct iphdr) / 4) | ((__u64)tot << 16) | ((__u64)__constant_htons(GLB_IP_DF) << 48);
	/* bytes 8-15: TTL | protocol UDP | checksum | source address */
	ipw1 = GLB_IPV4_TTL | (IPPROTO_UDP << 8) | ((__u64)(__u16)~csum << 16) | ((__u64)GLB_SRC_IP << 32);
	/* UDP: source port | 19523 | length | checksum 0 */
	udpw = sport | ((__u64)__constant_htons(GLB_GUE_PORT) << 16) | ((__u64)udp_len << 32);
	/* GUE: hlen | proto | flags 0 | private type 0 | next hop 0 | hop count */
	gue0 = (GLB_GUE_HLEN(0) + nhops + nold) | ((__u64)GLB_GUE_PROTO(alen) << 8) | ((nhops + nold) << 56);

	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + GLB_L2_MAX + GLB_ENCAP_BASE > data_end) /* the inner packet follows */
		return GLB_VERDICT(XDP_DROP, slot, GLB_R_DROP_ENCAP);

	/* Ethernet: gateway <- us; keep the VLAN the packet arrived on (XDP_TX leaves by the
	 * same port, towards the same gateway). */
	*(__u64 *)(data + 0) = ((__u64)GLB_ETH_W1 << 32) | GLB_ETH_W0;
	*(__u32 *)(data + 8) = GLB_ETH_W2;
	if (l2 == GLB_L2_MAX) {
		*(__u32 *)(data + 12) = __constant_htons(ETH_P_8021Q) | ((__u32)tci << 16);
		*(__u16 *)(data + 16) = __constant_htons(ETH_P_IP);
	} else {
		*(__u16 *)(data + 12) = __constant_htons(ETH_P_IP);
	}
	ip = data + l2;
	if (ip + GLB_ENCAP_BASE + 4 * checked > data_end)
		return GLB_VERDICT(XDP_DROP, slot, GLB_R_DROP_ENCAP);
	*(__u64 *)(ip + 0) = ipw0;
	*(__u64 *)(ip + 8) = ipw1;
	*(__u32 *)(ip + 16) = dest;
	*(__u64 *)(ip + 20) = udpw;
	*(__u64 *)(ip + 28) = gue0;
	if (glb_put_hops(ip + GLB_ENCAP_BASE, data_end, &row->addr[1], nhops, GLB_ROW_WIDTH - 1, checked))
		return GLB_VERDICT(XDP_DROP, slot, GLB_R_DROP_ENCAP);
	if (old && glb_put_hops(ip + GLB_ENCAP_BASE + 4 * (nhops & 7), data_end, old->addr, nold,
				GLB_ROW_WIDTH, 0))
		return GLB_VERDICT(XDP_DROP, slot, GLB_R_DROP_ENCAP);
	return GLB_VERDICT(XDP_TX, slot, GLB_R_FORWARDED);
}

/* Maps the flow to its row and encapsulates: the destination and hop list are the row's
 * send order (hop_count = the used entries after the destination); while hash fields
 * migrate, the hops continue with the whole row under the old fields.
 *
 * Everything that can fail (no backend, MTU) is decided before bpf_xdp_adjust_head, so a
 * dropped packet is never modified. (Hashing after the helper, to overlap the two, was
 * measured: ~0.04x of the baseline slower.) */
static __always_inline __u32 glb_encap(struct xdp_md *ctx, __u32 gen, const struct glb_bind_rule *b,
				     const struct glb_flow *f, __u32 l2, __u16 tci, const int alen)
{
	__u32 slot = b->slot, hash = glb_hash(f, &b->sip, alen, GLB_HASH_FIELDS);
	struct glb_row *row = glb_row_of(gen, slot, hash);

	if (__builtin_expect(!row || !row->addr[0], 0))
		return GLB_VERDICT(XDP_DROP, slot, GLB_R_DROP_NO_BACKEND);
#if GLB_ALT_HASH
	{
		struct glb_row *old = glb_row_of(gen, slot, glb_hash(f, &b->sip, alen, GLB_ALT_FIELDS));

		return glb_push(ctx, slot, hash, f, l2, tci, alen, row, glb_row_used(row, 1), old,
				old ? glb_row_used(old, 0) : 0);
	}
#else
	/* Upstream's row shape (destination + one hop) gets a header built from constants. */
	if (row->addr[1] && (GLB_ROW_WIDTH == 2 || !row->addr[GLB_ROW_WIDTH > 2 ? 2 : 1]))
		return glb_push(ctx, slot, hash, f, l2, tci, alen, row, 1, NULL, 0);
	return glb_push(ctx, slot, hash, f, l2, tci, alen, row, glb_row_used(row, 1), NULL, 0);
#endif
}

/* The matched bind's fragment policy, then encapsulation. */
static __always_inline __u32 glb_forward(struct xdp_md *ctx, __u32 gen, const struct glb_bind_rule *b,
					 const struct glb_flow *f, __u32 l2, __u16 tci, const int alen)
{
	if (__builtin_expect(f->fragment && (GLB_HASH_USES_PORTS || !(b->flags & GLB_BIND_FRAG_OK)), 0))
		return GLB_VERDICT(XDP_DROP, b->slot, GLB_R_DROP_FRAGMENT);
	return glb_encap(ctx, gen, b, f, l2, tci, alen);
}

/* The flow's ports (wire order): they join the hash and the bind match, and the client's
 * port is upstream's hint. */
static __always_inline void glb_flow_ports(struct glb_flow *f, __u16 sport, __u16 dport)
{
	f->sport = sport;
	f->dport = dport;
	f->match_port = glb_ntohs(dport);
	f->hint = glb_ntohs(sport);
	f->mode = GLB_MODE_FULL;
}

/* IPv4 header checks past the fixed header (version checked): IHL, total length inside the
 * frame, fragment bits. Returns the L4 offset, or -1. */
static __always_inline int glb_ipv4_l3(struct iphdr *ip, void *data_end, struct glb_flow *f)
{
	__u32 ihl = glb_ip_hdr_len(ip, 4), tot = glb_ip_len(ip, 4);

	if (ihl < sizeof(*ip) || tot < ihl || (void *)ip + tot > data_end)
		return -1;
	f->inner_len = tot;
	f->match_proto = ip->protocol;
	f->fragment = (ip->frag_off & __constant_htons(GLB_IP_MF | GLB_IP_OFFSET)) != 0;
	return ihl;
}

/* IPv6: payload inside the frame, then the extension headers walked to the upper-layer header (a non-first fragment stops the walk: it has no
 * L4 header). Returns the L4 offset, or -1. */
static __always_inline int glb_ipv6_l3(struct ipv6hdr *ip6, void *data_end, struct glb_flow *f)
{
	__u32 len = glb_ip_len(ip6, 16), off = sizeof(*ip6);
	__u8 nexthdr = ip6->nexthdr;
	int i;

	if (len == sizeof(*ip6) || (void *)ip6 + len > data_end)
		return -1; /* no payload (jumbogram) or beyond the frame */
	f->inner_len = len;
#pragma unroll
	for (i = 0; i < GLB_IPV6_MAX_EXT; i++) {
		__u8 *h = (void *)ip6 + off;

		if (nexthdr != IPPROTO_HOPOPTS && nexthdr != IPPROTO_ROUTING &&
		    nexthdr != IPPROTO_DSTOPTS && nexthdr != IPPROTO_FRAGMENT)
			break;
		if ((void *)(h + 8) > data_end || off + 8 > len)
			return -1;
		if (nexthdr == IPPROTO_FRAGMENT) {
			struct glb_ipv6_frag_hdr *fh = (void *)h;

			f->fragment = 1;
			nexthdr = fh->nexthdr;
			off += sizeof(*fh);
			if (fh->frag_off & __constant_htons(GLB_IP6_OFFSET))
				break; /* not the first fragment: no L4 header */
		} else {
			nexthdr = h[0];
			off += ((__u32)h[1] + 1) * 8; /* hdr ext len: 8-byte units after the first 8 */
		}
	}
	if (off > len)
		return -1;
	f->match_proto = nexthdr;
	return off;
}

/* Takes the flow from the packet an ICMP error at `icmp` quotes (the quoted header starts
 * GLB_ICMP_HDR_LEN bytes in): it was sent by the VIP, so its reversed tuple is the flow.
 * Returns 0, or -1 for a quote that is truncated, of another family, from another address
 * or (IPv4) a non-first fragment. */
static __always_inline int glb_icmp_quote(struct glb_flow *f, void *icmp, __u32 icmp_off, void *data_end,
					  const int alen)
{
	void *q = icmp + GLB_ICMP_HDR_LEN;
	__u32 hl = glb_quote_hdr_len(q, data_end, GLB_IP_HDR_LEN(alen), alen);
	__u16 *ports = q + hl;

	if (!hl || icmp_off + GLB_ICMP_HDR_LEN + hl + 4 > f->inner_len || (void *)(ports + 2) > data_end ||
	    !glb_addr_eq(q + GLB_IP_SADDR_OFF(alen), f->daddr, alen))
		return -1;
	if (GLB_IS_V4(alen) && (((struct iphdr *)q)->frag_off & __constant_htons(GLB_IP_OFFSET)))
		return -1;
	/* Reverse it: the client is the destination of the quoted packet. */
	glb_addr_load(f->saddr, q + GLB_IP_DADDR_OFF(alen), alen);
	f->match_proto = glb_ip_proto(q, alen);
	glb_flow_ports(f, ports[1], ports[0]);
	return 0;
}

/* A packet to `daddr` we could not make sense of: drop it if it is for a VIP, else pass. */
static __always_inline __u32 glb_bad(__u32 gen, const __u64 *daddr, const int alen)
{
	const struct glb_bind_rule *b = glb_match(gen, daddr, alen, 0, 0, GLB_MODE_ADDR);

	return b ? GLB_VERDICT(XDP_DROP, b->slot, GLB_R_DROP_MALFORMED) : GLB_NOT_VIP;
}

/* One IP packet (either family) after the Ethernet header: parse, classify, match a bind,
 * forward. */
static __always_inline __u32 glb_ip(struct xdp_md *ctx, void *data, void *data_end, __u32 l2, __u16 tci,
				    const int alen)
{
	void *ip = data + l2, *l4;
	struct glb_flow f = {};
	const struct glb_bind_rule *b;
	__u32 gen, off;
	int l4off;

	if (ip + GLB_IP_HDR_LEN(alen) > data_end)
		return GLB_NOT_VIP;
	glb_addr_load(f.daddr, ip + GLB_IP_DADDR_OFF(alen), alen);
	gen = glb_live_gen();
	if (glb_ip_version(ip) != GLB_IP_VERSION(alen))
		goto bad;
	glb_addr_load(f.saddr, ip + GLB_IP_SADDR_OFF(alen), alen);
	l4off = GLB_IS_V4(alen) ? glb_ipv4_l3(ip, data_end, &f) : glb_ipv6_l3(ip, data_end, &f);
	if (l4off < 0)
		goto bad;
	off = l4off;
	l4 = ip + (off & 0x3fff); /* off <= 40 + 4 * 2048: the mask only bounds it for the verifier */

	if (f.match_proto == IPPROTO_TCP || f.match_proto == IPPROTO_UDP) {
		if (f.fragment) {
			f.mode = GLB_MODE_PROTO; /* fragments hash and match without ports */
			f.hint = glb_ip_hint(ip, alen);
		} else {
			__u32 need = f.match_proto == IPPROTO_TCP ? sizeof(struct tcphdr) : sizeof(struct udphdr);

			if (off + need > f.inner_len || l4 + 4 > data_end)
				goto bad;
			glb_flow_ports(&f, *(__u16 *)l4, *(__u16 *)(l4 + 2));
		}
	}
#if GLB_ICMP
	else if (f.match_proto == GLB_IPPROTO_ICMP(alen)) {
		f.mode = GLB_MODE_ADDR; /* echo requests (and ICMP fragments) hash with ports 0 */
		f.hint = glb_ip_hint(ip, alen);
		if (!f.fragment) {
			__u8 type;

			if (off + GLB_ICMP_HDR_LEN > f.inner_len || l4 + GLB_ICMP_HDR_LEN > data_end)
				goto bad;
			type = *(__u8 *)l4;
			if (glb_icmp_is_error(type, alen)) {
				if (glb_icmp_quote(&f, l4, off, data_end, alen))
					goto bad;
			} else if (type != GLB_ICMP_ECHO_REQUEST(alen)) {
				b = glb_match(gen, f.daddr, alen, 0, 0, GLB_MODE_ADDR);
				return b ? GLB_VERDICT(XDP_PASS, b->slot, GLB_R_PASS_ICMP) : GLB_NOT_VIP;
			}
		}
		f.fragment = 0; /* no fragment policy for ICMP */
	}
#endif
	else
		return GLB_NOT_VIP;
	b = glb_match(gen, f.daddr, alen, f.match_proto, f.match_port, f.mode);
	return b ? glb_forward(ctx, gen, b, &f, l2, tci, alen) : GLB_NOT_VIP;
bad:
	return glb_bad(gen, f.daddr, alen);
}

int xdp_glb_director(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u16 proto, tci = 0;
	__u32 l2 = sizeof(struct ethhdr), v = GLB_NOT_VIP;

	if (data + sizeof(struct ethhdr) > data_end)
		goto out;
	/* struct ethhdr is packed: a 16-bit load instead of byte loads */
	proto = *(__u16 *)(data + __builtin_offsetof(struct ethhdr, h_proto));
#if GLB_VLAN
	if (proto == __constant_htons(ETH_P_8021Q)) {
		struct glb_vlan_hdr *tag = data + sizeof(struct ethhdr);

		if ((void *)(tag + 1) > data_end)
			goto out;
		tci = tag->tci;
		proto = tag->proto;
		l2 += sizeof(*tag);
	}
#endif
	if (proto == __constant_htons(ETH_P_IP))
		v = glb_ip(ctx, data, data_end, l2, tci, 4);
#if GLB_IPV6
	else if (proto == __constant_htons(ETH_P_IPV6))
		v = glb_ip(ctx, data, data_end, l2, tci, 16);
#endif
out:
	/* Frame bytes as the packet leaves (after encapsulation when forwarded). */
	glb_count(v >> 16, (v >> 8) & 0xff, ctx->data_end - ctx->data);
	return v & 0xff;
}
