/* glb-director-dpdk: the GLB director as a DPDK application.
 *
 *   glb-director-dpdk [EAL options] -- --config director.conf --table forwarding_table.bin
 *       [--port N] [--host-port N] [--table-names a,b] [--src-mac MAC] [--mtu N]
 *       [--stats FILE] [--stats-interval-ms N] [--burst N] [--idle-exit-ms N]
 *       [--mode director|macswap] [--bench-mem BURSTS] [--xdp-steer IFACE]
 *
 * Every lcore (the main one too when it is the only one) runs to completion on its own
 * RX/TX queue pair of the port: receive a burst, run the forwarding core on it (bpf/director.c
 * compiled as userspace C, dpdk/src/fwd.c), send what it encapsulated back out of the same
 * port, hand what it passes to the host port (when there is one; otherwise it is dropped,
 * still counted as passed), free what it drops.
 *
 * Tables: the agent's director.conf + forwarding_table.bin (tables.c), loaded at start
 * (exit 2 if bad) and again on SIGHUP. A reload builds a complete new table set, publishes
 * it with one pointer store and frees the old one after an RCU grace period (rte_rcu_qsbr),
 * so no packet is stopped or dropped; a bad file keeps the last good set and is reported in
 * the stats file.
 *
 * Counters: per lcore, per (table, reason) as the XDP director's; the main lcore sums them
 * into a JSON stats file (atomically replaced) every interval, on SIGUSR1 and at exit.
 *
 * Exit codes: 0 on SIGTERM/SIGINT or --idle-exit-ms, 2 on bad arguments, EAL failure, a
 * missing port or a bad table file at start.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>

#include "glb_dp.h"
#include "steer.h"
#include "tables.h"

#define EXIT_USAGE 2
#define MAX_BURST 64
#define RING_SIZE 1024
#define POOL_CACHE 256
#define ERR_LEN 512

/* --- the forwarding core's per-thread state and variants (glb_dp.h) --- */

GLB_DP_TLS const struct glb_dp_tables *glb_dp_cur;
GLB_DP_TLS struct glb_stat *glb_dp_stats;

#define GLB_DP_VARIANT(n) void glb_dp_burst_##n(struct xdp_md *pkt, __u8 *out, unsigned int count); \
	void glb_dp_burst_alt_##n(struct xdp_md *pkt, __u8 *out, unsigned int count);
GLB_DP_VARIANT(1) GLB_DP_VARIANT(2) GLB_DP_VARIANT(3) GLB_DP_VARIANT(4) GLB_DP_VARIANT(5)
GLB_DP_VARIANT(6) GLB_DP_VARIANT(7) GLB_DP_VARIANT(8) GLB_DP_VARIANT(9) GLB_DP_VARIANT(10)
GLB_DP_VARIANT(11) GLB_DP_VARIANT(12) GLB_DP_VARIANT(13) GLB_DP_VARIANT(14) GLB_DP_VARIANT(15)

const glb_dp_burst_fn glb_dp_burst[GLB_DP_HASH_VARIANTS] = {
	NULL, glb_dp_burst_1, glb_dp_burst_2, glb_dp_burst_3, glb_dp_burst_4, glb_dp_burst_5,
	glb_dp_burst_6, glb_dp_burst_7, glb_dp_burst_8, glb_dp_burst_9, glb_dp_burst_10,
	glb_dp_burst_11, glb_dp_burst_12, glb_dp_burst_13, glb_dp_burst_14, glb_dp_burst_15,
};

const glb_dp_burst_fn glb_dp_burst_alt[GLB_DP_HASH_VARIANTS] = {
	NULL, glb_dp_burst_alt_1, glb_dp_burst_alt_2, glb_dp_burst_alt_3, glb_dp_burst_alt_4,
	glb_dp_burst_alt_5, glb_dp_burst_alt_6, glb_dp_burst_alt_7, glb_dp_burst_alt_8,
	glb_dp_burst_alt_9, glb_dp_burst_alt_10, glb_dp_burst_alt_11, glb_dp_burst_alt_12,
	glb_dp_burst_alt_13, glb_dp_burst_alt_14, glb_dp_burst_alt_15,
};


/* --- options and process state --- */

enum mode { MODE_DIRECTOR, MODE_MACSWAP };

