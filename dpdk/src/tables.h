/* Loading the agent's files into a table set (struct glb_dp_tables).
 *
 * Input, as glb_agent/dataplane/dpdk.py writes it:
 *   director.conf          JSON: outbound_gateway_mac, outbound_src_ip, hash_fields,
 *                          alt_hash_fields (while migrating) and optionally table_names
 *                          (ours: service names in file order)
 *   forwarding_rows.bin    "GLBK": K-wide send-order rows of addresses (the XDP director's
 *                          glb_rows; docs/director-dataplane.md), or
 *   forwarding_table.bin   "GLBD": upstream format version 2 (glb_agent/table/upstream_bin.py)
 * plus what only the host knows (the port's MAC and MTU) and optional table names.
 *
 * The result is what glb_agent/dataplane/director_maps.compile_tables would write into the
 * XDP director's maps for the same tables: binds sorted most specific first, the fragment
 * flag, the SipHash key state, rows as send orders of addresses (row_width wide, zero-padded). Any error leaves
 * nothing allocated and names the file and the place in it.
 */
#ifndef GLB_DP_TABLES_H
#define GLB_DP_TABLES_H

#include <stddef.h>

#include "glb_dp.h"

/* Host-side settings the files do not carry. */
struct glb_dp_host {
	__u8 src_mac[6];       /* our MAC: outer Ethernet source */
	__u32 mtu;             /* largest outer IPv4 packet */
	const char *names;     /* comma-separated table names in file order (overrides the
				* conf's table_names), or NULL */
};

/* Builds a table set from the two files; on error returns NULL with a message in `err`. */
struct glb_dp_tables *glb_dp_tables_load(const char *conf_path, const char *bin_path,
					 const struct glb_dp_host *host, char *err, size_t errlen);

void glb_dp_tables_free(struct glb_dp_tables *t);

/* Parses "02:00:00:00:00:01" into 6 bytes; returns 0 on success. */
int glb_dp_parse_mac(const char *text, __u8 mac[6]);

#endif /* GLB_DP_TABLES_H */
