#!/usr/bin/env bash
# Installs what patchswarm needs on Debian 12 (only what is missing) and builds it into build/.
# Usage: scripts/setup.sh [--no-build | TARGET...]   (no target: build everything)
# PATCHSWARM_EXTRA_PACKAGES="pkg ..." adds packages (bench/bench.sh uses it for its baselines).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake ninja-build g++ pkg-config libtorrent-rasterbar-dev libboost-dev
  libboost-system-dev libsodium-dev libspdlog-dev catch2 nlohmann-json3-dev libcli11-dev libcctz-dev
  libsqlite3-dev libssl-dev libtomlplusplus-dev libsystemd-dev iproute2 procps tzdata chromium)
# shellcheck disable=SC2206 # word splitting of the list is intended
packages+=(${PATCHSWARM_EXTRA_PACKAGES:-})
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "== installing: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

[ "${1:-}" = "--no-build" ] && exit 0
echo "== building (build/)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
if (($#)); then
  cmake --build build -j"$(nproc)" --target "$@"
else
  cmake --build build -j"$(nproc)"
fi
