/* GLB's GUE wire format, shared by the director (encapsulates) and the proxy (decapsulates,
 * forwards to the next hop). Layout follows upstream glb-director so upstream proxies accept
 * our packets and our proxies accept upstream directors':
 *
 *   outer IPv4 (DF, TTL 64) | UDP (dst 19523, checksum 0) | GUE base | GLB private data | inner IP
 *
 * The GUE base header's Hlen counts the private data in 32-bit words: 1 word of
 * {type, next_hop, hop_count} plus one word per hop. The director sends to the primary and
 * lists the secondary as hop 0, so next_hop = 0 and hop_count = 1. A proxy that gives a packet
 * its second chance sends it to hops[next_hop] with next_hop incremented, so the hop list is
 * walked in order, GLB_GUE_MAX_HOPS entries at most.
 */
#ifndef GLB_GUE_H
#define GLB_GUE_H

#define GLB_GUE_PORT 19523 /* 'L' 'B' + 1, as upstream */
#define GLB_GUE_MAX_HOPS 8 /* bounded so verifier-friendly loops and header sizes stay small */
#define GLB_IPV4_TTL 64
/* Outer UDP source port, as upstream: GLB_GUE_SPORT_BASE | ((hash ^ hint) & GLB_GUE_SPORT_MASK),
 * so ECMP/RSS on the path to the proxy spreads flows like the director did. */
#define GLB_GUE_SPORT_BASE 0x8000
#define GLB_GUE_SPORT_MASK 0x7fff

/* GUE base header (draft-ietf-intarea-gue), version 0, C bit 0. */
struct glb_gue_base {
	__u8 ver_c_hlen;   /* 2 bits version (0), 1 bit C (0), 5 bits Hlen in 32-bit words */
	__u8 proto;        /* inner protocol: 4 (IPv4) or 41 (IPv6) */
	__be16 flags;      /* always 0 */
} __attribute__((packed));

/* GLB private data header that follows the base header; hop addresses follow it. */
struct glb_gue_priv {
	__be16 private_type; /* always 0 */
	__u8 next_hop;       /* index into hops of the next proxy to try */
	__u8 hop_count;      /* number of IPv4 hop addresses that follow */
} __attribute__((packed));

/* The whole GLB GUE header: base, private data, then the hop list (hop_count IPv4
 * addresses, in the order second chance walks them). */
struct glb_gue_hdr {
	struct glb_gue_base base;
	struct glb_gue_priv priv;
	__be32 hops[];    /* hop_count entries */
} __attribute__((packed));

/* Bytes of a GUE header with N hops, and its Hlen (the private data in 32-bit words). */
#define GLB_GUE_HDR_LEN(hops) (sizeof(struct glb_gue_hdr) + 4 * (hops))
#define GLB_GUE_HLEN(hops) (sizeof(struct glb_gue_priv) / 4 + (hops))
_Static_assert(GLB_GUE_HDR_LEN(1) == 12, "upstream's header (one hop) is 12 bytes");

#define GLB_GUE_HLEN_MASK 0x1f
#define GLB_GUE_VERSION_MASK 0xc0
#define GLB_GUE_C_BIT 0x20

#endif /* GLB_GUE_H */
