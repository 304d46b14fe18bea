/* Loading director.conf + forwarding_table.bin into a table set. See tables.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "tables.h"
#include "glb_siphash.h"
#include "glb_gue.h"         /* GLB_IPV4_TTL */

/* forwarding_table.bin, format version 2 (glb_agent/table/upstream_bin.py). */
#define BIN_MAGIC "GLBD"
#define BIN_VERSION 2
/* Our K-candidate file (glb_agent/dataplane/dpdk.py, docs/director-dataplane.md): the same
 * header fields and binds, rows as send orders of addresses. */
#define KBIN_MAGIC "GLBK"
#define KBIN_VERSION 1
#define KBIN_HEADER 24        /* magic + u32 version, num_tables, table_entries, row_width, max_num_binds */
#define BIN_HEADER 24         /* magic + 5 x u32 */
#define BIN_BACKEND 24        /* u32 family, 16-byte address, u16 state, u16 health */
#define BIN_BIND 28           /* u32 family, 16-byte address, u16 bits, u16 lo, u16 hi, u8 proto, u8 pad */
#define BIN_KEY 16
#define BIN_FAMILY_V4 1
#define BIN_FAMILY_V6 2
#define BIN_LIMIT (1u << 20)  /* max_num_backends/binds beyond this can only be corruption */

#define HASH_FIELD_COUNT 4
static const char *const hash_field_names[HASH_FIELD_COUNT] = {
	"src_addr", "dst_addr", "src_port", "dst_port", /* GLB_DP_HASH_* bit order */
};

/* One bind while the set is assembled: where it came from and its sort key. */
struct pending_bind {
	int family;      /* 4 or 6 */
	__u8 net[16];    /* host bits cleared */
	__u8 mask[16];
	unsigned int bits;
	__u8 proto;
	__u16 lo, hi;
	__u32 table;
	unsigned int order; /* position in the file: stable tie-break, as Python's sort */
	char text[64];      /* the network as Python prints it, for the tie-break and messages */
};

