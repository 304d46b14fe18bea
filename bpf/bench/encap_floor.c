/* Benchmark floor for the director, not a director: the least any GUE encapsulator must do
 * for the bench's IPv4 TCP packet. It pushes the 40 outer bytes with bpf_xdp_adjust_head,
 * writes constant headers and bounces the frame. With -DFLOOR_HASH=1 it also does what no
 * GLB-compatible director can skip: SipHash-2-4 of the source address under one key
 * compiled in as immediates, and the row read from a forwarding table. Nothing else: no
 * binds, no generations, no counters, no VLAN/IHL/fragment/ICMP handling, no checks the
 * real program must make. bench/bench_director_floor.py times it against bpf/director.c.
 *
 * Settings (-D): FLOOR_VIP (destination as loaded, little-endian u32),
 * FLOOR_SIP0..3 (struct glb_sip of the key, see glb_siphash.h).
 */
#include <uapi/linux/bpf.h>

#include "director_defs.h"

#if FLOOR_HASH
/* One table of forwarding rows: (primary, secondary) as in struct glb_row. */
BPF_TABLE("array", __u32, struct glb_row, floor_rows, GLB_TABLE_ROWS);
#endif

int xdp_encap_floor(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 hops = 0x0200000a0100000aULL;
	__u32 hash = 0;

	if (data + 14 + 20 + 20 > data_end || *(__u16 *)(data + 12) != 8)
		return XDP_PASS;
#if FLOOR_HASH
	if (*(__u32 *)(data + 30) != FLOOR_VIP)
		return XDP_PASS;
	{
		struct glb_sip key = {{FLOOR_SIP0, FLOOR_SIP1, FLOOR_SIP2, FLOOR_SIP3}};
		__u64 w[1] = {*(__u32 *)(data + 26)};
		struct glb_row *row;
		__u32 k;

		hash = glb_siphash24_lo16(w, 4, &key);
		k = hash;
		row = floor_rows.lookup(&k);
		if (!row)
			return XDP_DROP;
		hops = *(__u64 *)row;
	}
#endif
	if (bpf_xdp_adjust_head(ctx, -40))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + 14 + 40 > data_end)
		return XDP_DROP;
	*(__u64 *)data = 0x1122334455667788ULL;
	*(__u32 *)(data + 8) = 0x99aabbcc;
	*(__u16 *)(data + 12) = 8;
	*(__u64 *)(data + 14) = 0x4500;
	*(__u64 *)(data + 22) = 0x11400000 | ((__u64)hash << 32);
	*(__u32 *)(data + 30) = (__u32)hops;
	*(__u64 *)(data + 34) = 0x434c0080;
	*(__u64 *)(data + 42) = 0x0100000000000402ULL;
	*(__u32 *)(data + 50) = hops >> 32;
	return XDP_TX;
}
