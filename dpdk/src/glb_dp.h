/* The DPDK director's view of the forwarding core shared with the XDP director.
 *
 * bpf/director.c is compiled unchanged into this process (dpdk/src/fwd.c): its maps become
 * the arrays of one immutable table set (struct glb_dp_tables) that the control thread
 * builds from the agent's files and publishes with RCU, its per-CPU counters become one
 * counter block per lcore, and its compile-time constants (outer addresses, MTU) are read
 * from the live table set. Hash fields select one of fifteen builds of the same source
 * (every non-empty subset of the four fields), as the agent's bcc flags select one program.
 * The row width (K) and the migration source fields (alt_hash_fields) are not compiled in:
 * a plain build reads rows GLB_DP_ROW_WIDTH wide, a migrating build (GLB_ALT_HASH) rows
 * GLB_DP_ALT_ROW_WIDTH wide with the old fields read from the table set; narrower rows are
 * stored zero-padded, which director.c treats exactly as a narrower GLB_ROW_WIDTH (unused
 * entries are 0 and only at the end), so the bytes out are the same.
 *
 * Everything here is plain C (no DPDK headers), so the core can be built and tested alone.
 */
#ifndef GLB_DP_H
#define GLB_DP_H

#include <stdint.h>
#include <linux/types.h>

#include "uapi/linux/bpf.h" /* dpdk/src/shim: struct xdp_md, XDP actions */
#define GLB_SIP_KERNEL_TYPES 1  /* glb_siphash.h: director.c hashes __u64 words */
#include "director_defs.h"

/* Shapes of the userspace build. Upstream's file holds at most 256 binds per table; the
 * director matches at most GLB_DP_MAX_BINDS per family over all tables. */
#define GLB_DP_MAX_TABLES 256
#define GLB_DP_MAX_BINDS 1024

/* Hash-field bits, in upstream's order; a table set's `hash_variant` is their OR. */
#define GLB_DP_HASH_SRC_ADDR 1
#define GLB_DP_HASH_DST_ADDR 2
#define GLB_DP_HASH_SRC_PORT 4
#define GLB_DP_HASH_DST_PORT 8
#define GLB_DP_HASH_VARIANTS 16

/* Stored row widths: the widest send order (a GUE hop list holds 8 - 1 hops), and, while
 * hash fields migrate, the widest K whose two rows still fit the hop list (2K - 1 <= 7). */
#define GLB_DP_ROW_WIDTH 8
#define GLB_DP_ALT_ROW_WIDTH 4

/* One complete, immutable set of tables and settings. Forwarding lcores read the live one
 * through an RCU-protected pointer; a reload builds a new one and swaps the pointer. */
struct glb_dp_tables {
	/* What the XDP build compiles in (glb_agent BuildOptions.cflags), here per table set. */
	__u32 src_ip;      /* outer source address, as the u32 its wire bytes load as */
	__u32 eth_w0, eth_w1, eth_w2; /* outer dst+src MAC as three u32 loads */
	__u32 csum_base;   /* ones'-complement sum of the constant outer IPv4 words */
	__u32 mtu;         /* largest outer IPv4 packet */
	__u32 hash_variant; /* GLB_DP_HASH_* bits */
	__u32 alt_variant;  /* GLB_DP_HASH_* bits of alt_hash_fields, 0 = not migrating */
	__u32 row_width;    /* stored entries per row: GLB_DP_ROW_WIDTH, or GLB_DP_ALT_ROW_WIDTH
			     * when migrating (the width the selected build reads) */
	__u32 ntables;
	__u64 generation;  /* increases with every table set published */
	struct glb_bind4 *binds4; /* GLB_DP_MAX_BINDS entries, proto 0 ends the list */
	struct glb_bind6 *binds6;
	__be32 *rows;             /* ntables << GLB_TABLE_ROW_BITS rows of row_width IPv4
				   * addresses (wire order): the send order, 0 = unused */
	char (*names)[64];        /* ntables names, for the counters */
	struct glb_stat *stats;   /* GLB_DP_STAT_CELLS per forwarding lcore (main.c attaches
				   * them): a table set counts into its own cells, so a reload
				   * that moves a service to another slot cannot mix its counts
				   * with another's; retired sets are folded into per-name totals */
};

/* Counter cells of one lcore: [slot * GLB_NR_REASONS + reason], slot GLB_DP_MAX_TABLES is
 * "no service", as the XDP director's per-CPU glb_stats. */
#define GLB_DP_STAT_CELLS ((GLB_DP_MAX_TABLES + 1) * GLB_NR_REASONS)

/* Per-thread state the forwarding core reads: the table set of the current burst and this
 * lcore's counters. initial-exec: the core is linked into the executable, so a TLS access is
 * one %fs-relative load, not a __tls_get_addr call (meson builds the variants as PIC). */
#define GLB_DP_TLS __thread __attribute__((tls_model("initial-exec")))
extern GLB_DP_TLS const struct glb_dp_tables *glb_dp_cur;
extern GLB_DP_TLS struct glb_stat *glb_dp_stats;

/* Runs the director on `n` packets; out[i] is the XDP action for pkt[i], whose data/data_end
 * then describe the frame to send (encapsulated in place when XDP_TX). */
typedef void (*glb_dp_burst_fn)(struct xdp_md *pkt, __u8 *out, unsigned int n);

/* One burst function per hash variant (index 0 unused), without and with hash-field
 * migration. */
extern const glb_dp_burst_fn glb_dp_burst[GLB_DP_HASH_VARIANTS];
extern const glb_dp_burst_fn glb_dp_burst_alt[GLB_DP_HASH_VARIANTS];

/* The build that forwards with table set `t`. */
static inline glb_dp_burst_fn glb_dp_burst_of(const struct glb_dp_tables *t)
{
	return (t->alt_variant ? glb_dp_burst_alt : glb_dp_burst)[t->hash_variant];
}

/* Names of the counter reasons, index = enum glb_reason. */
extern const char *const glb_dp_reason_names[GLB_NR_REASONS];

#endif /* GLB_DP_H */
