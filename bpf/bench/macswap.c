/* Benchmark baseline: the least an XDP forwarder can do — swap Ethernet source and
 * destination and bounce the frame with XDP_TX. Director and proxy benchmarks report
 * their ns/packet as a ratio to this program timed in the same run, which cancels out
 * the machine's speed and BPF_PROG_TEST_RUN's fixed per-call overhead.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>

int xdp_macswap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	unsigned char tmp[ETH_ALEN];

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
	return XDP_TX;
}