static void fail(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

static __u32 le32(const __u8 *p)
{
	return (__u32)p[0] | (__u32)p[1] << 8 | (__u32)p[2] << 16 | (__u32)p[3] << 24;
}

static __u16 le16(const __u8 *p)
{
	return (__u16)(p[0] | p[1] << 8);
}

static __u64 le64(const __u8 *p)
{
	return (__u64)le32(p) | (__u64)le32(p + 4) << 32;
}

int glb_dp_parse_mac(const char *text, __u8 mac[6])
{
	unsigned int b[6];
	char extra;
	int i;

	if (!text || sscanf(text, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
			    &extra) != 6 || strlen(text) != 17)
		return -1;
	for (i = 0; i < 6; i++)
		mac[i] = (__u8)b[i];
	return 0;
}

/* director.conf: the settings upstream's director.conf carries that the data plane uses. */
/* director.conf's optional "table_names" (ours; upstream ignores unknown keys): the service
 * names of the tables in file order, joined with commas into *names (malloc'ed). */
static int conf_names(const char *path, json_t *root, char **names, char *err, size_t len)
{
	json_t *arr = json_object_get(root, "table_names"), *v;
	size_t i, total = 1;
	char *out;

	*names = NULL;
	if (!arr)
		return 0;
	if (!json_is_array(arr) || json_array_size(arr) == 0) {
		fail(err, len, "%s: table_names must be a non-empty list of names", path);
		return -1;
	}
	json_array_foreach(arr, i, v) {
		const char *n = json_is_string(v) ? json_string_value(v) : NULL;

		if (!n || !*n || strlen(n) >= 64 || strchr(n, ',')) {
			fail(err, len, "%s: table_names[%zu]: expected a name of 1-63 characters without commas", path, i);
			return -1;
		}
		total += strlen(n) + 1;
	}
	out = calloc(1, total);
	if (!out) {
		fail(err, len, "out of memory");
		return -1;
	}
	json_array_foreach(arr, i, v) {
		if (i)
			strcat(out, ",");
		strcat(out, json_string_value(v));
	}
	*names = out;
	return 0;
}

/* A field set of director.conf ({"src_addr": true, ...}, upstream's hash_fields and
 * alt_hash_fields) as GLB_DP_HASH_* bits into *bits; absent: 0. */
static int conf_fields(const char *path, json_t *root, const char *name, __u32 *bits, char *err, size_t len)
{
	json_t *fields = json_object_get(root, name), *val;
	const char *key;
	int i;

	*bits = 0;
	if (fields == NULL)
		return 0;
	if (!json_is_object(fields)) {
		fail(err, len, "%s: %s must be an object of field: true/false", path, name);
		return -1;
	}
	json_object_foreach(fields, key, val) {
		for (i = 0; i < HASH_FIELD_COUNT; i++)
			if (!strcmp(key, hash_field_names[i]))
				break;
		if (i == HASH_FIELD_COUNT || !json_is_boolean(val)) {
			fail(err, len, "%s: %s.%s: expected one of src_addr, dst_addr, src_port, dst_port set to "
			     "true or false", path, name, key);
			return -1;
		}
		if (json_is_true(val))
			*bits |= 1u << i;
	}
	return 0;
}

static int load_conf(const char *path, struct glb_dp_tables *t, __u8 gw_mac[6], char **names, char *err,
		     size_t len)
{
	json_error_t jerr;
	json_t *root, *v;
	struct in_addr src;

	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		fail(err, len, "%s:%d: %s", path, jerr.line, jerr.text);
		return -1;
	}
	if (!json_is_object(root)) {
		fail(err, len, "%s: expected a JSON object", path);
		goto bad;
	}
	v = json_object_get(root, "outbound_gateway_mac");
	if (!json_is_string(v) || glb_dp_parse_mac(json_string_value(v), gw_mac) || (gw_mac[0] & 1)) {
		fail(err, len, "%s: outbound_gateway_mac must be a unicast MAC like \"02:00:00:00:00:01\"", path);
		goto bad;
	}
	v = json_object_get(root, "outbound_src_ip");
	if (!json_is_string(v) || inet_pton(AF_INET, json_string_value(v), &src) != 1 || src.s_addr == 0) {
		fail(err, len, "%s: outbound_src_ip must be an IPv4 address (the outer header is IPv4)", path);
		goto bad;
	}
	memcpy(&t->src_ip, &src, 4); /* the wire bytes, loaded as the u32 director.c expects */
	if (conf_fields(path, root, "hash_fields", &t->hash_variant, err, len) ||
	    conf_fields(path, root, "alt_hash_fields", &t->alt_variant, err, len))
		goto bad;
	if (!json_object_get(root, "hash_fields"))
		t->hash_variant = GLB_DP_HASH_SRC_ADDR; /* upstream's default */
	if (!t->hash_variant) {
		fail(err, len, "%s: hash_fields: at least one field must be true", path);
		goto bad;
	}
	if (t->alt_variant == t->hash_variant) {
		fail(err, len, "%s: alt_hash_fields equals hash_fields: nothing to migrate", path);
		goto bad;
	}
	t->row_width = t->alt_variant ? GLB_DP_ALT_ROW_WIDTH : GLB_DP_ROW_WIDTH;
	if (conf_names(path, root, names, err, len))
		goto bad;
	json_decref(root);
	return 0;
bad:
	json_decref(root);
	return -1;
}

/* The SipHash-2-4 state director.c starts from (struct glb_sip), as the agent computes it. */
static void sip_prefix(const __u8 key[16], struct glb_sip *sip)
{
	*sip = glb_sip_expand(le64(key), le64(key + 8));
}

/* Python's bind order (director_maps._bind_order): longest prefix, narrowest port range,
 * lowest first port, the network's text; then file order (the sort is stable). */
static int bind_cmp(const void *pa, const void *pb)
{
	const struct pending_bind *a = pa, *b = pb;
	int c;

	if (a->bits != b->bits)
		return a->bits > b->bits ? -1 : 1;
	if (a->hi - a->lo != b->hi - b->lo)
		return a->hi - a->lo < b->hi - b->lo ? -1 : 1;
	if (a->lo != b->lo)
		return a->lo < b->lo ? -1 : 1;
	c = strcmp(a->text, b->text);
	if (c)
		return c;
	return a->order < b->order ? -1 : a->order > b->order;
}