/* Command-line settings after the EAL's. */
struct options {
	const char *conf, *table, *names, *stats;
	const char *steer_if; /* af_xdp interface whose steering maps follow the binds */
	int port, host_port; /* host_port -1: no host port */
	int have_src_mac;
	__u8 src_mac[6];
	unsigned int mtu; /* 0: the port's */
	unsigned int stats_interval_ms, burst, idle_exit_ms;
	unsigned long bench_bursts;
	enum mode mode;
};

/* One forwarding lcore: its queue pair, RCU reader id and port-level tallies (its counter
 * cells belong to the table set, glb_dp_tables.stats). Written only by its lcore; the main
 * lcore reads it for the stats file. */
struct fwd_lcore {
	unsigned int lcore, queue;
	volatile uint64_t rx, tx, tx_failed, host_tx, host_tx_failed;
	volatile int idle; /* --idle-exit-ms elapsed since its last packet, with its RX empty */
} __rte_cache_aligned;

static struct options opt = {
	.port = 0, .host_port = -1, .stats_interval_ms = 1000, .burst = 32, .mode = MODE_DIRECTOR,
};
static struct fwd_lcore fwd[RTE_MAX_LCORE];
static unsigned int nfwd;
static struct rte_rcu_qsbr *rcu;
static const struct glb_dp_tables *live; /* RCU-protected: forwarding lcores read it per burst */
static struct glb_dp_host host;
static volatile sig_atomic_t want_quit, want_reload, want_stats;
static volatile int quit;
static uint64_t reloads, reload_errors, generation;
static char last_error[ERR_LEN];

/* Counts of retired table sets, per service name ("_unmatched" too); main lcore only. */
struct name_totals {
	char name[64];
	struct glb_stat cells[GLB_NR_REASONS];
};
static struct name_totals totals[2 * (GLB_DP_MAX_TABLES + 1)];
static unsigned int ntotals;

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("glb-director-dpdk: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_USAGE);
}

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		want_reload = 1;
	else if (sig == SIGUSR1)
		want_stats = 1;
	else
		want_quit = 1;
}

static unsigned long parse_num(const char *name, const char *text, unsigned long lo, unsigned long hi)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(text, &end, 10);
	if (errno || !*text || *end || v < lo || v > hi)
		die("--%s %s: expected a number %lu-%lu", name, text, lo, hi);
	return v;
}

static void usage_and_die(const char *why)
{
	die("%s\nusage: glb-director-dpdk [EAL options] -- --config director.conf --table forwarding_table.bin "
	    "[--port N] [--host-port N] [--table-names a,b] [--src-mac MAC] [--mtu N] [--stats FILE] "
	    "[--stats-interval-ms N] [--burst N] [--idle-exit-ms N] [--mode director|macswap] [--bench-mem BURSTS] "
	    "[--xdp-steer IFACE]",
	    why);
}

static void parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },     { "table", required_argument, NULL, 't' },
		{ "port", required_argument, NULL, 'p' },       { "host-port", required_argument, NULL, 'H' },
		{ "table-names", required_argument, NULL, 'n' }, { "src-mac", required_argument, NULL, 'm' },
		{ "mtu", required_argument, NULL, 'M' },        { "stats", required_argument, NULL, 's' },
		{ "stats-interval-ms", required_argument, NULL, 'i' },
		{ "burst", required_argument, NULL, 'b' },      { "idle-exit-ms", required_argument, NULL, 'I' },
		{ "mode", required_argument, NULL, 'o' },       { "bench-mem", required_argument, NULL, 'B' },
		{ "xdp-steer", required_argument, NULL, 'x' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': opt.conf = optarg; break;
		case 't': opt.table = optarg; break;
		case 'p': opt.port = (int)parse_num("port", optarg, 0, RTE_MAX_ETHPORTS - 1); break;
		case 'H': opt.host_port = (int)parse_num("host-port", optarg, 0, RTE_MAX_ETHPORTS - 1); break;
		case 'n': opt.names = optarg; break;
		case 'x': opt.steer_if = optarg; break;
		case 'm':
			if (glb_dp_parse_mac(optarg, opt.src_mac))
				die("--src-mac %s: expected a MAC like 02:00:00:00:00:01", optarg);
			opt.have_src_mac = 1;
			break;
		case 'M': opt.mtu = (unsigned int)parse_num("mtu", optarg, 108, 65535); break;
		case 's': opt.stats = optarg; break;
		case 'i': opt.stats_interval_ms = (unsigned int)parse_num("stats-interval-ms", optarg, 10, 3600000); break;
		case 'b': opt.burst = (unsigned int)parse_num("burst", optarg, 1, MAX_BURST); break;
		case 'I': opt.idle_exit_ms = (unsigned int)parse_num("idle-exit-ms", optarg, 1, 3600000); break;
		case 'B': opt.bench_bursts = parse_num("bench-mem", optarg, 1, 1UL << 40); break;
		case 'o':
			if (!strcmp(optarg, "director"))
				opt.mode = MODE_DIRECTOR;
			else if (!strcmp(optarg, "macswap"))
				opt.mode = MODE_MACSWAP;
			else
				die("--mode %s: expected director or macswap", optarg);
			break;
		default:
			usage_and_die(optopt ? "unknown or incomplete option" : "unknown option");
		}
	}
	if (optind < argc)
		usage_and_die("unexpected argument");
	if (!opt.conf || !opt.table)
		usage_and_die("--config and --table are required");
	if (opt.host_port == opt.port)
		die("--host-port %d is the forwarding port", opt.host_port);
}

