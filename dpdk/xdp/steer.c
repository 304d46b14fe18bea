/* Steering program for the DPDK director on an af_xdp port: software flow bifurcation.
 *
 * The net_af_xdp PMD loads this program (devarg xdp_prog=.../glb-steer.bpf.o) instead of its
 * default one, which would take every packet away from the kernel. Here only packets to a
 * VIP (the destination falls in a bind's network, IPv4 or IPv6, behind at most one 802.1Q
 * tag) go to the AF_XDP socket of their RX queue, i.e. to the DPDK director; everything else
 * (BGP, SSH, health checks, ARP/ND, the host's own traffic) goes on to the kernel as usual.
 *
 * The director keeps glb_steer4/glb_steer6 equal to its live binds (dpdk/src/steer.c).
 * Built with clang -target bpf and BTF, as libxdp's multi-program dispatcher requires.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define GLB_STEER_MAX_QUEUES 64
#define GLB_STEER_MAX_PREFIXES 4096
#define GLB_ETH_P_8021Q 0x8100

/* AF_XDP sockets by RX queue; the PMD inserts one per queue it opens. Name fixed by the PMD. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, GLB_STEER_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

/* LPM keys: prefix length in bits, then the address in network order. */
struct glb_steer_key4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct glb_steer_key6 {
	__u32 prefixlen;
	__u8 addr[16];
};

/* VIP networks of the live binds; the value is unused (1). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, GLB_STEER_MAX_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct glb_steer_key4);
	__type(value, __u8);
} glb_steer4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, GLB_STEER_MAX_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct glb_steer_key6);
	__type(value, __u8);
} glb_steer6 SEC(".maps");

SEC("xdp")
int glb_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *l3 = eth + 1;
	__u16 proto;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	proto = eth->h_proto;
	if (proto == bpf_htons(GLB_ETH_P_8021Q)) {
		__u16 *tag = l3;

		if ((void *)(tag + 2) > data_end)
			return XDP_PASS;
		proto = tag[1];
		l3 = tag + 2;
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		struct glb_steer_key4 k = { .prefixlen = 32 };

		if ((void *)(ip + 1) > data_end)
			return XDP_PASS;
		__builtin_memcpy(k.addr, &ip->daddr, 4);
		if (bpf_map_lookup_elem(&glb_steer4, &k))
			return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		struct glb_steer_key6 k = { .prefixlen = 128 };

		if ((void *)(ip6 + 1) > data_end)
			return XDP_PASS;
		__builtin_memcpy(k.addr, &ip6->daddr, 16);
		if (bpf_map_lookup_elem(&glb_steer6, &k))
			return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
	}
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
