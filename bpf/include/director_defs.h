/* Director data plane: the layouts of every map value the XDP program shares with the agent.
 *
 * The agent (glb_agent/dataplane/director_maps.py) packs these same layouts from Python, so
 * each struct has a fixed size checked at compile time; change both sides together and bump
 * GLB_DIRECTOR_MAPS_VERSION so a running director's pinned maps are recreated rather than
 * misread.
 *
 * All multi-byte address fields are in network byte order (they are compared with packet
 * bytes as loaded); ports and counters are in host byte order.
 */
#ifndef DIRECTOR_DEFS_H
#define DIRECTOR_DEFS_H

#include "glb_siphash.h" /* struct glb_sip: a table's expanded SipHash key */

#define GLB_DIRECTOR_MAPS_VERSION 2

#define GLB_TABLE_ROWS 65536 /* rows per forwarding table, as upstream (hash & 0xffff) */
#define GLB_TABLE_ROW_BITS 16
#define GLB_GENERATIONS 2    /* double buffering: one generation live, one being written */

/* ctl[0]: which generation of binds and rows packets use. The agent writes the inactive
 * generation completely, then flips `gen` with one 4-byte map update: a packet reads `gen`
 * once and then only touches that generation, so it sees either all of the old state or all
 * of the new. `loaded` is 0 until the first full table set was written (readiness gate). */
struct glb_ctl {
	__u32 gen;
	__u32 loaded;
};

/* Flags of a bind. */
#define GLB_BIND_FRAG_OK 0x01 /* every bind overlapping this one (same protocol) uses the
			       * same table, so a fragment without ports can still be mapped
			       * to the right table by address and protocol alone */

/* One IPv4 bind (VIP or prefix, protocol, port range) of one generation.
 * binds4[gen * GLB_MAX_BINDS + i]; the list of a generation ends at the first entry with
 * proto == 0 (all-zero entries, which is also what a fresh map holds). Entries are sorted
 * most specific first (longest prefix, then narrowest port range): first match wins.
 * The table's SipHash key travels with the bind so a match needs no further lookup, already
 * expanded into SipHash state (see struct glb_sip). */
struct glb_bind4 {
	__be32 net;       /* network address, host bits zero */
	__be32 mask;      /* netmask */
	__u8 proto;       /* IPPROTO_TCP or IPPROTO_UDP; 0 terminates the list */
	__u8 flags;       /* GLB_BIND_* */
	__u16 slot;       /* table slot: selects rows and per-service counters */
	__u16 port_lo;    /* first port of the range */
	__u16 port_span;  /* last port - first port */
	struct glb_sip sip; /* the table's SipHash key, expanded */
};

/* One IPv6 bind; same rules as glb_bind4, addresses as two 64-bit halves. */
struct glb_bind6 {
	__u64 net[2];
	__u64 mask[2];
	__u8 proto;
	__u8 flags;
	__u16 slot;
	__u16 port_lo;
	__u16 port_span;
	struct glb_sip sip;
};

/* One forwarding-table row: the outer destination (primary proxy) and the GUE hop
 * (secondary proxy), both as IPv4 addresses, so one lookup gives everything the encap
 * needs. rows[((gen * GLB_MAX_TABLES) + slot) << 16 | (hash & 0xffff)].
 * primary == 0 marks a table without backends (packets are dropped and counted). */
struct glb_row {
	__be32 primary;
	__be32 secondary;
};

/* Per-CPU counter cell; stats[slot * GLB_NR_REASONS + reason], where slot GLB_MAX_TABLES
 * is "no service" (traffic that matched no bind). The agent sums the CPUs. */
struct glb_stat {
	__u64 packets;
	__u64 bytes; /* frame bytes as seen by the program (after encapsulation if forwarded) */
};

/* Why a packet left the program the way it did; one counter cell per (slot, reason). */
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

#endif /* DIRECTOR_DEFS_H */
