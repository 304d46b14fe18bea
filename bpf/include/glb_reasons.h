/* Why a packet left a GLB program the way it did: the director's reasons and the proxy's
 * counters, in one place (as Cilium keeps its drop reasons in one header).
 *
 * The agent reads the names from this file (glb_agent/dataplane/reasons.py: the enumerator
 * names, lowercased, without the prefix, in order), so a counter added here shows up in
 * metrics and status with no second list to keep in step. Rules the parser relies on: one
 * enumerator per line, the first one "= 0", no other explicit values, and the count last.
 */
#ifndef GLB_REASONS_H
#define GLB_REASONS_H

/* --- director (bpf/director.c) --------------------------------------------------------- */

/* Director: one per-CPU counter cell per (table slot, reason), glb_stats[slot * GLB_NR_REASONS + reason]. */
enum glb_reason {
	GLB_R_FORWARDED = 0,      /* encapsulated and sent back out (XDP_TX) */
	GLB_R_PASS_NOT_VIP,       /* not IP, or no bind matches: left to the kernel */
	GLB_R_PASS_ICMP,          /* ICMP to a VIP that is neither echo request nor error */
	GLB_R_DROP_MALFORMED,     /* to a VIP, but truncated or inconsistent headers */
	GLB_R_DROP_FRAGMENT,      /* fragment that cannot be mapped consistently */
	GLB_R_DROP_NO_BACKEND,    /* the service's table has no backends */
	GLB_R_DROP_TOO_BIG,       /* encapsulated packet would exceed the interface MTU */
	GLB_R_DROP_ENCAP,         /* bpf_xdp_adjust_head failed (no headroom) */
	GLB_NR_REASONS,
};

/* --- proxy (bpf/proxy.c) ---------------------------------------------------------------- */

/* Proxy: index into the per-CPU proxy_stats array. Keep PROXY_C_MAX last; the agent reads the names
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

#endif /* GLB_REASONS_H */
