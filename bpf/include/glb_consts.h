/* Protocol constants and header sizes for the GLB BPF programs, from the uapi headers where
 * the kernel exports them, defined here (with the kernel's values) where it does not.
 *
 * Family-generic code in glb_parse.h, bpf/director.c and bpf/proxy.c is written once over the
 * address length `alen` (4 for IPv4, 16 for IPv6, always a compile-time constant at the call
 * site, so every helper is specialised per family by inlining): the GLB_IP_*(alen) macros
 * below give each family's sizes, offsets and protocol numbers, and are the only place where
 * the two families are told apart by anything but their address length.
 */
#ifndef GLB_CONSTS_H
#define GLB_CONSTS_H

#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/in.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>
#include <uapi/linux/udp.h>
#include <uapi/linux/tcp.h>
#include <uapi/linux/icmp.h>
#include <uapi/linux/icmpv6.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GLB programs assume a little-endian host (wire bytes are loaded as LE words)"
#endif

#ifndef AF_INET
#define AF_INET 2 /* bpf_fib_lookup family; <sys/socket.h> is not available to BPF */
#endif

/* IPv4 flags/fragment-offset field (include/net/ip.h, not exported to uapi). */
#define GLB_IP_DF 0x4000
#define GLB_IP_MF 0x2000
#define GLB_IP_OFFSET 0x1fff
/* IPv6 fragment header (include/net/ipv6.h, not exported to uapi). */
struct glb_ipv6_frag_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;  /* offset in 8-byte units << 3 | M flag */
	__be32 identification;
};
#define GLB_IP6_OFFSET 0xfff8 /* frag_off bits holding the offset */

/* 802.1Q tag after the MAC addresses: TCI then the encapsulated ethertype (linux/if_vlan.h's
 * struct vlan_hdr is not uapi). */
struct glb_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

#define GLB_LOOPBACK_IFINDEX 1 /* the loopback device has ifindex 1 in every namespace */
#define GLB_ICMP_HDR_LEN 8     /* type, code, checksum, 4 bytes of rest: same for ICMPv6 */
_Static_assert(sizeof(struct icmphdr) == GLB_ICMP_HDR_LEN, "ICMP header size");
_Static_assert(sizeof(struct icmp6hdr) == GLB_ICMP_HDR_LEN, "ICMPv6 header size");

/* --- the two families, by address length (4 or 16) ------------------------------------ */
#define GLB_IS_V4(alen) ((alen) == 4)
#define GLB_IP_VERSION(alen) (GLB_IS_V4(alen) ? 4 : 6)
/* Fixed header size: the IPv4 header without options, the IPv6 base header. */
#define GLB_IP_HDR_LEN(alen) (GLB_IS_V4(alen) ? sizeof(struct iphdr) : sizeof(struct ipv6hdr))
#define GLB_IP_SADDR_OFF(alen) \
	(GLB_IS_V4(alen) ? __builtin_offsetof(struct iphdr, saddr) : __builtin_offsetof(struct ipv6hdr, saddr))
#define GLB_IP_DADDR_OFF(alen) (GLB_IP_SADDR_OFF(alen) + (alen))
#define GLB_IP_PROTO_OFF(alen) \
	(GLB_IS_V4(alen) ? __builtin_offsetof(struct iphdr, protocol) : __builtin_offsetof(struct ipv6hdr, nexthdr))
#define GLB_IPPROTO_ICMP(alen) (GLB_IS_V4(alen) ? IPPROTO_ICMP : IPPROTO_ICMPV6)
#define GLB_ICMP_ECHO_REQUEST(alen) (GLB_IS_V4(alen) ? ICMP_ECHO : ICMPV6_ECHO_REQUEST)
#define GLB_ETH_P(alen) (GLB_IS_V4(alen) ? ETH_P_IP : ETH_P_IPV6)
#define GLB_GUE_PROTO(alen) (GLB_IS_V4(alen) ? IPPROTO_IPIP : IPPROTO_IPV6) /* GUE proto field */

#endif /* GLB_CONSTS_H */
