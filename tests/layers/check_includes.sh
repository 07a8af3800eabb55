#!/usr/bin/env bash
# The layer rule (docs/ARCHITECTURE.md), checked on the sources under ROOT:
#   base/    the C++ standard library only
#   crypto/  the standard library, base/ and <sodium.h>
#   core/    the standard library, base/, crypto/, core/ and <nlohmann/json.hpp> (a parser: no
#            I/O, no clock, no global state)
# A standard header is <name> with no '.' and no '/' (so <unistd.h>, <boost/...> and every
# project folder but the allowed ones are refused). Exit 1 and one line per violation otherwise.
# Usage: check_includes.sh ROOT
set -euo pipefail
root=${1:?usage: check_includes.sh ROOT}
status=0

check() {  # check LAYER ALLOWED_QUOTED_REGEX ALLOWED_ANGLE_REGEX
  local layer=$1 quoted=$2 angle=$3 file line inc
  [ -d "$root/$layer" ] || { echo "no folder $root/$layer"; status=1; return; }
  while IFS= read -r -d '' file; do
    while IFS= read -r line; do
      inc=${line#*#include}
      inc=${inc#"${inc%%[![:space:]]*}"}
      case $inc in
        \"*) [[ $inc =~ ^\"($quoted)/[a-z0-9_/]+\.hpp\"$ ]] && continue ;;
        \<*) [[ $inc =~ ^\<[a-z_0-9]+\>$ || $inc =~ ^\<($angle)\>$ ]] && continue ;;
      esac
      echo "${file#"$root"/}: $layer/ may not include $inc"
      status=1
    done < <(grep -E '^[[:space:]]*#[[:space:]]*include' "$file" || true)
  done < <(find "$root/$layer" -type f \( -name '*.hpp' -o -name '*.cpp' -o -name '*.h' \) -print0)
}

check base 'base' '__none__'
check crypto 'base|crypto' 'sodium\.h'
check core 'base|crypto|core' 'nlohmann/json\.hpp'
[ "$status" = 0 ] && echo "layers: base/, crypto/ and core/ include only what they may"
exit "$status"
