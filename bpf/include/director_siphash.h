/* SipHash-2-4 (Aumasson & Bernstein) over a message the caller already packed into
 * little-endian 64-bit words.
 *
 * Upstream GLB hashes the selected header fields (addresses, then ports, in wire byte
 * order) with SipHash-2-4 keyed by the table's 16-byte key; the director must compute the
 * same 64-bit value so a flow lands on the same row whichever implementation forwards it.
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

/* `w` holds the message zero-padded to whole words plus one: w[len / 8] must have room for
 * the length byte. `len` must be a constant below 40. `sip` is the key's state with the
 * message-independent start of the first compression already applied (struct glb_sip). */
static __always_inline __u64 glb_siphash24(const __u64 *w, const int len, const struct glb_sip *sip)
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
	GLB_SIP_ROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

#endif /* DIRECTOR_SIPHASH_H */
