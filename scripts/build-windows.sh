#!/usr/bin/env bash
# Cross-builds patchswarm for Windows x86-64 with Debian 12's mingw-w64 (issue 17).
#
# Usage: scripts/build-windows.sh [--deps-only] [--print-key] [--test]
#   --deps-only   build (or reuse) the dependency prefix, not the project
#   --print-key   print the cache directory the current inputs map to, and exit
#   --test        after the build, run the Windows tests under Wine (ctest -L windows; needs
#                 wine64, which this script installs then)
#
# Inputs (everything the result depends on; all of it goes into the cache key):
#   - Debian bookworm source packages, fetched with `apt-get source` through a deb-src entry this
#     script writes to /etc/apt/sources.list.d/patchswarm-deb-src.sources, Debian's patches
#     applied by dpkg-source:
#       libsodium             PATCHSWARM_WIN_LIBSODIUM  (default below)
#       sqlite3               PATCHSWARM_WIN_SQLITE3
#       openssl               PATCHSWARM_WIN_OPENSSL
#       libtorrent-rasterbar  PATCHSWARM_WIN_LIBTORRENT
#     A version the mirror no longer serves falls back to the newest one it does serve (the
#     bookworm-security index sometimes names a version before the pool has it); the versions
#     actually built are written to <cache>/<key>/versions.txt.
#   - Header-only parts from the host's Debian -dev packages (their versions are in the key):
#     Boost 1.74 (libboost1.74-dev), nlohmann-json (nlohmann-json3-dev), CLI11 (libcli11-dev),
#     spdlog (libspdlog-dev) and fmt (libfmt-dev).
#   - The compilers (g++-mingw-w64-x86-64-posix: x86_64-w64-mingw32-{gcc,g++}-posix), the
#     toolchain file cmake/mingw-w64.cmake and the build recipes in this file.
#
# Outputs:
#   ${PATCHSWARM_WIN_CACHE:-/var/cache/patchswarm-win}/<key>/prefix   static libraries + headers
#   .../<key>/logs/<dep>.log     full build log of each dependency
#   .../<key>/timings.txt        wall-clock and CPU time of each dependency build
#   build-win/                   the project (CMake + Ninja, toolchain cmake/mingw-w64.cmake)
#
# Every compile runs under `nice -n 19` with at most PATCHSWARM_WIN_JOBS (default 2) jobs, so a
# cold dependency build only takes idle CPU on a shared machine. Measured times: docs/WINDOWS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

deps_only=0
print_key=0
run_tests=0
for arg in "$@"; do
  case "$arg" in
    --deps-only) deps_only=1 ;;
    --print-key) print_key=1 ;;
    --test) run_tests=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "build-windows.sh: unknown argument: $arg" >&2
      exit 2
      ;;
  esac
done

: "${PATCHSWARM_WIN_LIBSODIUM:=1.0.18-1+deb12u1}"
: "${PATCHSWARM_WIN_SQLITE3:=3.40.1-2+deb12u2}"
: "${PATCHSWARM_WIN_OPENSSL:=3.0.20-1~deb12u2}"
: "${PATCHSWARM_WIN_LIBTORRENT:=2.0.8-1}"
: "${PATCHSWARM_WIN_JOBS:=2}"
cache_root=${PATCHSWARM_WIN_CACHE:-/var/cache/patchswarm-win}
triple=x86_64-w64-mingw32
export CC_WIN=${triple}-gcc-posix CXX_WIN=${triple}-g++-posix
nice_run=(nice -n 19)

log() { echo "== $*" >&2; }

# --- host packages ---------------------------------------------------------------------------
host_packages=(g++-mingw-w64-x86-64-posix dpkg-dev cmake ninja-build perl tcl make autoconf automake
  libtool libboost-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev)