/* --- ports --- */

/* Mbuf size for frames of an `mtu`-byte packet: the forwarding core reads the first segment
 * only (as XDP without frags sees one buffer), so a frame must never be chained. The default
 * size stays wherever it suffices: af_xdp's umem frames are mbufs and may not exceed a page. */
static uint16_t mbuf_size(unsigned int mtu)
{
	unsigned int frame = mtu + RTE_ETHER_HDR_LEN + 2 * RTE_VLAN_HLEN;

	return (uint16_t)(RTE_PKTMBUF_HEADROOM + RTE_MAX(frame, (unsigned int)RTE_MBUF_DEFAULT_DATAROOM));
}

static void port_init(int port, unsigned int nq, struct rte_mempool *pool, const char *role)
{
	struct rte_eth_conf conf = { 0 };
	struct rte_eth_dev_info info;
	unsigned int q;
	int rc;

	if (!rte_eth_dev_is_valid_port((uint16_t)port))
		die("%s port %d does not exist (%u ports: give them with --vdev or a PCI address)", role, port,
		    rte_eth_dev_count_avail());
	rc = rte_eth_dev_info_get((uint16_t)port, &info);
	if (rc)
		die("%s port %d: cannot read device info: %s", role, port, rte_strerror(-rc));
	if (nq > info.max_rx_queues || nq > info.max_tx_queues)
		die("%s port %d (%s) has %u RX / %u TX queues, %u lcores forward (one queue pair each)", role, port,
		    info.driver_name, info.max_rx_queues, info.max_tx_queues, nq);
	/* A jumbo MTU must reach the port too (a NIC drops longer frames); within the port's
	 * limits only: af_xdp and pcap report their own, and 1500 needs nothing. */
	if (host.mtu > RTE_ETHER_MTU && host.mtu >= info.min_mtu && host.mtu <= info.max_mtu)
		conf.rxmode.mtu = host.mtu;
	if (nq > 1) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_hf =
			(RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP) & info.flow_type_rss_offloads;
	}
	rc = rte_eth_dev_configure((uint16_t)port, (uint16_t)nq, (uint16_t)nq, &conf);
	if (rc)
		die("%s port %d (%s): configure with %u queues: %s", role, port, info.driver_name, nq, rte_strerror(-rc));
	for (q = 0; q < nq; q++) {
		rc = rte_eth_rx_queue_setup((uint16_t)port, (uint16_t)q, RING_SIZE, rte_eth_dev_socket_id((uint16_t)port),
					    NULL, pool);
		if (!rc)
			rc = rte_eth_tx_queue_setup((uint16_t)port, (uint16_t)q, RING_SIZE,
						    rte_eth_dev_socket_id((uint16_t)port), NULL);
		if (rc)
			die("%s port %d (%s): queue %u: %s", role, port, info.driver_name, q, rte_strerror(-rc));
	}
	rc = rte_eth_dev_start((uint16_t)port);
	if (rc)
		die("%s port %d (%s): start: %s", role, port, info.driver_name, rte_strerror(-rc));
	rte_eth_promiscuous_enable((uint16_t)port); /* best effort: virtual ports may not support it */
}

