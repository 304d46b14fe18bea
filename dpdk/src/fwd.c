/* bpf/director.c compiled as userspace C, for one hash variant (GLB_HASH_* set by meson).
 *
 * The XDP program's compile-time constants become fields of the live table set, its maps
 * become lookups into that set (gen is always 0: RCU replaces the double-buffered
 * generations) and into this lcore's counters. The per-packet code is the XDP director's,
 * byte for byte; only the environment differs. meson sets GLB_HASH_* and the two names:
 * GLB_DP_BURST (exported, see glb_dp.h) and GLB_DP_DIRECTOR (director.c's entry point).
 */
#include "glb_dp.h"

#define GLB_SRC_IP (glb_dp_cur->src_ip)
#define GLB_ETH_W0 (glb_dp_cur->eth_w0)
#define GLB_ETH_W1 (glb_dp_cur->eth_w1)
#define GLB_ETH_W2 (glb_dp_cur->eth_w2)
#define GLB_IP_CSUM_BASE (glb_dp_cur->csum_base)
#define GLB_MTU (glb_dp_cur->mtu)
#define GLB_MAX_TABLES GLB_DP_MAX_TABLES
#define GLB_MAX_BINDS GLB_DP_MAX_BINDS
#define GLB_IPV6 1
#define GLB_VLAN 1
#define GLB_ICMP 1
/* Row width and migration (see glb_dp.h): meson sets GLB_ROW_WIDTH, and GLB_ALT_HASH for the
 * migrating builds, whose old fields come from the table set. */
#if defined(GLB_ALT_HASH) && GLB_ALT_HASH
_Static_assert(GLB_ROW_WIDTH == GLB_DP_ALT_ROW_WIDTH, "migrating builds read GLB_DP_ALT_ROW_WIDTH rows");
#define GLB_ALT_HASH_SRC_ADDR (glb_dp_cur->alt_variant & 1)
#define GLB_ALT_HASH_DST_ADDR ((glb_dp_cur->alt_variant >> 1) & 1)
#define GLB_ALT_HASH_SRC_PORT ((glb_dp_cur->alt_variant >> 2) & 1)
#define GLB_ALT_HASH_DST_PORT ((glb_dp_cur->alt_variant >> 3) & 1)
#else
_Static_assert(GLB_ROW_WIDTH == GLB_DP_ROW_WIDTH, "plain builds read GLB_DP_ROW_WIDTH rows");
#endif

/* Internal linkage, inlined into the burst loop below: director.c's later definition
 * (without `static`) inherits the linkage of this first declaration (C11 6.2.2). */
static inline __attribute__((always_inline)) int GLB_DP_DIRECTOR(struct xdp_md *ctx);

#define xdp_glb_director GLB_DP_DIRECTOR
#include "director.c"
#undef xdp_glb_director

/* The maps of director.c (declared through the shim's BPF_TABLE). */
static const struct glb_ctl glb_dp_ctl = { .gen = 0, .loaded = 1 };

static __always_inline struct glb_ctl *glb_shim_lookup_glb_ctl(const __u32 *key)
{
	(void)key;
	return (struct glb_ctl *)&glb_dp_ctl;
}

static __always_inline struct glb_bind4 *glb_shim_lookup_glb_binds4(const __u32 *key)
{
	return *key < GLB_DP_MAX_BINDS ? &glb_dp_cur->binds4[*key] : NULL;
}

static __always_inline struct glb_bind6 *glb_shim_lookup_glb_binds6(const __u32 *key)
{
	return *key < GLB_DP_MAX_BINDS ? &glb_dp_cur->binds6[*key] : NULL;
}

static __always_inline struct glb_row *glb_shim_lookup_glb_rows(const __u32 *key)
{
	return (*key >> GLB_TABLE_ROW_BITS) < glb_dp_cur->ntables ? (struct glb_row *)glb_dp_cur->rows + *key : NULL;
}

static __always_inline struct glb_stat *glb_shim_lookup_glb_stats(const __u32 *key)
{
	return *key < GLB_DP_STAT_CELLS ? &glb_dp_stats[*key] : NULL;
}

void GLB_DP_BURST(struct xdp_md *pkt, __u8 *out, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		out[i] = (__u8)GLB_DP_DIRECTOR(&pkt[i]);
}
