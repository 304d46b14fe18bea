/* SipHash-2-4 (Aumasson & Bernstein) for every GLB component that hashes: the XDP director
 * (bpf/director.c), the table builder's C extension (glb_agent/table/_rendezvous.c) and the
 * DPDK director. One file, so a flow and a row rank the same way whichever program computes
 * them, as upstream keeps one hashing library for both of its data planes.
 *
 * Portable on purpose: plain C99 plus GCC/Clang builtins, no bcc or kernel constructs, so it
 * compiles for BPF (clang -target bpf, bcc) and for userspace (gcc/clang -std=c11 -Wall
 * -Wextra). The word type is glb_u64: __u64 in BPF, uint64_t in userspace, so userspace
 * callers pass their own uint64_t arrays without casts.
 *
 * Upstream GLB hashes the selected header fields (addresses, then ports, in wire byte order)
 * keyed by the table's 16-byte key, and ranks backends with the same function; messages are
 * packed by the caller into little-endian 64-bit words (glb_sip_load_le64 for bytes).
 *
 * API, from general to the director's fast path:
 *   GLB_SIP_ROUND(v0, v1, v2, v3)         one SipRound on four lvalues (for hand-unrolled loops)
 *   glb_sip_init(k0, k1)                  state for a key (k0/k1: key bytes 0-7 / 8-15, LE)
 *   glb_sip_compress(&s, m)               one message block (two SipRounds)
 *   glb_sip_finish(s)                     finalisation: the 64-bit hash
 *   glb_siphash24(k0, k1, msg, len)       the whole function over bytes (userspace, tests)
 *   glb_sip_expand(k0, k1)                the director's per-key precomputed state (struct glb_sip)
 *   glb_siphash24_lo16(w, len, sip)       the director's packet hash: low 16 bits only
 */
#ifndef GLB_SIPHASH_H
#define GLB_SIPHASH_H

/* BPF builds, and userspace builds of BPF sources (the DPDK director compiles bpf/director.c
 * with GLB_SIP_KERNEL_TYPES), hash __u64 words; other userspace callers uint64_t ones. */
#if defined(__BPF__) || defined(__bpf__) || defined(__KERNEL__) || defined(GLB_SIP_KERNEL_TYPES)
typedef __u64 glb_u64;
#define GLB_SIP_INLINE static inline __attribute__((always_inline))
#else
#include <stddef.h>
#include <stdint.h>
typedef uint64_t glb_u64;
#define GLB_SIP_INLINE static inline __attribute__((always_inline, unused))
#endif

#if defined(__clang__)
#define GLB_SIP_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define GLB_SIP_UNROLL _Pragma("GCC unroll 8")
#else
#define GLB_SIP_UNROLL
#endif

/* Initial-state constants: "somepseudorandomlygeneratedbytes" as four LE words. */
#define GLB_SIP_C0 0x736f6d6570736575ULL
#define GLB_SIP_C1 0x646f72616e646f6dULL
#define GLB_SIP_C2 0x6c7967656e657261ULL
#define GLB_SIP_C3 0x7465646279746573ULL

#define GLB_SIP_ROTL(x, b) (glb_u64)(((x) << (b)) | ((x) >> (64 - (b))))

/* The first line of a SipRound: reads and writes only v0 and v1. */
#define GLB_SIP_ROUND_HEAD(v0, v1)                                      \
	do {                                                            \
		v0 += v1; v1 = GLB_SIP_ROTL(v1, 13); v1 ^= v0;          \
		v0 = GLB_SIP_ROTL(v0, 32);                              \
	} while (0)

/* The rest of a SipRound once its head is done. */
#define GLB_SIP_ROUND_TAIL(v0, v1, v2, v3)                              \
	do {                                                            \
		v2 += v3; v3 = GLB_SIP_ROTL(v3, 16); v3 ^= v2;          \
		v0 += v3; v3 = GLB_SIP_ROTL(v3, 21); v3 ^= v0;          \
		v2 += v1; v1 = GLB_SIP_ROTL(v1, 17); v1 ^= v2;          \
		v2 = GLB_SIP_ROTL(v2, 32);                              \
	} while (0)

#define GLB_SIP_ROUND(v0, v1, v2, v3)                                   \
	do {                                                            \
		GLB_SIP_ROUND_HEAD(v0, v1);                             \
		GLB_SIP_ROUND_TAIL(v0, v1, v2, v3);                     \
	} while (0)

/* SipHash state v0..v3. Also the director's per-table key material: there it holds the
 * state for the table's key after every step that does not depend on the message (the key
 * XOR the constants, then the head of the first compression's first SipRound), computed
 * once per table by the agent (director_maps.sip_prefix, or glb_sip_expand here), which
 * takes about 20 instructions off every packet:
 *   v[0] = rotl(v0 + v1, 32)     v[1] = rotl(v1, 13) ^ (v0 + v1)     v[2] = v2     v[3] = v3
 * with v0 = k0 ^ C0, v1 = k1 ^ C1, v2 = k0 ^ C2, v3 = k1 ^ C3. */
struct glb_sip {
	glb_u64 v[4];
};