static int nets_overlap(const struct pending_bind *a, const struct pending_bind *b)
{
	unsigned int bits = a->bits < b->bits ? a->bits : b->bits, i;

	for (i = 0; i < bits; i++) {
		__u8 m = 0x80 >> (i % 8);

		if ((a->net[i / 8] & m) != (b->net[i / 8] & m))
			return 0;
	}
	return 1;
}

/* Validates one family's binds across tables, sorts them and writes the map entries. */
static int place_binds(struct pending_bind *pb, unsigned int n, const struct glb_sip *sips,
		       struct glb_dp_tables *t, const char *bin_path, char *err, size_t len)
{
	unsigned int i, j;

	if (n > GLB_DP_MAX_BINDS) {
		fail(err, len, "%s: %u IPv%d binds exceed the director's %u", bin_path, n, pb[0].family,
		     GLB_DP_MAX_BINDS);
		return -1;
	}
	for (i = 0; i < n; i++)
		for (j = 0; j < i; j++)
			if (pb[i].table != pb[j].table && pb[i].proto == pb[j].proto && pb[i].bits == pb[j].bits &&
			    !memcmp(pb[i].net, pb[j].net, 16) && pb[i].lo <= pb[j].hi && pb[j].lo <= pb[i].hi) {
				fail(err, len, "%s: bind %s %s %u-%u of table %u overlaps table %u", bin_path,
				     pb[i].text, pb[i].proto == 6 ? "tcp" : "udp", pb[i].lo, pb[i].hi, pb[i].table,
				     pb[j].table);
				return -1;
			}
	qsort(pb, n, sizeof(*pb), bind_cmp);
	for (i = 0; i < n; i++) {
		__u8 flags = GLB_BIND_FRAG_OK;

		for (j = 0; j < n; j++)
			if (pb[j].table != pb[i].table && pb[j].proto == pb[i].proto && nets_overlap(&pb[i], &pb[j]))
				flags = 0;
		struct glb_bind_rule rule = {
			.proto = pb[i].proto,
			.flags = flags,
			.slot = (__u16)pb[i].table,
			.port_lo = pb[i].lo,
			.port_span = (__u16)(pb[i].hi - pb[i].lo),
			.sip = sips[pb[i].table],
		};

		if (pb[i].family == 4) {
			memcpy(&t->binds4[i].net, pb[i].net, 4);
			memcpy(&t->binds4[i].mask, pb[i].mask, 4);
			t->binds4[i].rule = rule;
		} else {
			memcpy(t->binds6[i].net, pb[i].net, 16);
			memcpy(t->binds6[i].mask, pb[i].mask, 16);
			t->binds6[i].rule = rule;
		}
	}
	return 0;
}

