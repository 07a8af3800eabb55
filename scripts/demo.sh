#!/usr/bin/env bash
# The patchswarm demo: installs dependencies if missing, builds, then runs a seeder and 8
# endpoints on loopback (127.0.0.1 = HQ, 127.0.0.2-9 = desktops), publishes an emergency patch,
# shows the fleet converge live, and ends with the fleet status table. Every process it starts is
# stopped on exit, also on failure or Ctrl-C.
#
# Knobs (environment): DEMO_ENDPOINTS (8), DEMO_PAYLOAD_MB (32), DEMO_HTTP_PORT (8080),
# DEMO_BT_PORT (6881), DEMO_DIR (/tmp/patchswarm-demo).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh patchswarm-seeder patchswarmd

n=${DEMO_ENDPOINTS:-8}
mb=${DEMO_PAYLOAD_MB:-32}
http_port=${DEMO_HTTP_PORT:-8080}
bt_port=${DEMO_BT_PORT:-6881}
work=${DEMO_DIR:-/tmp/patchswarm-demo}
# shellcheck source=scripts/demo-lib.sh
. scripts/demo-lib.sh
url="http://127.0.0.1:$http_port"

rm -rf "$work" && mkdir -p "$work"
echo "== demo folder: $work (logs: $work/*.log)"

echo "== HQ: root and release keys, the root document, a sample emergency patch ($mb MiB)"
demo_repo "$work"
mkdir -p "$work/KB958644"
head -c "$((mb * 1024 * 1024))" /dev/urandom >"$work/KB958644/patch.bin"
cat >"$work/KB958644/install.sh" <<'SH'
#!/bin/sh
# Sample install: records that the patch was applied and asks for a reboot.
echo "KB958644 installed at $(date -u +%FT%TZ)" >"$PATCHSWARM_STATE_DIR/KB958644.marker"
exit 0
SH

echo "== HQ: an enrolment token (root init made the fleet CA: only enrolled desktops join)"
# In a file (0600), not on the command line where any local user could read it.
(umask 077 && "$seeder" token create --repo "$work/repo" --uses "$n" --label demo \
  >"$work/enrol.token" 2>/dev/null)

echo "== HQ: publishing MS08-067 (severity emergency, reboot required)"
start=$(date +%s.%N)
"$seeder" publish --repo "$work/repo" --key "$work/keys/release.key" --id MS08-067 \
  --payload "$work/KB958644" --install "./install.sh" --severity emergency --reboot required

echo "== HQ: starting the seeder on $url"
"$seeder" serve --repo "$work/repo" --http "127.0.0.1:$http_port" --bt "127.0.0.1:$bt_port" \
  >"$work/seeder.log" 2>&1 &
pids+=($!)
demo_wait_port "127.0.0.1" "$http_port"

echo "== $n desktops: starting patchswarmd on 127.0.0.2-$((n + 1))"
for i in $(seq 1 "$n"); do
  ep="$work/desk-$i"
  mkdir -p "$ep"
  echo "boot-1" >"$ep/boot_id"
  "$agent" run --state-dir "$ep" --seeder "$url" --trust "$work/repo/root/1.json" \
    --bt "127.0.0.$((i + 1)):$bt_port" --name "desk-$i" --boot-id-file "$ep/boot_id" \
    --heartbeat 2 --enroll-token-file "$work/enrol.token" >"$work/desk-$i.log" 2>&1 &
  pids+=($!)
done

count_state() {  # how many desktops show state $1 for MS08-067
  local c=0
  for i in $(seq 1 "$n"); do
    "$agent" status --state-dir "$work/desk-$i" 2>/dev/null | grep -q "^MS08-067 *$1 " && c=$((c + 1))
  done
  echo "$c"
}

watch_until() {  # redraw the fleet view until $n desktops are in state $1 (or 300 s)
  local deadline=$((SECONDS + 300))
  while ((SECONDS < deadline)); do
    if ! kill -0 "${pids[0]}" 2>/dev/null; then
      echo "the seeder stopped: $(tail -n 3 "$work/seeder.log")" >&2
      return 1
    fi
    [ -t 1 ] && printf '\033[H\033[2J'
    echo "== fleet (live), waiting for $n x $1"
    "$seeder" status --repo "$work/repo" || true
    [ "$(count_state "$1")" = "$n" ] && return 0
    sleep 1
  done
  echo "timed out waiting for $1 (see $work/*.log)" >&2
  return 1
}

watch_until reboot_pending
t_installed=$(date +%s.%N)
echo "== every desktop installed the patch; it is NOT in effect until they reboot"
echo "== rebooting the desktops (the demo changes each one's boot id)"
for i in $(seq 1 "$n"); do echo "boot-2" >"$work/desk-$i/boot_id"; done
watch_until effective
t_effective=$(date +%s.%N)
# The desktops know at once (they watch their boot id); the seeder knows when their reports
# arrive, a moment later: wait for that (30 s at most) so the final view is not stale.
deadline=$((SECONDS + 30))
until "$seeder" status --repo "$work/repo" --json 2>/dev/null | grep -q "\"effective\":$n[,}]" ||
  ((SECONDS >= deadline)); do
  sleep 0.2
done

echo
echo "== final fleet status"
"$seeder" status --repo "$work/repo"
peers=0
hq=0
for i in $(seq 1 "$n"); do
  line=$("$agent" status --state-dir "$work/desk-$i" --json)
  p=$(grep -o '"bytes_from_peers":[0-9]*' <<<"$line" | head -1 | cut -d: -f2)
  s=$(grep -o '"bytes_from_seeder":[0-9]*' <<<"$line" | head -1 | cut -d: -f2)
  peers=$((peers + p))
  hq=$((hq + s))
done
total=$((peers + hq))
echo
printf 'payload bytes received by %d desktops: %d MiB from peers, %d MiB from the seeder (%d%% from peers)\n' \
  "$n" $((peers / 1048576)) $((hq / 1048576)) $((total > 0 ? peers * 100 / total : 0))
awk -v a="$start" -v b="$t_installed" -v c="$t_effective" \
  'BEGIN { printf "publish -> all installed: %.1f s; -> all effective (after reboot): %.1f s\n", b - a, c - a }'
