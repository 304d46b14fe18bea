/* Packet-parsing helpers shared by the director and the proxy, written once for both IP
 * families.
 *
 * Every helper that differs by family takes the address length `alen` (4 or 16) as a
 * compile-time constant; the programs call them from __always_inline functions, so each
 * family gets its own straight-line copy with the other family's branches folded away (no
 * cost over hand-written per-family code), while the source has one path whose only
 * differences are the sizes and offsets of glb_consts.h.
 *
 * Addresses travel as two 64-bit words in wire byte order (what the hash, the bind match
 * and the socket tuple consume): an IPv4 address fills the low 4 bytes of word 0 and word 1
 * stays 0. Pointers are into the packet; callers have checked the bounds the comments name.
 */
#ifndef GLB_PARSE_H
#define GLB_PARSE_H

#include "glb_consts.h"
#include "glb_verifier.h"

static __always_inline __u16 glb_ntohs(__u16 v)
{
	return __builtin_bswap16(v);
}

/* The version nibble of the IP header at `ip` (IPv4 and IPv6 keep it in the same place). */
static __always_inline __u32 glb_ip_version(const void *ip)
{
	return *(const __u8 *)ip >> 4;
}

/* Header length of the IP header at `ip` (GLB_IP_HDR_LEN(alen) bytes readable): IPv4 IHL in
 * bytes (callers reject < sizeof(struct iphdr)), the IPv6 base header's fixed 40. Extension
 * headers are the caller's policy. At most 60: safe to add to a packet pointer. */
static __always_inline __u32 glb_ip_hdr_len(const void *ip, const int alen)
{
	return GLB_IS_V4(alen) ? ((const struct iphdr *)ip)->ihl * 4 : sizeof(struct ipv6hdr);
}

/* The IP packet's length as its header states it (IPv4 total length, IPv6 40 + payload
 * length), bounded for the verifier so it can be added to a packet pointer. */
static __always_inline __u32 glb_ip_len(const void *ip, const int alen)
{
	if (GLB_IS_V4(alen))
		return GLB_BOUND16(glb_ntohs(((const struct iphdr *)ip)->tot_len));
	return sizeof(struct ipv6hdr) + GLB_BOUND16(glb_ntohs(((const struct ipv6hdr *)ip)->payload_len));
}

/* The upper-layer protocol field (IPv4 protocol, IPv6 next header). */
static __always_inline __u8 glb_ip_proto(const void *ip, const int alen)
{
	return *(const __u8 *)(ip + GLB_IP_PROTO_OFF(alen));
}

/* Upstream's flow hint for a packet without ports (folded into the GUE UDP source port):
 * the IPv4 identification, the low 16 bits of the IPv6 flow label; host order. */
static __always_inline __u16 glb_ip_hint(const void *ip, const int alen)
{
	const __u8 *fl = ((const struct ipv6hdr *)ip)->flow_lbl;

	if (GLB_IS_V4(alen))
		return glb_ntohs(((const struct iphdr *)ip)->id);
	return ((__u16)fl[1] << 8) | fl[2];
}

/* Copies the address at `p` into two words (see the top of this file). */
static __always_inline void glb_addr_load(__u64 *dst, const void *p, const int alen)
{
	if (GLB_IS_V4(alen))
		dst[0] = *(const __u32 *)p;
	else
		__builtin_memcpy(dst, (const __u32 *)p, 16); /* typed: 4-byte loads, not byte loads */
}

/* Is the address at `p` equal to `a` (loaded with glb_addr_load)? */
static __always_inline int glb_addr_eq(const void *p, const __u64 *a, const int alen)
{
	__u64 w[2];

	if (GLB_IS_V4(alen))
		return *(const __u32 *)p == (__u32)a[0];
	__builtin_memcpy(w, (const __u32 *)p, 16);
	return w[0] == a[0] && w[1] == a[1];
}

/* Is `a` inside net/mask (both `alen` bytes, wire order, e.g. in a map value)? */
static __always_inline int glb_addr_in(const __u64 *a, const void *net, const void *mask, const int alen)
{
	if (GLB_IS_V4(alen))
		return ((__u32)a[0] & *(const __u32 *)mask) == *(const __u32 *)net;
	return (a[0] & ((const __u64 *)mask)[0]) == ((const __u64 *)net)[0] &&
	       (a[1] & ((const __u64 *)mask)[1]) == ((const __u64 *)net)[1];
}

/* ICMP errors that quote a packet of the flow (RFC 792 / RFC 4443): IPv4 destination
 * unreachable (incl. fragmentation needed), time exceeded, parameter problem; ICMPv6
 * destination unreachable, packet too big, time exceeded, parameter problem. */
static __always_inline int glb_icmp_is_error(__u8 type, const int alen)
{
	if (GLB_IS_V4(alen))
		return type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED || type == ICMP_PARAMETERPROB;
	return type >= ICMPV6_DEST_UNREACH && type <= ICMPV6_PARAMPROB;
}

/* Path-MTU errors: IPv4 fragmentation needed, ICMPv6 packet too big. `icmp` points at a
 * complete ICMP header. */
static __always_inline int glb_icmp_is_ptb(const void *icmp, const int alen)
{
	const struct icmphdr *h = icmp;

	if (GLB_IS_V4(alen))
		return h->type == ICMP_DEST_UNREACH && h->code == ICMP_FRAG_NEEDED;
	return h->type == ICMPV6_PKT_TOOBIG;
}

/* The header length of the IP header an ICMP error quotes at `q`, or 0 when the first
 * `need` bytes of the quote are not in the frame, it is not of the family, or its IPv4 IHL
 * is below 5. `need` >= GLB_IP_HDR_LEN(alen). */
static __always_inline __u32 glb_quote_hdr_len(const void *q, const void *data_end, __u32 need, const int alen)
{
	__u32 hl;

	if (q + need > data_end || glb_ip_version(q) != GLB_IP_VERSION(alen))
		return 0;
	hl = glb_ip_hdr_len(q, alen);
	return hl < GLB_IP_HDR_LEN(alen) ? 0 : hl;
}

#endif /* GLB_PARSE_H */
