/*
 * Rendezvous ranking of backends for GLB forwarding-table rows: the hot loop of
 * `glb-agent table build`, in C because it is ~150 64-bit operations per (row, backend)
 * pair and 4 tables x 256 backends is 67 million pairs.
 *
 * For row r, upstream ranks backend b by bswap64(SipHash-2-4(seed, H(r) || ip(b))), where
 * H(r) = SipHash-2-4(seed, be32(r)). H(r) is exactly the first 8-byte message block, so the
 * SipHash state after that block depends only on the row: we compute it once per row and
 * per backend run only the remaining block(s) plus finalisation. Only the k smallest
 * ranks are kept (a running top-k by insertion, no sort: almost every backend fails the
 * one comparison against the current k-th). The per-backend loop has no branches and no
 * cross-iteration dependencies, so the compiler vectorises it; target_clones builds an
 * AVX2 and an AVX-512 version next to the baseline one and picks at load time, so the same
 * binary runs on any x86-64 host.
 *
 * Python interface (the GIL is released while computing, so threads can split the rows):
 *   topk(seed: bytes[16], v4: bytes[4*n4], v6: bytes[16*n6], index: bytes[4*(n4+n6)],
 *        out: writable buffer of >= 4*k*row_end bytes, row_start: int, row_end: int,
 *        k: int, 1 <= k <= min(n4 + n6, GLB_RV_MAX_K)) -> None
 * `index` maps candidate positions (all IPv4 candidates first, then all IPv6 ones, each
 * group in table order) to the row values to store (indices into the full backends list,
 * increasing with table order). out[k*r .. k*r+k-1] receive, as native uint32, the indices
 * of the k smallest ranks in increasing rank order; equal ranks (never seen in practice)
 * are ordered by index so the result never depends on the IPv4/IPv6 grouping. What a row
 * does with its candidates (upstream's swap, or the send order of states and health) is
 * policy and lives in Python (rendezvous.py, send_order.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Most candidates a row can keep: the GUE hop list carries at most 8 proxies. */
#define GLB_RV_MAX_K 8

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#define GLB_MULTIVERSION __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define GLB_MULTIVERSION
#endif

/* SipHash-2-4 is bpf/include/glb_siphash.h, the one the XDP and DPDK directors use, so a
 * row ranks backends with the very function a packet is hashed with (setup.py puts that
 * folder on the include path). */
#include "glb_siphash.h"

static inline uint64_t load_le32(const uint8_t *p)
{
	return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24;
}

/* Row hash: SipHash-2-4 of the 4-byte big-endian row number (a single, final block). */
static inline uint64_t row_hash(uint64_t k0, uint64_t k1, uint32_t row)
{
	struct glb_sip s = glb_sip_init(k0, k1);
	uint64_t be = (uint64_t)((row >> 24) & 0xff) | (uint64_t)((row >> 16) & 0xff) << 8 |
		      (uint64_t)((row >> 8) & 0xff) << 16 | (uint64_t)(row & 0xff) << 24;
	glb_sip_compress(&s, be | (4ULL << 56));
	return glb_sip_finish(s);
}

typedef struct {
	uint64_t k0, k1;
	const uint64_t *v4_last; /* per IPv4 candidate: its final block (address | 12 << 56) */
	size_t n4;
	const uint64_t *v6_lo, *v6_hi; /* per IPv6 candidate: address blocks 1 and 2 */
	size_t n6;
	const uint32_t *index;
	uint64_t *ranks; /* scratch, n4 + n6 */
	uint32_t *out;
	uint32_t row_start, row_end;
	uint32_t k; /* candidates kept per row, 1..GLB_RV_MAX_K and <= n4 + n6 */
} job;

