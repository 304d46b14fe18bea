#!/usr/bin/env bash
# Build the GLB appliance image: image/out/glb-appliance.qcow2 (+ vmlinuz, initrd.img, build.json).
# One command, as root on Debian 12: installs the host tools it needs, then runs image/build.py
# (phases with timings; see docs/image.md). Arguments are passed on (--config, --out, --rebuild-base).
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS=(debootstrap qemu-system-x86 qemu-utils extlinux syslinux-common e2fsprogs openssh-client)
missing=()
for p in "${TOOLS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[image] apt: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The venv with ansible-core and the agent (scripts/setup.sh is idempotent and quick when done).
[ -x .venv/bin/ansible-playbook ] || bash scripts/setup.sh
exec .venv/bin/python image/build.py "$@"