/* Reads one bind entry; returns 0, or -1 with a message naming its byte offset. */
static int read_bind(const __u8 *p, size_t at, __u32 table, unsigned int idx, struct pending_bind *b,
		     const char *path, char *err, size_t len)
{
	__u32 family = le32(p);
	unsigned int alen = family == BIN_FAMILY_V4 ? 4 : 16, i;
	char addr[INET6_ADDRSTRLEN];

	if (family != BIN_FAMILY_V4 && family != BIN_FAMILY_V6) {
		fail(err, len, "%s: byte %zu: table %u bind %u: address family must be 1 (IPv4) or 2 (IPv6), got %u",
		     path, at, table, idx, family);
		return -1;
	}
	memset(b, 0, sizeof(*b));
	b->family = family == BIN_FAMILY_V4 ? 4 : 6;
	b->bits = le16(p + 20);
	b->lo = le16(p + 22);
	b->hi = le16(p + 24);
	b->proto = p[26];
	b->table = table;
	if (b->bits > alen * 8) {
		fail(err, len, "%s: byte %zu: table %u bind %u: prefix length %u exceeds %u", path, at + 20, table, idx,
		     b->bits, alen * 8);
		return -1;
	}
	if (b->proto != 6 && b->proto != 17) {
		fail(err, len, "%s: byte %zu: table %u bind %u: protocol %u, expected 6 (tcp) or 17 (udp)", path,
		     at + 26, table, idx, b->proto);
		return -1;
	}
	if (b->lo > b->hi) {
		fail(err, len, "%s: byte %zu: table %u bind %u: port range %u-%u is invalid", path, at + 22, table, idx,
		     b->lo, b->hi);
		return -1;
	}
	for (i = 0; i < alen; i++) {
		unsigned int keep = b->bits >= (i + 1) * 8 ? 8 : (b->bits > i * 8 ? b->bits - i * 8 : 0);

		b->mask[i] = (__u8)(0xff00 >> keep);
		b->net[i] = p[4 + i] & b->mask[i];
	}
	inet_ntop(b->family == 4 ? AF_INET : AF_INET6, b->net, addr, sizeof(addr));
	snprintf(b->text, sizeof(b->text), "%s/%u", addr, b->bits);
	return 0;
}