GLB_MULTIVERSION
static void run_job(const job *j)
{
	/* Locals, not j->...: the stores to ranks[] could otherwise alias the loop bounds,
	 * and GCC then refuses to vectorise ("number of iterations cannot be computed"). */
	const size_t n4 = j->n4, n6 = j->n6, n = n4 + n6;
	const uint64_t k0 = j->k0, k1 = j->k1;
	const uint32_t row_start = j->row_start, row_end = j->row_end, k = j->k;
	const uint64_t *restrict v4 = j->v4_last;
	const uint64_t *restrict lo = j->v6_lo;
	const uint64_t *restrict hi = j->v6_hi;
	const uint32_t *restrict index = j->index;
	uint32_t *restrict out = j->out;
	uint64_t *restrict ranks = j->ranks;
	uint64_t *restrict ranks6 = ranks + n4;

	for (uint32_t row = row_start; row < row_end; row++) {
		struct glb_sip s = glb_sip_init(k0, k1);
		glb_sip_compress(&s, row_hash(k0, k1, row));
		const uint64_t s0 = s.v[0], s1 = s.v[1], s2 = s.v[2], s3 = s.v[3];

		/* The per-backend loops spell out compress + finish with the header's round on
		 * locals (GLB_SIP_ROUND, meant for hand-unrolled loops): with glb_sip_compress /
		 * glb_sip_finish on a struct copy GCC still vectorises, but the build is ~10%
		 * slower here (measured in one run, both variants interleaved). */
		for (size_t b = 0; b < n4; b++) {
			uint64_t v0 = s0, v1 = s1, v2 = s2, v3 = s3;
			const uint64_t m = v4[b];
			v3 ^= m;
			GLB_SIP_ROUND(v0, v1, v2, v3);
			GLB_SIP_ROUND(v0, v1, v2, v3);
			v0 ^= m;
			v2 ^= 0xff;
			GLB_SIP_ROUND(v0, v1, v2, v3);
			GLB_SIP_ROUND(v0, v1, v2, v3);
			GLB_SIP_ROUND(v0, v1, v2, v3);
			GLB_SIP_ROUND(v0, v1, v2, v3);
			ranks[b] = __builtin_bswap64(v0 ^ v1 ^ v2 ^ v3);
		}

		for (size_t b = 0; b < n6; b++) {
			uint64_t v0 = s0, v1 = s1, v2 = s2, v3 = s3;
			uint64_t m = lo[b];
			v3 ^= m;
			GLB_SIP_ROUND(v0, v1, v2, v3);
			GLB_SIP_ROUND(v0, v1, v2, v3);
			v0 ^= m;
			m = hi[b];
			v3 ^= m;
			GLB_SIP_ROUND(v0, v1, v2, v3);
			GLB_SIP_ROUND(v0, v1, v2, v3);
			v0 ^= m;
			m = 24ULL << 56; /* 8-byte row hash + 16-byte address, nothing left over */
			v3 ^= m;
			GLB_SIP_ROUND(v0, v1, v2, v3);
			GLB_SIP_ROUND(v0, v1, v2, v3);
			v0 ^= m;
			v2 ^= 0xff;
			GLB_SIP_ROUND(v0, v1, v2, v3);
			GLB_SIP_ROUND(v0, v1, v2, v3);
			GLB_SIP_ROUND(v0, v1, v2, v3);
			GLB_SIP_ROUND(v0, v1, v2, v3);
			ranks6[b] = __builtin_bswap64(v0 ^ v1 ^ v2 ^ v3);
		}

		/* Running top-k by (rank, index), kept sorted; index breaks the (theoretical)
		 * ties. The sentinels (UINT64_MAX, UINT32_MAX) lose against every real entry,
		 * because real indices are below UINT32_MAX, so no fill count is needed. */
		uint64_t br[GLB_RV_MAX_K];
		uint32_t bi[GLB_RV_MAX_K];
		for (uint32_t p = 0; p < k; p++)
			br[p] = UINT64_MAX, bi[p] = UINT32_MAX;
		uint64_t worst = UINT64_MAX; /* br[k - 1], in a register for the common case */
		for (size_t b = 0; b < n; b++) {
			const uint64_t r = ranks[b];
			if (r > worst)
				continue;
			const uint32_t i = index[b];
			if (r == worst && i > bi[k - 1])
				continue;
			uint32_t p = k - 1;
			while (p > 0 && (r < br[p - 1] || (r == br[p - 1] && i < bi[p - 1]))) {
				br[p] = br[p - 1], bi[p] = bi[p - 1];
				p--;
			}
			br[p] = r, bi[p] = i;
			worst = br[k - 1];
		}
		uint32_t *dst = out + (size_t)k * row;
		for (uint32_t p = 0; p < k; p++)
			dst[p] = bi[p];
	}
}

