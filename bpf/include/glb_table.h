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

/* Entries per row (K): the send order's length, 2 for upstream's two columns. A compile
 * flag of the director (the agent's BuildOptions.row_width), 2 when not given (the DPDK
 * director's upstream tables). */
#ifndef GLB_ROW_WIDTH
#define GLB_ROW_WIDTH 2
#endif
#if GLB_ROW_WIDTH < 2 || GLB_ROW_WIDTH > 8
#error "GLB_ROW_WIDTH must be 2-8"
#endif

/* One forwarding-table row: the row's send order as IPv4 proxy addresses. addr[0] is the
 * destination (the outer IPv4 destination), addr[1..] the GUE hop list in order; unused
 * entries are 0 and only at the end (0.0.0.0 is never a proxy). One lookup gives everything
 * the encapsulation needs: 4 * K bytes, so a row of K <= 8 never straddles a cache line.
 * rows[((gen * GLB_MAX_TABLES) + slot) << 16 | (hash & 0xffff)].
 * addr[0] == 0 marks a table without backends (packets are dropped and counted). */
struct glb_row {
	__be32 addr[GLB_ROW_WIDTH];
};
_Static_assert(sizeof(struct glb_row) == 4 * GLB_ROW_WIDTH, "glb_row layout is shared with the agent");

#endif /* GLB_TABLE_H */
