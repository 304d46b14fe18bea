/* Forwarding-table layout: what a row is, shared by every director implementation (the XDP
 * director's glb_rows map, the DPDK director) and packed by the agent
 * (glb_agent/dataplane/director_maps.py, ROW_DTYPE).
 *
 * A table has GLB_TABLE_ROWS rows, as upstream GLB: a packet's row is the low 16 bits of its
 * SipHash-2-4 (glb_siphash.h). Addresses are IPv4 in network byte order (the GUE underlay
 * is IPv4, as upstream).
 */
#ifndef GLB_TABLE_H
#define GLB_TABLE_H

#define GLB_TABLE_ROW_BITS 16
#define GLB_TABLE_ROWS (1 << GLB_TABLE_ROW_BITS) /* rows per forwarding table (hash & 0xffff) */

/* One forwarding-table row: the outer destination (primary proxy) and the GUE hop
 * (secondary proxy), both as IPv4 addresses, so one lookup gives everything the encap
 * needs. rows[((gen * GLB_MAX_TABLES) + slot) << 16 | (hash & 0xffff)].
 * primary == 0 marks a table without backends (packets are dropped and counted). */
struct glb_row {
	__be32 primary;
	__be32 secondary;
};
_Static_assert(sizeof(struct glb_row) == 8, "glb_row layout is shared with the agent");

#endif /* GLB_TABLE_H */
