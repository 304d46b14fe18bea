#!/usr/bin/env bash
# Install everything the agent, its tests and the lab need on a Debian 12 host, idempotently.
# Fast when already done: apt runs only when a package is missing, pip only when
# pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${GLB_VENV:-$ROOT/.venv}

APT_PACKAGES=(
  python3 python3-venv python3-dev python3-bpfcc bpfcc-tools libbpf-dev bpftool clang llvm
  linux-headers-amd64 iproute2 iputils-ping ethtool tcpdump bird2 curl wrk apache2-utils
  build-essential frr nftables
  # DPDK director (dpdk/, issue 16): Debian's DPDK 22.11, the PMDs it uses (af_xdp with libxdp
  # for a NIC shared with the host, pcap/ring/null for tests and benches), meson, jansson.
  libdpdk-dev librte-net-af-xdp23 librte-net-pcap23 librte-net-ring23 librte-net-null23
  librte-net-af-packet23 librte-net-tap23 meson ninja-build pkg-config libjansson-dev libpcap-dev
  libxdp-dev xdp-tools
)

log() { printf '[setup] %s\n' "$*" >&2; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "apt: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # bird2 starts a system daemon we do not want; the lab runs its own per namespace.
  systemctl disable --now bird >/dev/null 2>&1 || true
fi

# bcc compiles against /lib/modules/$(uname -r)/build. Hosts whose running kernel has no
# headers package (this CI kernel) get Debian's newest headers linked in; real directors
# install linux-headers-$(uname -r) through the glb_common role instead.
KREL=$(uname -r)
if [ ! -e "/lib/modules/$KREL/build" ]; then
  hdr=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n1)
  common=$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n1)
  if [ -n "$hdr" ]; then
    log "linking $hdr as kernel headers for $KREL"
    mkdir -p "/lib/modules/$KREL"
    ln -sfn "$hdr" "/lib/modules/$KREL/build"
    [ -n "$common" ] && ln -sfn "$common" "/lib/modules/$KREL/source"
  fi
fi

# bpffs for pinned maps.
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv $VENV (system site packages, for bcc)"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
stamp="$VENV/.glb-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ] || [ -n "$(find glb_agent -name '*.c' -newer "$stamp" 2>/dev/null)" ]; then
  log "pip: installing glb-agent with test and ops extras"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  "$VENV/bin/pip" install -q -e ".[test,ops]"
  touch "$stamp"
fi
# The DPDK director binary (build/dpdk/glb-director-dpdk); ninja rebuilds only what changed.
log "building the DPDK director"
make -s dpdk >/dev/null

log "ready: $VENV"