/* Little-endian 64-bit load of 8 bytes, whatever the host's byte order and alignment. */
GLB_SIP_INLINE glb_u64 glb_sip_load_le64(const unsigned char *p)
{
	glb_u64 v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

GLB_SIP_INLINE struct glb_sip glb_sip_init(glb_u64 k0, glb_u64 k1)
{
	struct glb_sip s = {{k0 ^ GLB_SIP_C0, k1 ^ GLB_SIP_C1, k0 ^ GLB_SIP_C2, k1 ^ GLB_SIP_C3}};

	return s;
}

/* One compression (c = 2 SipRounds) of the message block m. */
GLB_SIP_INLINE void glb_sip_compress(struct glb_sip *s, glb_u64 m)
{
	glb_u64 v0 = s->v[0], v1 = s->v[1], v2 = s->v[2], v3 = s->v[3];

	v3 ^= m;
	GLB_SIP_ROUND(v0, v1, v2, v3);
	GLB_SIP_ROUND(v0, v1, v2, v3);
	v0 ^= m;
	s->v[0] = v0;
	s->v[1] = v1;
	s->v[2] = v2;
	s->v[3] = v3;
}

/* Finalisation (d = 4 SipRounds): the 64-bit result as the reference code returns it
 * (upstream stores it little-endian). */
GLB_SIP_INLINE glb_u64 glb_sip_finish(struct glb_sip s)
{
	glb_u64 v0 = s.v[0], v1 = s.v[1], v2 = s.v[2] ^ 0xff, v3 = s.v[3];

	GLB_SIP_ROUND(v0, v1, v2, v3);
	GLB_SIP_ROUND(v0, v1, v2, v3);
	GLB_SIP_ROUND(v0, v1, v2, v3);
	GLB_SIP_ROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

#if !(defined(__BPF__) || defined(__bpf__) || defined(__KERNEL__))
/* SipHash-2-4 of `len` bytes (userspace only: BPF programs hash packed words below).
 * The last block carries len mod 256 in its top byte, as in the reference code. */
GLB_SIP_INLINE glb_u64 glb_siphash24(glb_u64 k0, glb_u64 k1, const void *msg, size_t len)
{
	const unsigned char *p = (const unsigned char *)msg;
	struct glb_sip s = glb_sip_init(k0, k1);
	unsigned char tail[8] = {0};
	size_t i;

	for (i = 0; i + 8 <= len; i += 8)
		glb_sip_compress(&s, glb_sip_load_le64(p + i));
	for (; i < len; i++)
		tail[i % 8] = p[i];
	tail[7] = (unsigned char)len;
	glb_sip_compress(&s, glb_sip_load_le64(tail));
	return glb_sip_finish(s);
}
#endif

/* The director's per-key state (see struct glb_sip): init, then the head of the first
 * SipRound of the first compression, which does not depend on the message. */
GLB_SIP_INLINE struct glb_sip glb_sip_expand(glb_u64 k0, glb_u64 k1)
{
	struct glb_sip s = glb_sip_init(k0, k1);

	GLB_SIP_ROUND_HEAD(s.v[0], s.v[1]);
	return s;
}

/* The last SipRound folded into the output, keeping only what the low 16 bits of
 * v0 ^ v1 ^ v2 ^ v3 depend on: the director uses nothing else of the hash (row =
 * hash & 0xffff, UDP source port from hash & 0x7fff). In that round the final v0 enters
 * both v0 and v3, so it cancels out of the XOR; each remaining rotation by r leaves bits
 * 64 - r .. 79 - r of its input in the low 16 bits, one shift instead of three
 * instructions, and rotl(v3, 16) contributes only through bits that no wrap-around
 * reaches. About a dozen instructions and three dependent steps fewer per packet;
 * tests/dataplane checks every forwarded packet against the full 64-bit SipHash. */
GLB_SIP_INLINE unsigned int glb_sip_last_round_lo16(glb_u64 v0, glb_u64 v1, glb_u64 v2, glb_u64 v3)
{
	glb_u64 v1b, v2a, v2b, v3b;

	v0 += v1;
	v1b = GLB_SIP_ROTL(v1, 13) ^ v0;
	v2a = v2 + v3;
	v3b = (v3 << 16) ^ v2a; /* bits 16-63 of rotl(v3, 16) ^ v2a: all the output uses */
	v2b = v2a + v1b;
	return (unsigned int)((v1b >> 47) ^ v2b ^ (v2b >> 32) ^ (v3b >> 43)) & 0xffff;
}

/* The low 16 bits of SipHash-2-4 of a message of at most 39 bytes (the director's largest is
 * 36: two IPv6 addresses and two ports).
 * `w` holds the message zero-padded to whole words plus one: w[len / 8] must have room for
 * the length byte. `len` must be a compile-time constant at the call site, so the block loop
 * unrolls completely and the BPF verifier sees straight-line code. `sip` is the key's
 * expanded state (glb_sip_expand). */
GLB_SIP_INLINE unsigned int glb_siphash24_lo16(const glb_u64 *w, const int len, const struct glb_sip *sip)
{
	glb_u64 v0 = sip->v[0], v1 = sip->v[1], v2 = sip->v[2], v3 = sip->v[3];
	const int blocks = len / 8 + 1;
	int i;

	GLB_SIP_UNROLL
	for (i = 0; i < 5; i++) {
		if (i < blocks) {
			glb_u64 m = w[i];
			if (i == blocks - 1)
				m |= ((glb_u64)len) << 56;
			v3 ^= m;
			if (i == 0) {
				GLB_SIP_ROUND_TAIL(v0, v1, v2, v3);
			} else {
				GLB_SIP_ROUND(v0, v1, v2, v3);
			}
			GLB_SIP_ROUND(v0, v1, v2, v3);
			v0 ^= m;
		}
	}
	v2 ^= 0xff;
	GLB_SIP_ROUND(v0, v1, v2, v3);
	GLB_SIP_ROUND(v0, v1, v2, v3);
	GLB_SIP_ROUND(v0, v1, v2, v3);
	return glb_sip_last_round_lo16(v0, v1, v2, v3);
}

#endif /* GLB_SIPHASH_H */
