/* SipHash-2-4 (Aumasson & Bernstein) over a message the caller already packed into
 * little-endian 64-bit words.
 *
 * Upstream GLB hashes the selected header fields (addresses, then ports, in wire byte
 * order) with SipHash-2-4 keyed by the table's 16-byte key; the director must compute the
 * same hash so a flow lands on the same row whichever implementation forwards it. The
 * director uses only the hash's low 16 bits, so that is all glb_siphash24_lo16 returns.
 * The message here is at most 36 bytes (two IPv6 addresses and two ports), i.e. at most
 * five 8-byte blocks; the length is a compile-time constant at every call site, so the
 * compiler unrolls the block loop completely and the verifier sees straight-line code.
 */
#ifndef DIRECTOR_SIPHASH_H
#define DIRECTOR_SIPHASH_H

#define GLB_SIP_ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

#define GLB_SIP_ROUND(v0, v1, v2, v3)                                   \
	do {                                                            \
		v0 += v1; v1 = GLB_SIP_ROTL(v1, 13); v1 ^= v0;          \
		v0 = GLB_SIP_ROTL(v0, 32);                              \
		v2 += v3; v3 = GLB_SIP_ROTL(v3, 16); v3 ^= v2;          \
		v0 += v3; v3 = GLB_SIP_ROTL(v3, 21); v3 ^= v0;          \
		v2 += v1; v1 = GLB_SIP_ROTL(v1, 17); v1 ^= v2;          \
		v2 = GLB_SIP_ROTL(v2, 32);                              \
	} while (0)

/* The rest of a SipRound once its first line (v0/v1 only) is done. */
#define GLB_SIP_ROUND_TAIL(v0, v1, v2, v3)                              \
	do {                                                            \
		v2 += v3; v3 = GLB_SIP_ROTL(v3, 16); v3 ^= v2;          \
		v0 += v3; v3 = GLB_SIP_ROTL(v3, 21); v3 ^= v0;          \
		v2 += v1; v1 = GLB_SIP_ROTL(v1, 17); v1 ^= v2;          \
		v2 = GLB_SIP_ROTL(v2, 32);                              \
	} while (0)

/* The last SipRound folded into the output, keeping only what the low 16 bits of
 * v0 ^ v1 ^ v2 ^ v3 depend on: the director uses nothing else of the hash (row =
 * hash & 0xffff, UDP source port from hash & 0x7fff). In that round the final v0 enters
 * both v0 and v3, so it cancels out of the XOR; each remaining rotation by r leaves bits
 * 64 - r .. 79 - r of its input in the low 16 bits, one shift instead of three
 * instructions, and rotl(v3, 16) contributes only through bits that no wrap-around
 * reaches. About a dozen instructions and three dependent steps fewer per packet;
 * tests/dataplane checks every forwarded packet against the full 64-bit SipHash. */
static __always_inline __u32 glb_sip_last_round_lo16(__u64 v0, __u64 v1, __u64 v2, __u64 v3)
{
	__u64 v1b, v2a, v2b, v3b;

	v0 += v1;
	v1b = GLB_SIP_ROTL(v1, 13) ^ v0;
	v2a = v2 + v3;
	v3b = (v3 << 16) ^ v2a; /* bits 16-63 of rotl(v3, 16) ^ v2a: all the output uses */
	v2b = v2a + v1b;
	return (__u32)((v1b >> 47) ^ v2b ^ (v2b >> 32) ^ (v3b >> 43)) & 0xffff;
}

/* The low 16 bits of SipHash-2-4 of the message.
 * `w` holds the message zero-padded to whole words plus one: w[len / 8] must have room for
 * the length byte. `len` must be a constant below 40. `sip` is the key's state with the
 * message-independent start of the first compression already applied (struct glb_sip). */
static __always_inline __u32 glb_siphash24_lo16(const __u64 *w, const int len, const struct glb_sip *sip)
{
	__u64 v0 = sip->v[0], v1 = sip->v[1], v2 = sip->v[2], v3 = sip->v[3];
	const int blocks = len / 8 + 1;
	int i;

#pragma unroll
	for (i = 0; i < 5; i++) {
		if (i < blocks) {
			__u64 m = w[i];
			if (i == blocks - 1)
				m |= ((__u64)len) << 56;
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

#endif /* DIRECTOR_SIPHASH_H */