/* --- tables --- */

static struct name_totals *totals_of(const char *name)
{
	unsigned int i;

	for (i = 0; i < ntotals; i++)
		if (!strcmp(totals[i].name, name))
			return &totals[i];
	if (ntotals == RTE_DIM(totals)) /* names that were live long ago make room */
		ntotals = 0;
	memset(&totals[ntotals], 0, sizeof(totals[ntotals]));
	snprintf(totals[ntotals].name, sizeof(totals[ntotals].name), "%s", name);
	return &totals[ntotals++];
}

static const char *slot_name(const struct glb_dp_tables *t, __u32 slot)
{
	return slot < t->ntables ? t->names[slot] : "_unmatched";
}

static __u32 slot_cell(const struct glb_dp_tables *t, __u32 slot)
{
	return slot < t->ntables ? slot : GLB_DP_MAX_TABLES;
}

/* Gives a table set its counter cells, one block per forwarding lcore. */
static void attach_stats(struct glb_dp_tables *t)
{
	t->stats = aligned_alloc(RTE_CACHE_LINE_SIZE, sizeof(struct glb_stat) * GLB_DP_STAT_CELLS * nfwd);
	if (!t->stats)
		die("cannot allocate counters");
	memset(t->stats, 0, sizeof(struct glb_stat) * GLB_DP_STAT_CELLS * nfwd);
}

/* Adds a retired table set's final counts to the per-name totals. */
static void fold_stats(const struct glb_dp_tables *t)
{
	__u32 slot, r;
	unsigned int i;

	for (slot = 0; slot <= t->ntables; slot++) {
		struct name_totals *tot = totals_of(slot_name(t, slot));

		for (i = 0; i < nfwd; i++)
			for (r = 0; r < GLB_NR_REASONS; r++) {
				const struct glb_stat *c =
					&t->stats[(size_t)i * GLB_DP_STAT_CELLS + slot_cell(t, slot) * GLB_NR_REASONS + r];

				tot->cells[r].packets += c->packets;
				tot->cells[r].bytes += c->bytes;
			}
	}
}

static void publish(struct glb_dp_tables *next)
{
	const struct glb_dp_tables *old = live;

	attach_stats(next);
	next->generation = ++generation;
	__atomic_store_n(&live, next, __ATOMIC_RELEASE);
	/* Every reader reports a quiescent state between bursts; once all have, none holds
	 * `old` any more. The calling thread (the main lcore, a reader too when it forwards)
	 * reports its own state first, so a single lcore does not wait for itself. */
	if (old) {
		rte_rcu_qsbr_synchronize(rcu, nfwd && fwd[0].lcore == rte_lcore_id() ? 0 : RTE_QSBR_THRID_INVALID);
		fold_stats(old); /* final: no lcore writes its cells any more */
		glb_dp_tables_free((struct glb_dp_tables *)old);
	}
}

/* The VIP networks of a table set, for the af_xdp steering program. */
static int steer_sync(const struct glb_dp_tables *t, char *err, size_t len)
{
	static struct glb_steer_prefix p[2 * GLB_DP_MAX_BINDS];
	unsigned int n = 0, i, b;

	for (i = 0; i < GLB_DP_MAX_BINDS && t->binds4[i].rule.proto; i++, n++) {
		p[n].family = 4;
		p[n].bits = (__u32)__builtin_popcount(t->binds4[i].mask);
		memcpy(p[n].addr, &t->binds4[i].net, 4);
	}
	for (i = 0; i < GLB_DP_MAX_BINDS && t->binds6[i].rule.proto; i++, n++) {
		p[n].family = 6;
		p[n].bits = 0;
		for (b = 0; b < 2; b++)
			p[n].bits += (__u32)__builtin_popcountll(t->binds6[i].mask[b]);
		memcpy(p[n].addr, t->binds6[i].net, 16);
	}
	return glb_steer_sync(p, n, err, len);
}

