#!/usr/bin/env bash
# The Molecule scenario's network on the host:
#   bridge glbm-br (root namespace, no address) <- taps glbm-<vm> of the VMs' eth0
#                                               <- veth to netns glbm-r1 (the router, BIRD,
#                                                  198.18.0.1, MAC 02:47:4c:00:00:01 = glb.yml's gateway_mac)
#   netns glbm-c (the client, 198.51.100.10-17) <- veth -> glbm-r1 (198.51.100.1)
# Usage: fabric.sh up RUNDIR VM... | fabric.sh bird RUNDIR | fabric.sh down RUNDIR VM...
set -euo pipefail
cmd=$1 run=$2
shift 2
R=glbm-r1 C=glbm-c BR=glbm-br

down() {
  if [ -f "$run/bird.pid" ]; then
    kill "$(cat "$run/bird.pid")" 2>/dev/null || true
    rm -f "$run/bird.pid"
  fi
  for vm in "$@"; do ip link del "glbm-$vm" 2>/dev/null || true; done
  ip link del glbm-rfab 2>/dev/null || true
  ip link del "$BR" 2>/dev/null || true
  ip netns del "$R" 2>/dev/null || true
  ip netns del "$C" 2>/dev/null || true
}

case "$cmd" in
  up)
    down "$@"
    mkdir -p "$run"
    ip link add "$BR" type bridge
    ip link set "$BR" up
    for vm in "$@"; do
      ip tuntap add dev "glbm-$vm" mode tap
      ip link set "glbm-$vm" master "$BR" up
    done
    ip netns add "$R"
    ip netns add "$C"
    ip link add glbm-rfab type veth peer name fab netns "$R"
    ip link set glbm-rfab master "$BR" up
    ip -n "$R" link set fab address 02:47:4c:00:00:01
    ip -n "$R" addr add 198.18.0.1/24 dev fab
    ip -n "$R" link set fab up
    ip -n "$R" link set lo up
    ip link add cli netns "$C" type veth peer name cli netns "$R"
    ip -n "$R" addr add 198.51.100.1/24 dev cli
    ip -n "$R" link set cli up
    ip netns exec "$R" sysctl -qw net.ipv4.ip_forward=1
    # Hash ECMP on L4 too, so the client's connections spread over both directors.
    ip netns exec "$R" sysctl -qw net.ipv4.fib_multipath_hash_policy=1
    ip -n "$C" link set lo up
    for i in $(seq 10 17); do ip -n "$C" addr add "198.51.100.$i/24" dev cli; done
    ip -n "$C" link set cli up
    ip -n "$C" route add default via 198.51.100.1
    ;;
  bird)
    ip netns exec "$R" bird -c "$run/bird.conf" -s "$run/bird.ctl" -P "$run/bird.pid"
    ;;
  down)
    down "$@"
    ;;
  *)
    echo "usage: $0 up|bird|down RUNDIR VM..." >&2
    exit 2
    ;;
esac
