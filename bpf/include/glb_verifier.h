/* Helpers that keep programs loadable on older verifiers (Debian 12's 6.1 kernel).
 *
 * A byte swap (bpf_ntohs) leaves an unbounded scalar in the eyes of those verifiers, and adding
 * such a value to a packet pointer is rejected ("math between pkt pointer and register with
 * unbounded min value"). The compiler drops a plain `& 0xffff` on a 16-bit value as a no-op, so
 * the empty asm hides the value's range from it: the AND is emitted and the verifier learns
 * 0 <= v <= 0xffff. Costs one ALU instruction.
 */
#ifndef GLB_VERIFIER_H
#define GLB_VERIFIER_H

#define GLB_BOUND16(x) ({                          \
	__u32 __glb_v = (x);                        \
	asm volatile("" : "+r"(__glb_v));           \
	__glb_v & 0xffff;                           \
})

#endif /* GLB_VERIFIER_H */