static void reload(void)
{
	char err[ERR_LEN];
	struct glb_dp_tables *next = glb_dp_tables_load(opt.conf, opt.table, &host, err, sizeof(err));

	reloads++;
	if (!next) {
		reload_errors++;
		snprintf(last_error, sizeof(last_error), "%s", err);
		fprintf(stderr, "glb-director-dpdk: reload failed, keeping generation %" PRIu64 ": %s\n", generation, err);
		return;
	}
	last_error[0] = 0;
	publish(next);
	if (steer_sync(next, err, sizeof(err))) {
		reload_errors++;
		snprintf(last_error, sizeof(last_error), "%s", err);
		fprintf(stderr, "glb-director-dpdk: %s\n", err);
	}
	fprintf(stderr, "glb-director-dpdk: loaded generation %" PRIu64 " (%u tables)\n", generation, next->ntables);
}

/* --- stats --- */

/* Per live service (and "_unmatched"): its totals from retired table sets plus the live
 * set's cells, summed over the lcores; the shape of the XDP director's counters(). */
static json_t *counters_json(const struct glb_dp_tables *t)
{
	json_t *all = json_object();
	__u32 slot, r;
	unsigned int i;

	for (slot = 0; slot <= t->ntables; slot++) {
		const struct name_totals *tot = totals_of(slot_name(t, slot));
		json_t *cells = json_object();

		for (r = 0; r < GLB_NR_REASONS; r++) {
			uint64_t p = tot->cells[r].packets, b = tot->cells[r].bytes;
			char key[64];

			for (i = 0; i < nfwd; i++) {
				const struct glb_stat *c =
					&t->stats[(size_t)i * GLB_DP_STAT_CELLS + slot_cell(t, slot) * GLB_NR_REASONS + r];

				p += __atomic_load_n(&c->packets, __ATOMIC_RELAXED);
				b += __atomic_load_n(&c->bytes, __ATOMIC_RELAXED);
			}
			snprintf(key, sizeof(key), "%s_packets", glb_dp_reason_names[r]);
			json_object_set_new(cells, key, json_integer((json_int_t)p));
			snprintf(key, sizeof(key), "%s_bytes", glb_dp_reason_names[r]);
			json_object_set_new(cells, key, json_integer((json_int_t)b));
		}
		json_object_set_new(all, slot_name(t, slot), cells);
	}
	return all;
}

static void write_stats(void)
{
	const struct glb_dp_tables *t = live;
	json_t *root, *ports, *lcore_rx;
	uint64_t rx = 0, tx = 0, txf = 0, htx = 0, htxf = 0;
	struct timespec now;
	char tmp[4096];
	unsigned int i;

	if (!opt.stats)
		return;
	for (i = 0; i < nfwd; i++) {
		rx += fwd[i].rx;
		tx += fwd[i].tx;
		txf += fwd[i].tx_failed;
		htx += fwd[i].host_tx;
		htxf += fwd[i].host_tx_failed;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	/* Per forwarding lcore (= queue) received packets: whether RSS spreads the flows. */
	lcore_rx = json_array();
	for (i = 0; i < nfwd; i++)
		json_array_append_new(lcore_rx, json_integer((json_int_t)fwd[i].rx));
	ports = json_pack("{sIsIsIsIsIso}", "rx", (json_int_t)rx, "tx", (json_int_t)tx, "tx_failed", (json_int_t)txf,
			  "host_tx", (json_int_t)htx, "host_tx_failed", (json_int_t)htxf, "lcore_rx", lcore_rx);
	root = json_pack("{sisIsbsfsIsIsssisosssoss}", "pid", (int)getpid(), "generation", (json_int_t)t->generation,
			 "loaded", 1, "updated", now.tv_sec + now.tv_nsec / 1e9, "reloads", (json_int_t)reloads,
			 "reload_errors", (json_int_t)reload_errors, "last_error", last_error, "lcores", (int)nfwd,
			 "ports", ports, "mode", opt.mode == MODE_DIRECTOR ? "director" : "macswap", "counters",
			 counters_json(t), "table", opt.table);
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", opt.stats, (int)getpid());
	if (!root || json_dump_file(root, tmp, JSON_INDENT(1) | JSON_SORT_KEYS) || rename(tmp, opt.stats))
		fprintf(stderr, "glb-director-dpdk: cannot write stats %s: %s\n", opt.stats, strerror(errno));
	json_decref(root);
}

/* --- forwarding --- */

static void macswap(struct xdp_md *pkt, __u8 *out, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		__u8 *d = (__u8 *)pkt[i].data, tmp[6];

		memcpy(tmp, d, 6);
		memcpy(d, d + 6, 6);
		memcpy(d + 6, tmp, 6);
		out[i] = XDP_TX;
	}
}

