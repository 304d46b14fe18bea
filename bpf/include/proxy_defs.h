/* Proxy-only definitions shared by bpf/proxy.c and the agent's loader
 * (the counters are enum proxy_counter in glb_reasons.h, whose names the agent parses, so
 * the names it reports can never drift from what the program counts).
 *
 * Nothing here is part of the wire format: that lives in glb_gue.h, shared with the
 * director. Map values are written by the agent in host memory layout; fields marked
 * "network order" hold packet bytes as they appear on the wire.
 */
#ifndef GLB_PROXY_DEFS_H
#define GLB_PROXY_DEFS_H

#include "glb_reasons.h" /* enum proxy_counter: the proxy_stats indices */

/* proxy_cfg[0]: who this proxy is. One entry, written by the agent before traffic counts.
 * An all-zero entry (agent not configured yet) matches no packet, so the program is inert
 * until configured: every packet is passed to the kernel untouched.
 */
struct proxy_config {
	__be32 address;  /* this proxy's IPv4 address (network order): the only outer destination
	                  * whose GUE we decapsulate, and the outer source of second-chance forwards */
	__be16 gue_port; /* UDP destination port that carries GUE (network order), normally 19523 */
	__u16 reserved;  /* 0; keeps the struct 8 bytes with no hidden padding */
};

/* Roles of a sender in proxy_senders (a bit mask: one host may hold both roles in a lab). */
#define PROXY_SENDER_DIRECTOR 1 /* may send fresh encapsulations (any next_hop) */
#define PROXY_SENDER_PROXY 2    /* another proxy: may only send second-chance forwards, which
                                 * always have next_hop >= 1 because the forwarder increments it */

/* proxy_senders value, keyed by the sender's IPv4 address (network order). A GUE packet whose
 * outer source is not a key is dropped: it could otherwise smuggle an arbitrary inner packet
 * past the network's filtering to a VIP (or anything the proxy routes to).
 */
struct proxy_sender {
	__u32 roles; /* PROXY_SENDER_* bits */
};

/* proxy_dsts key: an LPM-trie key over 16-byte addresses. IPv4 addresses are stored as
 * IPv4-mapped IPv6 (::ffff:a.b.c.d, prefixlen 96 + v4 prefix length) so one trie serves both
 * families. The trie allows VIP prefixes (a service's cidrs) as well as single VIPs.
 */
struct proxy_dst_key {
	__u32 prefixlen; /* LPM trie convention: number of significant bits of addr */
	__u8 addr[16];   /* network order */
};

#define PROXY_DST_VIP 1  /* a VIP (or VIP prefix) served on this proxy's loopback */
#define PROXY_DST_SELF 2 /* the proxy's own address: target of the director's GUE health probe */

/* proxy_dsts value: why an inner destination is acceptable. An inner packet whose destination
 * is not in the trie is dropped, so an allowed sender cannot use this proxy as a relay into
 * networks behind it either.
 */
struct proxy_dst {
	__u32 kind; /* PROXY_DST_* */
};

#endif /* GLB_PROXY_DEFS_H */
