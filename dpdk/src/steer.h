/* Keeping the af_xdp steering program's VIP maps (dpdk/xdp/steer.c) equal to the live binds. */
#ifndef GLB_DP_STEER_H
#define GLB_DP_STEER_H

#include <stddef.h>
#include <linux/types.h>

/* One VIP network (kept free of the director's headers: this file's users include the
 * kernel's linux/bpf.h, the forwarding core its userspace stand-in). */
struct glb_steer_prefix {
	int family;     /* 4 or 6 */
	__u32 bits;     /* prefix length */
	__u8 addr[16];  /* network address, network order (4 bytes used for IPv4) */
};

/* Finds glb_steer4/glb_steer6 of the glb_steer program attached to `ifname` (directly or
 * under libxdp's dispatcher); returns 0, or -1 with a message. */
int glb_steer_open(const char *ifname, char *err, size_t len);

/* Makes the maps hold exactly `p[0..n)`; returns 0, or -1 with a message. No-op when no
 * maps were opened. */
int glb_steer_sync(const struct glb_steer_prefix *p, unsigned int n, char *err, size_t len);

#endif /* GLB_DP_STEER_H */