/* The mbufs as the forwarding core sees packets: [data, data_end) within the first segment. */
static inline void to_xdp(struct rte_mbuf **m, struct xdp_md *x, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		x[i].data_hard_start = (uintptr_t)m[i]->buf_addr;
		x[i].data = x[i].data_hard_start + m[i]->data_off;
		x[i].data_end = x[i].data + m[i]->data_len;
	}
}

/* Runs the core on a burst and applies its verdicts to the mbufs; `tx` receives what goes
 * back out, `pass` what goes to the host; the rest is freed. */
static inline void process(struct rte_mbuf **m, unsigned int n, struct rte_mbuf **tx, unsigned int *ntx,
			   struct rte_mbuf **pass, unsigned int *npass)
{
	struct xdp_md x[MAX_BURST];
	__u8 verdict[MAX_BURST];
	unsigned int i;

	to_xdp(m, x, n);
	if (opt.mode == MODE_MACSWAP)
		macswap(x, verdict, n);
	else
		glb_dp_burst_of(glb_dp_cur)(x, verdict, n);
	for (i = 0; i < n; i++) {
		if (verdict[i] == XDP_TX) {
			uint16_t len = (uint16_t)(x[i].data_end - x[i].data);

			m[i]->data_off = (uint16_t)(x[i].data - x[i].data_hard_start);
			m[i]->pkt_len += (uint32_t)len - m[i]->data_len;
			m[i]->data_len = len;
			tx[(*ntx)++] = m[i];
		} else if (verdict[i] == XDP_PASS && opt.host_port >= 0) {
			pass[(*npass)++] = m[i];
		} else {
			rte_pktmbuf_free(m[i]);
		}
	}
}

static void send_all(int port, uint16_t q, struct rte_mbuf **m, unsigned int n, volatile uint64_t *ok,
		     volatile uint64_t *failed)
{
	uint16_t sent = n ? rte_eth_tx_burst((uint16_t)port, q, m, (uint16_t)n) : 0;

	*ok += sent;
	if (sent < n) {
		*failed += n - sent;
		rte_pktmbuf_free_bulk(m + sent, n - sent);
	}
}

/* The main lcore's chores between bursts when it forwards itself. */
static void chores(void);

static int fwd_loop(void *arg)
{
	struct fwd_lcore *f = arg;
	struct rte_mbuf *m[MAX_BURST], *tx[MAX_BURST], *pass[MAX_BURST];
	const uint64_t idle_tsc = opt.idle_exit_ms * rte_get_tsc_hz() / 1000;
	uint64_t last_rx = rte_get_tsc_cycles();
	unsigned int id = (unsigned int)(f - fwd);
	int is_main = f->lcore == rte_get_main_lcore();

	rte_rcu_qsbr_thread_register(rcu, id);
	rte_rcu_qsbr_thread_online(rcu, id);
	while (!quit) {
		unsigned int n, ntx = 0, npass = 0;

		glb_dp_cur = __atomic_load_n(&live, __ATOMIC_ACQUIRE);
		glb_dp_stats = glb_dp_cur->stats + (size_t)id * GLB_DP_STAT_CELLS;
		n = rte_eth_rx_burst((uint16_t)opt.port, (uint16_t)f->queue, m, (uint16_t)opt.burst);
		if (n) {
			f->rx += n;
			last_rx = rte_get_tsc_cycles();
			f->idle = 0;
			process(m, n, tx, &ntx, pass, &npass);
			send_all(opt.port, (uint16_t)f->queue, tx, ntx, &f->tx, &f->tx_failed);
			if (npass)
				send_all(opt.host_port, (uint16_t)f->queue, pass, npass, &f->host_tx, &f->host_tx_failed);
		} else if (idle_tsc && rte_get_tsc_cycles() - last_rx > idle_tsc) {
			f->idle = 1;
		}
		/* Done with this burst's table set. */
		rte_rcu_qsbr_quiescent(rcu, id);
		if (is_main)
			chores();
	}
	rte_rcu_qsbr_thread_offline(rcu, id);
	rte_rcu_qsbr_thread_unregister(rcu, id);
	return 0;
}

static uint64_t next_stats_tsc;