static PyObject *py_topk(PyObject *self, PyObject *args)
{
	Py_buffer seed, v4, v6, index, out;
	unsigned long row_start, row_end, k;
	PyObject *result = NULL;
	uint64_t *scratch = NULL;

	(void)self;
	if (!PyArg_ParseTuple(args, "y*y*y*y*w*kkk", &seed, &v4, &v6, &index, &out, &row_start,
			      &row_end, &k))
		return NULL;

	const size_t n4 = (size_t)v4.len / 4, n6 = (size_t)v6.len / 16, n = n4 + n6;
	if (seed.len != 16) {
		PyErr_SetString(PyExc_ValueError, "seed must be 16 bytes");
		goto done;
	}
	if (v4.len % 4 || v6.len % 16 || (size_t)index.len != 4 * n) {
		PyErr_SetString(PyExc_ValueError,
				"v4/v6 must hold 4/16-byte addresses and index one uint32 per address");
		goto done;
	}
	if (n == 0) {
		PyErr_SetString(PyExc_ValueError, "no candidate backends");
		goto done;
	}
	if (k < 1 || k > GLB_RV_MAX_K || k > n) {
		PyErr_SetString(PyExc_ValueError, "k must be 1..8 and at most the number of candidates");
		goto done;
	}
	if (row_start > row_end || row_end > 0x10000 || (size_t)out.len < 4 * k * (size_t)row_end) {
		PyErr_SetString(PyExc_ValueError, "row range outside 0..65536 or output too small");
		goto done;
	}

	/* One allocation: IPv4 final blocks, IPv6 blocks 1 and 2, index copy, rank scratch. */
	scratch = malloc(sizeof(uint64_t) * (n4 + 2 * n6 + n) + sizeof(uint32_t) * n);
	if (scratch == NULL) {
		PyErr_NoMemory();
		goto done;
	}
	uint64_t *v4_last = scratch, *v6_lo = v4_last + n4, *v6_hi = v6_lo + n6;
	uint64_t *ranks = v6_hi + n6;
	uint32_t *idx = (uint32_t *)(ranks + n);
	const uint8_t *a4 = v4.buf, *a6 = v6.buf;
	for (size_t b = 0; b < n4; b++)
		v4_last[b] = load_le32(a4 + 4 * b) | (12ULL << 56);
	for (size_t b = 0; b < n6; b++) {
		v6_lo[b] = glb_sip_load_le64(a6 + 16 * b);
		v6_hi[b] = glb_sip_load_le64(a6 + 16 * b + 8);
	}
	memcpy(idx, index.buf, 4 * n);

	const uint8_t *key = seed.buf;
	job j = {
	    .k0 = glb_sip_load_le64(key),
	    .k1 = glb_sip_load_le64(key + 8),
	    .v4_last = v4_last,
	    .n4 = n4,
	    .v6_lo = v6_lo,
	    .v6_hi = v6_hi,
	    .n6 = n6,
	    .index = idx,
	    .ranks = ranks,
	    .out = out.buf,
	    .row_start = (uint32_t)row_start,
	    .row_end = (uint32_t)row_end,
	    .k = (uint32_t)k,
	};
	Py_BEGIN_ALLOW_THREADS
	run_job(&j);
	Py_END_ALLOW_THREADS

	Py_INCREF(Py_None);
	result = Py_None;
done:
	free(scratch);
	PyBuffer_Release(&seed);
	PyBuffer_Release(&v4);
	PyBuffer_Release(&v6);
	PyBuffer_Release(&index);
	PyBuffer_Release(&out);
	return result;
}

static PyMethodDef methods[] = {
    {"topk", py_topk, METH_VARARGS,
     "topk(seed, v4, v6, index, out, row_start, row_end, k): k lowest-ranked backends per row."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rendezvous",
    "Rendezvous top-k per forwarding-table row (see the comment at the top of the C file).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__rendezvous(void)
{
	return PyModule_Create(&module);
}