ensure_host_packages() {
  local missing=() p
  for p in "${host_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  log "installing: ${missing[*]}"
  local sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# --- Debian sources --------------------------------------------------------------------------
deb_src_file=/etc/apt/sources.list.d/patchswarm-deb-src.sources
ensure_deb_src() {
  [ -f "$deb_src_file" ] && return 0
  log "adding deb-src entries for bookworm ($deb_src_file)"
  local sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd tee "$deb_src_file" >/dev/null <<'EOF'
# Written by patchswarm's scripts/build-windows.sh: Debian's source packages, from which the
# mingw-w64 dependency prefix is built (libsodium, sqlite3, openssl, libtorrent-rasterbar).
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  $sudo_cmd apt-get update -qq
}

src_dir=$cache_root/sources
# fetch_source PKG WANTED_VERSION -> prints the version whose .dsc is now in $src_dir
fetch_source() {
  local pkg=$1 want=$2 v
  if [ -f "$src_dir/${pkg}_${want#*:}.dsc" ]; then
    echo "$want"
    return 0
  fi
  mkdir -p "$src_dir"
  local candidates
  candidates=$(
    echo "$want"
    apt-cache showsrc "$pkg" | awk -v p="$pkg" '/^Package:/{ok=($2==p)} ok&&/^Version:/{print $2}' |
      sort -rV
  )
  for v in $candidates; do
    if (cd "$src_dir" && apt-get source -qq --download-only "$pkg=$v" >/dev/null 2>&1); then
      [ "$v" = "$want" ] || log "$pkg $want is not served; using $v"
      echo "$v"
      return 0
    fi
  done
  echo "build-windows.sh: cannot fetch any source version of $pkg" >&2
  return 1
}

# unpack PKG VERSION DEST: a fresh tree with Debian's patches applied
unpack() {
  local pkg=$1 ver=$2 dest=$3
  rm -rf "$dest"
  mkdir -p "$(dirname "$dest")"
  dpkg-source --no-check -x "$src_dir/${pkg}_${ver#*:}.dsc" "$dest" >/dev/null
}

# --- recipes (their text is part of the cache key) -------------------------------------------
build_libsodium() {
  cd "$work/libsodium"
  # Debian's orig tarball is the git tree: no configure script yet.
  "${nice_run[@]}" ./autogen.sh -s
  "${nice_run[@]}" ./configure --host=$triple CC="$CC_WIN" --prefix="$prefix" \
    --disable-shared --enable-static --disable-dependency-tracking
  "${nice_run[@]}" make -j"$PATCHSWARM_WIN_JOBS"
  make install
}

build_sqlite3() {
  # The amalgamation is generated on the host (tclsh, lemon), then compiled once for Windows.
  cd "$work/sqlite3"
  "${nice_run[@]}" ./configure --disable-tcl >/dev/null
  "${nice_run[@]}" make -j"$PATCHSWARM_WIN_JOBS" sqlite3.c
  "${nice_run[@]}" "$CC_WIN" -O2 -c sqlite3.c -o sqlite3.o \
    -DSQLITE_THREADSAFE=1 -DSQLITE_ENABLE_FTS5=0 -DSQLITE_DQS=0 -DSQLITE_OMIT_LOAD_EXTENSION
  ${triple}-ar rcs libsqlite3.a sqlite3.o
  install -D -m 644 libsqlite3.a "$prefix/lib/libsqlite3.a"
  install -D -m 644 sqlite3.h "$prefix/include/sqlite3.h"
  install -D -m 644 sqlite3ext.h "$prefix/include/sqlite3ext.h"
}

build_openssl() {
  cd "$work/openssl"
  # CROSS_COMPILE prefixes CC, AR, RANLIB and RC; asm stays on (SHA-NI / AES-NI).
  "${nice_run[@]}" ./Configure mingw64 --cross-compile-prefix=${triple}- CC=gcc-posix \
    --prefix="$prefix" --libdir=lib no-shared no-tests
  "${nice_run[@]}" make -j"$PATCHSWARM_WIN_JOBS" build_libs
  make install_dev
}

build_libtorrent() {
  cd "$work/libtorrent"
  PATCHSWARM_WIN_PREFIX=$prefix "${nice_run[@]}" cmake -S . -B build -G Ninja \
    -DCMAKE_TOOLCHAIN_FILE="$repo/cmake/mingw-w64.cmake" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_CXX_STANDARD=17 -DBUILD_SHARED_LIBS=OFF \
    -Dbuild_tests=OFF -Dbuild_examples=OFF -Dbuild_tools=OFF -Dpython-bindings=OFF \
    -Dencryption=ON -DOPENSSL_ROOT_DIR="$prefix" -DOPENSSL_USE_STATIC_LIBS=ON \
    -DBoost_NO_BOOST_CMAKE=ON -DBoost_INCLUDE_DIR="$prefix/include"
  PATCHSWARM_WIN_PREFIX=$prefix "${nice_run[@]}" ninja -C build -j"$PATCHSWARM_WIN_JOBS"
  ninja -C build install
}

# Header-only libraries: links into the prefix, so the cross compiler never searches the host's
# /usr/include (whose glibc headers would shadow mingw's).
link_headers() {
  mkdir -p "$prefix/include"
  local h
  for h in boost nlohmann CLI spdlog fmt; do
    ln -sfn "/usr/include/$h" "$prefix/include/$h"
  done
}

recipes=(build_libsodium build_sqlite3 build_openssl build_libtorrent link_headers)

# --- cache key -------------------------------------------------------------------------------
pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo none; }
key_inputs() {
  echo "libsodium=$v_sodium sqlite3=$v_sqlite openssl=$v_openssl libtorrent-rasterbar=$v_torrent"
  local p
  for p in libboost1.74-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev; do
    echo "$p=$(pkg_version "$p")"
  done
  "$CXX_WIN" --version | head -1
  cat "$repo/cmake/mingw-w64.cmake"
  declare -f "${recipes[@]}"
}