static char *read_file(const char *path, size_t *size, char *err, size_t len)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	char *buf;

	if (!f) {
		fail(err, len, "%s: cannot read: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
		fail(err, len, "%s: not a regular file", path);
		fclose(f);
		return NULL;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf || fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
		fail(err, len, "%s: cannot read: %s", path, buf ? "short read" : "out of memory");
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	*size = (size_t)st.st_size;
	return buf;
}

/* Table names from "a,b,c" (or "table<i>"); the counters are reported under them. */
static int set_names(struct glb_dp_tables *t, const char *names, const char *from, char *err, size_t len)
{
	const char *p = names;
	__u32 i;

	for (i = 0; i < t->ntables; i++) {
		size_t n;

		if (!names) {
			snprintf(t->names[i], sizeof(t->names[i]), "table%u", i);
			continue;
		}
		n = strcspn(p, ",");
		if (n == 0 || n >= sizeof(t->names[i]) || (!p[n] && i + 1 < t->ntables)) {
			fail(err, len, "%s: table names: give %u non-empty names (< 64 characters), comma-separated",
			     from, t->ntables);
			return -1;
		}
		memcpy(t->names[i], p, n);
		t->names[i][n] = 0;
		p += n + (p[n] == ',');
	}
	if (names && *p) {
		fail(err, len, "%s: table names: more names than the %u tables", from, t->ntables);
		return -1;
	}
	return 0;
}

static void outer_constants(struct glb_dp_tables *t, const __u8 gw[6], const __u8 src_mac[6])
{
	__u8 eth[12], hdr[16] = { 0x45, 0, 0, 0, 0, 0, 0x40, 0, GLB_IPV4_TTL, 17, 0, 0 };
	__u32 sum = 0;
	int i;

	memcpy(eth, gw, 6);
	memcpy(eth + 6, src_mac, 6);
	t->eth_w0 = le32(eth);
	t->eth_w1 = le32(eth + 4);
	t->eth_w2 = le32(eth + 8);
	memcpy(hdr + 12, &t->src_ip, 4);
	for (i = 0; i < 16; i += 2)
		sum += le16(hdr + i);
	t->csum_base = sum;
}

/* What both file formats fill while they are read: binds per family (sorted and placed at
 * the end) and each table's SipHash state. */
struct pending {
	struct pending_bind *pb4, *pb6;
	unsigned int n4, n6;
	struct glb_sip *sips;
};

/* Allocates the table set's arrays for `ntables` tables of at most `max_binds` binds. */
static int alloc_set(struct glb_dp_tables *t, struct pending *p, __u32 ntables, __u32 max_binds)
{
	t->ntables = ntables;
	t->binds4 = calloc(GLB_DP_MAX_BINDS, sizeof(*t->binds4));
	t->binds6 = calloc(GLB_DP_MAX_BINDS, sizeof(*t->binds6));
	t->rows = calloc(((size_t)ntables << GLB_TABLE_ROW_BITS) * t->row_width, sizeof(*t->rows));
	t->names = calloc(ntables, sizeof(*t->names));
	p->sips = calloc(ntables, sizeof(*p->sips));
	p->pb4 = calloc((size_t)ntables * max_binds, sizeof(*p->pb4));
	p->pb6 = calloc((size_t)ntables * max_binds, sizeof(*p->pb6));
	return t->binds4 && t->binds6 && t->rows && t->names && p->sips && p->pb4 && p->pb6 ? 0 : -1;
}

/* Table `tbl`'s binds (num_binds at data + *off, then max_binds slots) and hash key. */
static int read_binds_key(const __u8 *data, size_t *off, __u32 tbl, __u32 max_binds, struct pending *p,
			  const char *path, char *err, size_t len)
{
	__u32 nbind = le32(data + *off), i;

	if (nbind > max_binds) {
		fail(err, len, "%s: byte %zu: table %u: num_binds %u exceeds max_num_binds %u", path, *off, tbl, nbind,
		     max_binds);
		return -1;
	}
	*off += 4;
	for (i = 0; i < nbind; i++) {
		size_t at = *off + (size_t)i * BIN_BIND;
		struct pending_bind b;

		if (read_bind(data + at, at, tbl, i, &b, path, err, len))
			return -1;
		if (b.family == 4) {
			b.order = p->n4;
			p->pb4[p->n4++] = b;
		} else {
			b.order = p->n6;
			p->pb6[p->n6++] = b;
		}
	}
	*off += (size_t)max_binds * BIN_BIND;
	sip_prefix(data + *off, &p->sips[tbl]);
	*off += BIN_KEY;
	return 0;
}

/* Upstream's forwarding_table.bin v2: backends by index, rows as (primary, secondary). */
static int parse_upstream(const __u8 *data, size_t size, struct glb_dp_tables *t, struct pending *p,
			  const char *bin_path, char *err, size_t len)
{
	__u32 ntables, max_backends, max_binds, tbl, i;
	size_t need, off;

	if (size < BIN_HEADER) {
		fail(err, len, "%s: byte %zu: file is %zu bytes, shorter than the %d-byte header", bin_path, size, size,
		     BIN_HEADER);
		return -1;
	}
	if (le32(data + 4) != BIN_VERSION) {
		fail(err, len, "%s: byte 4: format version %u, only %u is supported", bin_path, le32(data + 4),
		     BIN_VERSION);
		return -1;
	}
	ntables = le32(data + 8);
	max_backends = le32(data + 16);
	max_binds = le32(data + 20);
	if (le32(data + 12) != GLB_TABLE_ROWS) {
		fail(err, len, "%s: byte 12: table_entries is %u, expected %u", bin_path, le32(data + 12),
		     GLB_TABLE_ROWS);
		return -1;
	}
	if (max_backends < 1 || max_backends > BIN_LIMIT || max_binds < 1 || max_binds > BIN_LIMIT) {
		fail(err, len, "%s: byte 16: max_num_backends %u / max_num_binds %u out of range", bin_path,
		     max_backends, max_binds);
		return -1;
	}
	if (ntables < 1 || ntables > GLB_DP_MAX_TABLES) {
		fail(err, len, "%s: byte 8: %u tables, the director holds 1-%u", bin_path, ntables, GLB_DP_MAX_TABLES);
		return -1;
	}
	need = BIN_HEADER + (size_t)ntables * (8 + (size_t)max_backends * BIN_BACKEND + (size_t)max_binds * BIN_BIND +
					      BIN_KEY + (size_t)GLB_TABLE_ROWS * 8);
	if (size != need) {
		fail(err, len, "%s: byte %zu: file is %zu bytes, but a header for %u tables of %u backends means %zu",
		     bin_path, size < need ? size : need, size, ntables, max_backends, need);
		return -1;
	}
	if (alloc_set(t, p, ntables, max_binds))
		return 1;

	off = BIN_HEADER;
	for (tbl = 0; tbl < ntables; tbl++) {
		__u32 nb = le32(data + off);
		__u32 *addr;
		size_t count_at = off;

		if (nb > max_backends || nb == 0) {
			fail(err, len, "%s: byte %zu: table %u: num_backends %u, expected 1-%u", bin_path, count_at, tbl, nb,
			     max_backends);
			return -1;
		}
		addr = calloc(nb, sizeof(*addr));
		if (!addr)
			return 1;
		off += 4;
		for (i = 0; i < nb; i++) {
			const __u8 *q = data + off + (size_t)i * BIN_BACKEND;

			if (le32(q) != BIN_FAMILY_V4) {
				fail(err, len, "%s: byte %zu: table %u backend %u: backends must be IPv4 (family 1; the "
				     "GUE outer header is IPv4)", bin_path, off + (size_t)i * BIN_BACKEND, tbl, i);
				free(addr);
				return -1;
			}
			memcpy(&addr[i], q + 4, 4);
			if (addr[i] == 0) {
				fail(err, len, "%s: byte %zu: table %u backend %u: 0.0.0.0 is not a proxy address", bin_path,
				     off + (size_t)i * BIN_BACKEND + 4, tbl, i);
				free(addr);
				return -1;
			}
		}
		off += (size_t)max_backends * BIN_BACKEND;
		if (read_binds_key(data, &off, tbl, max_binds, p, bin_path, err, len)) {
			free(addr);
			return -1;
		}
		for (i = 0; i < GLB_TABLE_ROWS; i++) {
			__u32 pri = le32(data + off + (size_t)i * 8), sec = le32(data + off + (size_t)i * 8 + 4);
			__be32 *row = &t->rows[(((size_t)tbl << GLB_TABLE_ROW_BITS) | i) * t->row_width];

			if (pri >= nb || sec >= nb) {
				fail(err, len, "%s: byte %zu: table %u row %u points at backend %u, but the table has %u",
				     bin_path, off + (size_t)i * 8 + (pri >= nb ? 0 : 4), tbl, i, pri >= nb ? pri : sec, nb);
				free(addr);
				return -1;
			}
			row[0] = addr[pri];
			row[1] = addr[sec];
		}
		off += (size_t)GLB_TABLE_ROWS * 8;
		free(addr);
	}
	return 0;
}

/* Our K-candidate file: rows are send orders of addresses (see KBIN_MAGIC). */
static int parse_krows(const __u8 *data, size_t size, struct glb_dp_tables *t, struct pending *p,
		       const char *bin_path, char *err, size_t len)
{
	__u32 ntables, width, max_binds, tbl, i, j;
	size_t need, off;

	if (size < KBIN_HEADER) {
		fail(err, len, "%s: byte %zu: file is %zu bytes, shorter than the %d-byte header", bin_path, size, size,
		     KBIN_HEADER);
		return -1;
	}
	if (le32(data + 4) != KBIN_VERSION) {
		fail(err, len, "%s: byte 4: format version %u, only %u is supported", bin_path, le32(data + 4),
		     KBIN_VERSION);
		return -1;
	}
	ntables = le32(data + 8);
	width = le32(data + 16);
	max_binds = le32(data + 20);
	if (le32(data + 12) != GLB_TABLE_ROWS) {
		fail(err, len, "%s: byte 12: table_entries is %u, expected %u", bin_path, le32(data + 12),
		     GLB_TABLE_ROWS);
		return -1;
	}
	if (width < 1 || width > t->row_width) {
		fail(err, len, "%s: byte 16: row_width %u, the director holds 1-%u%s", bin_path, width, t->row_width,
		     t->alt_variant ? " while alt_hash_fields is set (2K - 1 hops must fit the GUE hop list)" : "");
		return -1;
	}
	if (max_binds < 1 || max_binds > BIN_LIMIT) {
		fail(err, len, "%s: byte 20: max_num_binds %u out of range", bin_path, max_binds);
		return -1;
	}
	if (ntables < 1 || ntables > GLB_DP_MAX_TABLES) {
		fail(err, len, "%s: byte 8: %u tables, the director holds 1-%u", bin_path, ntables, GLB_DP_MAX_TABLES);
		return -1;
	}
	need = KBIN_HEADER + (size_t)ntables * (4 + (size_t)max_binds * BIN_BIND + BIN_KEY +
						(size_t)GLB_TABLE_ROWS * width * 4);
	if (size != need) {
		fail(err, len, "%s: byte %zu: file is %zu bytes, but a header for %u tables of %u binds and rows "
		     "%u wide means %zu", bin_path, size < need ? size : need, size, ntables, max_binds, width, need);
		return -1;
	}
	if (alloc_set(t, p, ntables, max_binds))
		return 1;
	off = KBIN_HEADER;
	for (tbl = 0; tbl < ntables; tbl++) {
		if (read_binds_key(data, &off, tbl, max_binds, p, bin_path, err, len))
			return -1;
		for (i = 0; i < GLB_TABLE_ROWS; i++, off += (size_t)width * 4) {
			__be32 *row = &t->rows[(((size_t)tbl << GLB_TABLE_ROW_BITS) | i) * t->row_width];
			int ended = 0;

			for (j = 0; j < width; j++) {
				memcpy(&row[j], data + off + (size_t)j * 4, 4);
				if (row[j] && ended) {
					fail(err, len, "%s: byte %zu: table %u row %u: entry %u follows an unused (0.0.0.0) "
					     "one; unused entries only pad the end of a send order", bin_path,
					     off + (size_t)j * 4, tbl, i, j);
					return -1;
				}
				ended |= !row[j];
			}
		}
	}
	return 0;
}

struct glb_dp_tables *glb_dp_tables_load(const char *conf_path, const char *bin_path,
					 const struct glb_dp_host *host, char *err, size_t len)
{
	struct glb_dp_tables *t = calloc(1, sizeof(*t));
	struct pending p = { 0 };
	size_t size = 0;
	__u8 gw[6], *data = NULL;
	char *names = NULL;
	int rc;

	if (!t)
		goto oom;
	if (load_conf(conf_path, t, gw, &names, err, len))
		goto bad;
	if (host->mtu < 68 + 40 || host->mtu > 65535) {
		fail(err, len, "mtu %u out of range %u-65535", host->mtu, 68 + 40);
		goto bad;
	}
	t->mtu = host->mtu;
	outer_constants(t, gw, host->src_mac);

	data = (__u8 *)read_file(bin_path, &size, err, len);
	if (!data)
		goto bad;
	if (size >= 4 && !memcmp(data, BIN_MAGIC, 4)) {
		rc = parse_upstream(data, size, t, &p, bin_path, err, len);
	} else if (size >= 4 && !memcmp(data, KBIN_MAGIC, 4)) {
		rc = parse_krows(data, size, t, &p, bin_path, err, len);
	} else {
		fail(err, len, "%s: byte 0: magic is not \"GLBD\" or \"GLBK\": not a GLB forwarding table", bin_path);
		goto bad;
	}
	if (rc > 0)
		goto oom;
	if (rc < 0)
		goto bad;
	if (set_names(t, host->names ? host->names : names, host->names ? "--table-names" : conf_path, err, len))
		goto bad;
	if ((p.n4 && place_binds(p.pb4, p.n4, p.sips, t, bin_path, err, len)) ||
	    (p.n6 && place_binds(p.pb6, p.n6, p.sips, t, bin_path, err, len)))
		goto bad;
	free(p.pb4);
	free(p.pb6);
	free(p.sips);
	free(data);
	free(names);
	return t;
oom:
	fail(err, len, "out of memory loading %s", bin_path);
bad:
	free(p.pb4);
	free(p.pb6);
	free(p.sips);
	free(data);
	free(names);
	glb_dp_tables_free(t);
	return NULL;
}

void glb_dp_tables_free(struct glb_dp_tables *t)
{
	if (!t)
		return;
	free(t->binds4);
	free(t->binds6);
	free(t->rows);
	free(t->names);
	free(t->stats);
	free(t);
}