static void chores(void)
{
	uint64_t now = rte_rdtsc();
	unsigned int i, idle = 0;

	if (want_reload) {
		want_reload = 0;
		reload();
		want_stats = 1;
	}
	if (want_stats || now >= next_stats_tsc) {
		want_stats = 0;
		write_stats();
		next_stats_tsc = now + opt.stats_interval_ms * rte_get_tsc_hz() / 1000;
	}
	if (opt.idle_exit_ms) {
		for (i = 0; i < nfwd; i++)
			idle += fwd[i].idle;
		if (idle == nfwd)
			want_quit = 1;
	}
	if (want_quit)
		quit = 1;
}

/* --- in-memory bench: the same burst processed over and over, no port in the loop --- */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Each burst is timed alone (TSC around the processing only; restoring the packets the
 * previous pass rewrote is outside the window) and a round reports the median burst, so a
 * preemption on a shared machine spoils one burst, not the figure. Modes alternate per round. */
static void bench_mem(void)
{
	struct rte_mbuf *m[MAX_BURST];
	__u8 head[MAX_BURST][128];
	uint16_t off[MAX_BURST], len[MAX_BURST];
	unsigned int n = 0, i, round;
	uint32_t *cycles;
	uint64_t t0;

	t0 = rte_get_tsc_cycles();
	while (n < opt.burst && rte_get_tsc_cycles() - t0 < 5 * rte_get_tsc_hz())
		n += rte_eth_rx_burst((uint16_t)opt.port, 0, m + n, (uint16_t)(opt.burst - n));
	if (!n)
		die("--bench-mem: no packet received on port %d within 5 s", opt.port);
	cycles = malloc(sizeof(*cycles) * opt.bench_bursts);
	if (!cycles)
		die("--bench-mem: out of memory");
	for (i = 0; i < n; i++) {
		off[i] = m[i]->data_off;
		len[i] = m[i]->data_len;
		memcpy(head[i], rte_pktmbuf_mtod(m[i], void *), RTE_MIN(len[i], 128));
	}
	glb_dp_cur = live;
	glb_dp_stats = live->stats;
	printf("{\"packets_per_burst\": %u, \"bursts\": %lu, \"tsc_hz\": %" PRIu64 ", \"rounds\": [", n,
	       opt.bench_bursts, rte_get_tsc_hz());
	for (round = 0; round < 10; round++) {
		enum mode modes[2] = { MODE_MACSWAP, MODE_DIRECTOR };
		double ns[2];
		int k;

		for (k = 0; k < 2; k++) {
			struct xdp_md x[MAX_BURST];
			__u8 verdict[MAX_BURST];
			unsigned long b;

			for (b = 0; b < opt.bench_bursts; b++) {
				uint64_t start;

				for (i = 0; i < n; i++) {
					m[i]->data_off = off[i];
					m[i]->data_len = len[i];
					memcpy(rte_pktmbuf_mtod(m[i], void *), head[i], RTE_MIN(len[i], 128));
				}
				to_xdp(m, x, n);
				start = rte_rdtsc_precise();
				if (modes[k] == MODE_MACSWAP)
					macswap(x, verdict, n);
				else
					glb_dp_burst_of(live)(x, verdict, n);
				cycles[b] = (uint32_t)(rte_rdtsc_precise() - start);
			}
			qsort(cycles, opt.bench_bursts, sizeof(*cycles), cmp_u32);
			ns[k] = (double)cycles[opt.bench_bursts / 2] * 1e9 / (double)rte_get_tsc_hz() / n;
		}
		printf("%s{\"macswap_ns\": %.3f, \"director_ns\": %.3f}", round ? ", " : "", ns[0], ns[1]);
	}
	printf("]}\n");
	fflush(stdout);
	free(cycles);
	rte_pktmbuf_free_bulk(m, n);
}

