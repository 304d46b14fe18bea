/* Userspace build of the XDP director: the kernel uapi header of the same name. */
#include <linux/udp.h>
