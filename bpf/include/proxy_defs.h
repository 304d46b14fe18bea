/* Proxy-only definitions shared by bpf/proxy.c and the agent's loader
 * (glb_agent/dataplane/proxy.py parses the counter enum below, so the names the agent
 * reports can never drift from what the program counts).
 *
 * Nothing here is part of the wire format: that lives in glb_gue.h, shared with the
 * director. Map values are written by the agent in host memory layout; fields marked
 * "network order" hold packet bytes as they appear on the wire.
 */
#ifndef GLB_PROXY_DEFS_H
#define GLB_PROXY_DEFS_H

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

/* proxy_build[0]: SHA-256 of the program source and build flags, written by the loader. A
 * restarted agent compares it with its own build to decide whether it can adopt the
 * program already attached to the interface (no recompile, no blip) or must replace it.
 */
struct proxy_build {
	__u8 digest[32];
};

/* Index into the per-CPU proxy_stats array. Keep PROXY_C_MAX last; the agent reads the names
 * (lowercased, without the PROXY_C_ prefix) from this enum.
 */
enum proxy_counter {
	PROXY_C_RX_GUE = 0,          /* UDP to gue_port addressed to this proxy (every verdict below) */
	PROXY_C_ACCEPT_SYN,          /* inner TCP SYN: new connections always start here */
	PROXY_C_ACCEPT_ESTABLISHED,  /* inner TCP of a full socket on this host (established, closing) */
	PROXY_C_ACCEPT_REQUEST,      /* inner TCP of a handshake in progress (request socket) */
	PROXY_C_ACCEPT_TIME_WAIT,    /* inner TCP of a connection in TIME_WAIT here */
	PROXY_C_ACCEPT_SYNCOOKIE,    /* inner TCP ACK carrying a valid SYN cookie of a listener here */
	PROXY_C_ACCEPT_PTB_KNOWN,    /* ICMP frag-needed / packet-too-big about a connection here */
	PROXY_C_ACCEPT_LAST_RESORT,  /* unknown here and no hops left: the local stack answers (RST) */
	PROXY_C_ACCEPT_SELF_HOP,     /* the next hop is this proxy: taken here, never looped */
	PROXY_C_ACCEPT_UDP,          /* inner UDP: no connection state, the first proxy serves it */
	PROXY_C_ACCEPT_ICMP,         /* other inner ICMP, including the director's echo health probe */
	PROXY_C_ACCEPT_FRAGMENT,     /* inner non-first fragment: no ports to look up */
	PROXY_C_FORWARDED_TX,        /* second chance: sent to the next hop out of the same interface */
	PROXY_C_FORWARDED_REDIRECT,  /* second chance: sent to the next hop through another interface */
	PROXY_C_DROP_SENDER,         /* outer source is not an allowed director or proxy (spoofed) */
	PROXY_C_DROP_SENDER_ROLE,    /* a proxy sent a fresh encapsulation (next_hop 0) */
	PROXY_C_DROP_OUTER,          /* outer IPv4/UDP malformed, truncated or fragmented */
	PROXY_C_DROP_GUE_VERSION,    /* GUE version != 0, C bit set, or flags != 0 */
	PROXY_C_DROP_GUE_PROTO,      /* GUE proto is neither 4 (IPv4) nor 41 (IPv6) */
	PROXY_C_DROP_GUE_LENGTH,     /* hlen != hop_count + 1, too many hops, or header truncated */
	PROXY_C_DROP_GUE_PRIVATE,    /* GLB private data type != 0 */
	PROXY_C_DROP_GUE_NEXT_HOP,   /* next_hop > hop_count */
	PROXY_C_DROP_INNER,          /* inner IP header malformed, truncated or of the wrong family */
	PROXY_C_DROP_INNER_DST,      /* inner destination is neither a VIP nor this proxy */
	PROXY_C_DROP_INNER_PROTO,    /* inner protocol other than TCP, UDP, ICMP/ICMPv6 */
	PROXY_C_DROP_FWD_FIB,        /* next hop not routable yet (no route, neighbour unresolved) */
	PROXY_C_DROP_FWD_DISABLED,   /* net.ipv4.conf.lo.forwarding is 0, so no route lookup works */
	PROXY_C_DROP_DECAP,          /* the kernel refused to move the packet head (should not happen) */
	PROXY_C_MAX,
};

#endif /* GLB_PROXY_DEFS_H */
