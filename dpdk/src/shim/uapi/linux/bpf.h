/* Userspace stand-in for the XDP program environment, so bpf/director.c compiles unchanged
 * into the DPDK director (the same C forwards in both data planes; see dpdk/src/xdp_shim.h
 * for the maps). director.c includes <uapi/linux/bpf.h> first; this header is found
 * instead of the kernel's because dpdk/src/shim is first on the include path.
 *
 * Only what director.c uses is defined: struct xdp_md (with 64-bit pointers and the
 * buffer start, which the kernel keeps in its private xdp_buff), the XDP actions,
 * bpf_xdp_adjust_head, and bcc's BPF_TABLE declaration (mapped to xdp_shim.h's lookups).
 */
#ifndef GLB_SHIM_UAPI_BPF_H
#define GLB_SHIM_UAPI_BPF_H

#include <stdint.h>
#include <errno.h>
#include <stddef.h> /* NULL, which bcc predefines */
#include <linux/types.h>
#include <asm/byteorder.h>

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* The kernel's enum xdp_action values (uapi/linux/bpf.h). */
enum xdp_action {
	XDP_ABORTED = 0,
	XDP_DROP,
	XDP_PASS,
	XDP_TX,
	XDP_REDIRECT,
};

/* The packet as director.c sees it: [data, data_end) is the frame; data_hard_start is the
 * first byte of the buffer (the mbuf's buf_addr), the limit of bpf_xdp_adjust_head. */
struct xdp_md {
	uintptr_t data;
	uintptr_t data_end;
	uintptr_t data_hard_start;
};

/* Minimum frame the kernel leaves after bpf_xdp_adjust_head (ETH_HLEN). */
#define GLB_SHIM_MIN_FRAME 14

/* bpf_xdp_adjust_head: move the frame start by `delta` bytes within the buffer, with the
 * kernel's checks (headroom, at least an Ethernet header left). */
static __always_inline long bpf_xdp_adjust_head(struct xdp_md *ctx, int delta)
{
	uintptr_t data = ctx->data + (intptr_t)delta;

	if (data < ctx->data_hard_start || data + GLB_SHIM_MIN_FRAME > ctx->data_end)
		return -EINVAL;
	ctx->data = data;
	return 0;
}

/* bcc's map declaration: `name.lookup(&key)` becomes a call through a constant function
 * pointer, which the compiler resolves and inlines (xdp_shim.h defines the functions
 * glb_shim_lookup_<name>). Map type, sizes and pinning do not apply in userspace. */
#define BPF_TABLE(type, key_t, val_t, name, n)                                       \
	static __always_inline val_t *glb_shim_lookup_##name(const key_t *key);         \
	static const struct {                                                           \
		val_t *(*lookup)(const key_t *);                                        \
	} name = { glb_shim_lookup_##name }
#define BPF_TABLE_PINNED(type, key_t, val_t, name, n, path) BPF_TABLE(type, key_t, val_t, name, n)

#endif /* GLB_SHIM_UAPI_BPF_H */
