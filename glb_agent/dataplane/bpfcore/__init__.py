"""The userspace BPF layer under both XDP data planes (director and proxy).

Modules, bottom up:

* ``binding``: the one binding to the kernel (libbpf through ctypes; the docstring says
  why not raw syscalls): pin/get objects, program/map/link info, map
  lookup/update/delete/next-key/batch, XDP link create/update/detach, the XDP query, the
  legacy netlink attach (migration only), BPF_PROG_TEST_RUN, possible CPUs, and the RCU
  grace wait.
* ``maps``: ``Map`` (a map by fd, raw bytes) and the JSON bookkeeping codec.
* ``xdp``: ``attached(interface)``, the one answer to "which XDP program runs here", used
  by BGP readiness, ``status`` and both loaders.
* ``pinned``: ``PinnedXdp``, the attach-and-adopt model (pinned link + pinned maps + meta,
  one flock per pin directory, migration from the pre-layout pin paths).
* ``testrun``: run a program on one packet (tests, fuzzer, benchmarks).

Pin and state directories come from ``glb_agent.util.paths``:
/sys/fs/bpf/glb/{director,proxy}/<ifname> and /run/glb/{director,proxy}.

A new data plane built on XDP (another forwarding mode, a combined director+proxy
program) gets its loader by compiling its program and handing the fds to ``PinnedXdp``;
one that is not XDP (DPDK) shares only ``util.paths`` and implements the small
``DirectorDataPlane`` protocol in ``glb_agent.dataplane.director``.
"""
