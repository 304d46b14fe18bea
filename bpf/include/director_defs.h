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
#include "glb_table.h"   /* struct glb_row, GLB_TABLE_ROWS */
#include "glb_reasons.h" /* enum glb_reason: the counter cells */

#define GLB_DIRECTOR_MAPS_VERSION 3 /* 3: K-wide rows (struct glb_row) */

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

/* What a bind matches besides its address, and where a match leads: the part of a bind
 * that is the same for both families. It follows the address pair in both bind layouts, so
 * family-generic code reaches it at offset 2 * alen (glb_bind_rule_of in bpf/director.c). */
struct glb_bind_rule {
	__u8 proto;       /* IPPROTO_TCP or IPPROTO_UDP; 0 terminates the list */
	__u8 flags;       /* GLB_BIND_* */
	__u16 slot;       /* table slot: selects rows and per-service counters */
	__u16 port_lo;    /* first port of the range */
	__u16 port_span;  /* last port - first port */
	struct glb_sip sip; /* the table's SipHash key, expanded (struct glb_sip) */
};

/* One IPv4 bind (VIP or prefix, protocol, port range) of one generation.
 * binds4[gen * GLB_MAX_BINDS + i]; the list of a generation ends at the first entry with
 * rule.proto == 0 (all-zero entries, which is also what a fresh map holds). Entries are
 * sorted most specific first (longest prefix, then narrowest port range): first match wins.
 * The table's SipHash key travels with the bind so a match needs no further lookup. */
struct glb_bind4 {
	__be32 net;       /* network address, host bits zero */
	__be32 mask;      /* netmask */
	struct glb_bind_rule rule;
};

/* One IPv6 bind; same rules as glb_bind4, addresses as two 64-bit halves (wire order). */
struct glb_bind6 {
	__u64 net[2];
	__u64 mask[2];
	struct glb_bind_rule rule;
};

_Static_assert(sizeof(struct glb_bind4) == 48, "glb_bind4 layout is shared with the agent");
_Static_assert(sizeof(struct glb_bind6) == 72, "glb_bind6 layout is shared with the agent");
_Static_assert(__builtin_offsetof(struct glb_bind4, rule) == 2 * 4, "rule follows net and mask");
_Static_assert(__builtin_offsetof(struct glb_bind6, rule) == 2 * 16, "rule follows net and mask");

/* Per-CPU counter cell; stats[slot * GLB_NR_REASONS + reason], where slot GLB_MAX_TABLES
 * is "no service" (traffic that matched no bind). The agent sums the CPUs. */
struct glb_stat {
	__u64 packets;
	__u64 bytes; /* frame bytes as seen by the program (after encapsulation if forwarded) */
};

#endif /* DIRECTOR_DEFS_H */
