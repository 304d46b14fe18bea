/* The steering program's VIP maps: found through the interface's attached programs (the PMD
 * loads the object itself, so its map fds are not ours), then rewritten after every table
 * load: every bind network inserted, every other prefix removed. See steer.h. */
#include <errno.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <xdp/libxdp.h>

#include "steer.h"

#define STEER_PROG "glb_steer"
#define MAX_MAP_IDS 16

/* LPM keys as in dpdk/xdp/steer.c. */
struct key4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct key6 {
	__u32 prefixlen;
	__u8 addr[16];
};

static int map4 = -1, map6 = -1;

static void fail(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

/* Opens the maps named glb_steer4/6 among `prog_fd`'s maps. */
static void take_maps(int prog_fd)
{
	__u32 ids[MAX_MAP_IDS], i;
	struct bpf_prog_info info;
	__u32 ilen = sizeof(info);

	memset(&info, 0, sizeof(info));
	info.nr_map_ids = MAX_MAP_IDS;
	info.map_ids = (__u64)(unsigned long)ids;
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &ilen))
		return;
	for (i = 0; i < info.nr_map_ids && i < MAX_MAP_IDS; i++) {
		struct bpf_map_info mi;
		__u32 mlen = sizeof(mi);
		int fd = bpf_map_get_fd_by_id(ids[i]);

		if (fd < 0)
			continue;
		memset(&mi, 0, sizeof(mi));
		if (!bpf_obj_get_info_by_fd(fd, &mi, &mlen)) {
			if (!strcmp(mi.name, "glb_steer4") && map4 < 0) {
				map4 = fd;
				continue;
			}
			if (!strcmp(mi.name, "glb_steer6") && map6 < 0) {
				map6 = fd;
				continue;
			}
		}
		close(fd);
	}
}

int glb_steer_open(const char *ifname, char *err, size_t len)
{
	unsigned int ifindex = if_nametoindex(ifname);
	struct xdp_multiprog *mp;
	struct xdp_program *p;

	if (!ifindex) {
		fail(err, len, "--xdp-steer %s: no such interface", ifname);
		return -1;
	}
	mp = xdp_multiprog__get_from_ifindex((int)ifindex);
	if (libxdp_get_error(mp) || !mp) {
		fail(err, len, "--xdp-steer %s: no XDP program attached (give the af_xdp port xdp_prog=glb-steer.bpf.o)",
		     ifname);
		return -1;
	}
	if (xdp_multiprog__is_legacy(mp)) {
		p = xdp_multiprog__main_prog(mp);
		if (p && !strcmp(xdp_program__name(p), STEER_PROG))
			take_maps(xdp_program__fd(p));
	} else {
		for (p = xdp_multiprog__next_prog(NULL, mp); p; p = xdp_multiprog__next_prog(p, mp))
			if (!strcmp(xdp_program__name(p), STEER_PROG))
				take_maps(xdp_program__fd(p));
	}
	xdp_multiprog__close(mp);
	if (map4 < 0 || map6 < 0) {
		fail(err, len, "--xdp-steer %s: the attached programs include no %s with glb_steer4/glb_steer6 maps "
		     "(give the af_xdp port xdp_prog=glb-steer.bpf.o)", ifname, STEER_PROG);
		return -1;
	}
	return 0;
}

/* Removes every key of `fd` (`ksize` bytes: prefix length + address) not in `p`. */
static int prune(int fd, int family, size_t ksize, const struct glb_steer_prefix *p, unsigned int n)
{
	__u8 key[sizeof(struct key6)], next[sizeof(struct key6)];
	void *prev = NULL;

	while (!bpf_map_get_next_key(fd, prev, next)) {
		__u32 bits;
		unsigned int i;
		int keep = 0;

		memcpy(key, next, ksize);
		memcpy(&bits, key, 4);
		for (i = 0; i < n && !keep; i++)
			keep = p[i].family == family && p[i].bits == bits && !memcmp(p[i].addr, key + 4, ksize - 4);
		if (!keep) {
			if (bpf_map_delete_elem(fd, key))
				return -1;
			prev = NULL; /* restart: deleting invalidates the iteration */
			continue;
		}
		prev = key;
	}
	return 0;
}

int glb_steer_sync(const struct glb_steer_prefix *p, unsigned int n, char *err, size_t len)
{
	__u8 one = 1;
	unsigned int i;

	if (map4 < 0)
		return 0;
	for (i = 0; i < n; i++) {
		int rc;

		if (p[i].family == 4) {
			struct key4 k = { .prefixlen = p[i].bits };

			memcpy(k.addr, p[i].addr, 4);
			rc = bpf_map_update_elem(map4, &k, &one, BPF_ANY);
		} else {
			struct key6 k = { .prefixlen = p[i].bits };

			memcpy(k.addr, p[i].addr, 16);
			rc = bpf_map_update_elem(map6, &k, &one, BPF_ANY);
		}
		if (rc)
			goto bad;
	}
	if (prune(map4, 4, sizeof(struct key4), p, n) || prune(map6, 6, sizeof(struct key6), p, n))
		goto bad;
	return 0;
bad:
	fail(err, len, "steering maps: %s", strerror(errno));
	return -1;
}