int main(int argc, char **argv)
{
	struct rte_mempool *pool;
	struct rte_eth_dev_info info;
	struct rte_ether_addr mac;
	struct glb_dp_tables *first;
	char err[ERR_LEN];
	unsigned int lcore, i;
	uint16_t mtu = 0;
	size_t sz;
	int rc;

	/* First: a supervisor may signal as soon as the process exists. The flags are acted on
	 * once forwarding runs (a SIGHUP before that reloads right away: harmless). */
	signal(SIGHUP, on_signal);
	signal(SIGUSR1, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	/* libxdp (af_xdp PMD) needs more locked memory than the default 8 MiB for its dispatcher
	 * (../shared/PLATFORM.md); best effort, a port that needs it reports its own error. */
	setrlimit(RLIMIT_MEMLOCK, &(struct rlimit){ RLIM_INFINITY, RLIM_INFINITY });

	rc = rte_eal_init(argc, argv);
	if (rc < 0)
		die("EAL initialisation failed (%s): check the EAL options before --", rte_strerror(rte_errno));
	parse_args(argc - rc, argv + rc);

	/* One forwarding context per lcore; the main lcore forwards only when it is alone. */
	RTE_LCORE_FOREACH_WORKER(lcore) {
		fwd[nfwd].lcore = lcore;
		fwd[nfwd].queue = nfwd;
		nfwd++;
	}
	if (!nfwd || opt.bench_bursts) {
		nfwd = 0;
		fwd[nfwd].lcore = rte_get_main_lcore();
		fwd[nfwd].queue = 0;
		nfwd = 1;
	}
	sz = rte_rcu_qsbr_get_memsize(nfwd);
	rcu = rte_zmalloc("glb_rcu", sz, RTE_CACHE_LINE_SIZE);
	if (!rcu || rte_rcu_qsbr_init(rcu, nfwd))
		die("cannot set up RCU for %u lcores", nfwd);

	if (!rte_eth_dev_is_valid_port((uint16_t)opt.port))
		die("port %d does not exist (%u ports: give them with --vdev or a PCI address)", opt.port,
		    rte_eth_dev_count_avail());
	if (opt.mtu)
		host.mtu = opt.mtu;
	else if (!rte_eth_dev_get_mtu((uint16_t)opt.port, &mtu) && mtu)
		host.mtu = mtu;
	else
		host.mtu = RTE_ETHER_MTU;
	pool = rte_pktmbuf_pool_create("glb_mbufs", 8191, POOL_CACHE, 0, mbuf_size(host.mtu), (int)rte_socket_id());
	if (!pool)
		die("cannot create the mbuf pool: %s (EAL memory: give -m or hugepages)", rte_strerror(rte_errno));
	if (opt.have_src_mac) {
		memcpy(host.src_mac, opt.src_mac, 6);
	} else {
		rc = rte_eth_macaddr_get((uint16_t)opt.port, &mac);
		if (rc)
			die("port %d: cannot read its MAC (%s): give --src-mac", opt.port, rte_strerror(-rc));
		memcpy(host.src_mac, mac.addr_bytes, 6);
	}
	host.names = opt.names;

	first = glb_dp_tables_load(opt.conf, opt.table, &host, err, sizeof(err));
	if (!first)
		die("%s", err);
	publish(first);

	port_init(opt.port, nfwd, pool, "forwarding");
	if (opt.host_port >= 0)
		port_init(opt.host_port, nfwd, pool, "host");
	if (opt.steer_if && (glb_steer_open(opt.steer_if, err, sizeof(err)) || steer_sync(first, err, sizeof(err))))
		die("%s", err);
	rte_eth_dev_info_get((uint16_t)opt.port, &info);
	fprintf(stderr, "glb-director-dpdk: port %d (%s), %u forwarding lcore(s), generation %" PRIu64
		" (%u tables), mtu %u\n", opt.port, info.driver_name, nfwd, generation, first->ntables, host.mtu);

	if (opt.bench_bursts) {
		bench_mem();
		quit = 1;
	} else if (fwd[0].lcore == rte_get_main_lcore()) {
		fwd_loop(&fwd[0]);
	} else {
		for (i = 0; i < nfwd; i++)
			rte_eal_remote_launch(fwd_loop, &fwd[i], fwd[i].lcore);
		while (!quit) {
			chores();
			rte_delay_us_sleep(10000);
		}
		rte_eal_mp_wait_lcore();
	}
	write_stats();
	rte_eth_dev_stop((uint16_t)opt.port);
	if (opt.host_port >= 0)
		rte_eth_dev_stop((uint16_t)opt.host_port);
	rte_eth_dev_close((uint16_t)opt.port);
	if (opt.host_port >= 0)
		rte_eth_dev_close((uint16_t)opt.host_port);
	rte_eal_cleanup();
	return 0;
}