# The whole run is one function, read before it starts: editing this file while a long build
# runs (bash reads scripts as it goes) cannot change what the running build does.
main() {
  ((run_tests)) && host_packages+=(wine64)
  ensure_host_packages
  ensure_deb_src
  v_sodium=$(fetch_source libsodium "$PATCHSWARM_WIN_LIBSODIUM")
  v_sqlite=$(fetch_source sqlite3 "$PATCHSWARM_WIN_SQLITE3")
  v_openssl=$(fetch_source openssl "$PATCHSWARM_WIN_OPENSSL")
  v_torrent=$(fetch_source libtorrent-rasterbar "$PATCHSWARM_WIN_LIBTORRENT")
  key=$(key_inputs | sha256sum | cut -c1-16)
  dir=$cache_root/$key
  prefix=$dir/prefix
  work=$dir/work
  if ((print_key)); then
    echo "$dir"
    exit 0
  fi

  mkdir -p "$dir/logs" "$dir/stamps"
  key_inputs >"$dir/inputs.txt"
  head -1 "$dir/inputs.txt" | tr ' ' '\n' >"$dir/versions.txt"
  link_headers

  # build_dep NAME DEBIAN_PACKAGE VERSION: unpack and build once per key, timing it
  build_dep() {
    local name=$1 pkg=$2 ver=$3
    if [ -f "$dir/stamps/$name" ]; then
      log "$name $ver: cached ($dir)"
      return 0
    fi
    log "$name $ver: building (log: $dir/logs/$name.log)"
    unpack "$pkg" "$ver" "$work/$name"
    local start=$SECONDS t0 t1
    t0=$(awk '{print $14+$15+$16+$17}' /proc/$$/stat)
    local rc=0
    # errexit holds inside the recipe only outside an `if`/`||` context, hence the rc dance.
    set +e
    (
      set -ex
      "build_$name"
    ) >"$dir/logs/$name.log" 2>&1
    rc=$?
    set -e
    if ((rc != 0)); then
      tail -30 "$dir/logs/$name.log" >&2
      echo "build-windows.sh: $name failed; full log: $dir/logs/$name.log" >&2
      return 1
    fi
    # CPU time of the finished children (utime+stime+cutime+cstime of this shell, in ticks).
    t1=$(awk '{print $14+$15+$16+$17}' /proc/$$/stat)
    local cpu=$(((t1 - t0) / $(getconf CLK_TCK)))
    printf '%-11s %-22s wall %5d s  cpu %5d s  jobs %s  (%s)\n' "$name" "$ver" \
      $((SECONDS - start)) "$cpu" "$PATCHSWARM_WIN_JOBS" "$(date -u +%FT%TZ)" >>"$dir/timings.txt"
    rm -rf "$work/$name"
    touch "$dir/stamps/$name"
  }

  build_dep libsodium libsodium "$v_sodium"
  build_dep sqlite3 sqlite3 "$v_sqlite"
  build_dep openssl openssl "$v_openssl"
  build_dep libtorrent libtorrent-rasterbar "$v_torrent"
  log "dependency prefix: $prefix"
  [ -f "$dir/timings.txt" ] && cat "$dir/timings.txt" >&2

  ((deps_only)) && exit 0

  # --- the project -----------------------------------------------------------------------------
  log "building the project (build-win/)"
  export PATCHSWARM_WIN_PREFIX=$prefix
  "${nice_run[@]}" cmake -S "$repo" -B "$repo/build-win" -G Ninja \
    -DCMAKE_TOOLCHAIN_FILE="$repo/cmake/mingw-w64.cmake" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
  "${nice_run[@]}" ninja -C "$repo/build-win" -j"$PATCHSWARM_WIN_JOBS"
  log "done: $repo/build-win"
  if ((run_tests)); then
    log "running the Windows tests under Wine"
    # A private Wine prefix, so the tests never depend on (or change) the user's ~/.wine.
    export WINEPREFIX=${WINEPREFIX:-$repo/build-win/wineprefix} WINEDEBUG=-all
    ctest --test-dir "$repo/build-win" -L windows --output-on-failure
  fi
}

main "$@"; exit $?
