#!/usr/bin/env bash
# The fleet report's states, staged for real on loopback: one seeder and six desktops driven into
# effective, "gave up after 1 attempt", "retry 2 of 3 at T", "offline, last known effective",
# "offline, not patched", "deferred until T"; then a second release whose copy at HQ is damaged
# after publishing, which every view names. Ends with the text status, the "to do" commands, and
# a dashboard screenshot (if chromium is installed). Every process it starts is stopped on exit.
#
# Knobs (environment): STATES_DIR (/tmp/patchswarm-states), STATES_SCREENSHOT_DIR (STATES_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh patchswarm-seeder patchswarmd

work=${STATES_DIR:-/tmp/patchswarm-states}
shots=${STATES_SCREENSHOT_DIR:-$work}
. scripts/demo-lib.sh
hq=127.91.0.1
url="http://$hq:8080"
id=MS26-0200
n=6

rm -rf "$work" && mkdir -p "$work" "$shots"
echo "== states demo folder: $work (logs: $work/*.log)"
demo_repo "$work"
(umask 077 && "$seeder" token create --repo "$work/repo" --uses "$n" --label states-demo \
  >"$work/enrol.token" 2>/dev/null)
mkdir -p "$work/patch"
head -c $((1 << 20)) /dev/urandom >"$work/patch/patch.bin"
# Fails (with the kind of output real installers print) where the state folder says so.
cat >"$work/patch/install.sh" <<'SH'
#!/bin/sh
if [ -e "$PATCHSWARM_STATE_DIR/fail-install" ]; then
  printf '\033[31merror:\033[0m cannot write %s/releases/x: disk full  \n\n' "$PATCHSWARM_STATE_DIR"
  exit 5
fi
exit 0
SH
chmod +x "$work/patch/install.sh"

# The office group's maintenance window is twelve hours away: its desktops wait for it.
hour=$(date -u -d "+12 hours" +%H)
cat >"$work/policy.json" <<JSON
{"windows": [{"group": "office", "days": ["mon","tue","wed","thu","fri","sat","sun"],
              "start": "$hour:00", "end": "$hour:59", "tz": "UTC"}]}
JSON
echo "== HQ: publishing $id, severity emergency, no --deadline (the policy's 24 h applies)"
"$seeder" publish --repo "$work/repo" --key "$work/keys/release.key" --id "$id" \
  --payload "$work/patch" --install ./install.sh --severity emergency --reboot none \
  --rollout "$work/policy.json"

"$seeder" serve --repo "$work/repo" --http "$hq:8080" --bt "$hq:6881" --stale-after 6 \
  >"$work/seeder.log" 2>&1 &
pids+=($!)
demo_wait_port "$hq" 8080

agent_pids=()
start_desk() {  # start_desk I EXTRA...
  local i=$1 ep="$work/desk-$1"
  shift
  mkdir -p "$ep"
  "$agent" run --state-dir "$ep" --seeder "$url" --trust "$work/repo/root/1.json" \
    --bt "127.91.0.$((i + 1)):6881" --name "desk-$i" --heartbeat 2 \
    --enroll-token-file "$work/enrol.token" "$@" >"$work/desk-$i.log" 2>&1 &
  pids+=($!)
  agent_pids[$i]=$!
}
mkdir -p "$work/desk-2" "$work/desk-3"
touch "$work/desk-2/fail-install" "$work/desk-3/fail-install"
start_desk 1                                      # effective
start_desk 2 --max-attempts 1                     # gives up
start_desk 3 --max-attempts 3 --backoff 3600      # retries in an hour
start_desk 4                                      # effective, then switched off
start_desk 5 --group office                       # deferred, then switched off
start_desk 6 --group office                       # deferred by its user

state_of() { "$agent" status --state-dir "$work/desk-$1" --json 2>/dev/null |
  python3 -c "import json,sys; r=[x for x in json.load(sys.stdin)['releases'] if x['id']=='$id']; print(r[0]['state'] if r else '')"; }
wait_for() {  # wait_for WHAT SECONDS CONDITION...
  local what=$1 limit=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@"; do
    ((SECONDS < deadline)) || { echo "timed out waiting for $what" >&2; return 1; }
    sleep 0.5
  done
}
deferred() { "$agent" defer "$id" --until +3650d --state-dir "$work/desk-$1" 2>/dev/null; }
echo "== desk-5 and desk-6 defer for ten years (clamped to the deadline)"
is() { [ "$(state_of "$1")" = "$2" ]; }
wait_for "desk-5 waiting" 60 is 5 waiting
wait_for "desk-6 waiting" 60 is 6 waiting
deferred 5 >/dev/null
"$agent" defer "$id" --until +3650d --state-dir "$work/desk-6"
wait_for "desk-1 effective" 60 is 1 effective
wait_for "desk-4 effective" 60 is 4 effective
wait_for "desk-2 failed" 60 is 2 failed
wait_for "desk-3 failed" 60 is 3 failed
echo "== desk-4 and desk-5 switched off"
kill "${agent_pids[4]}" "${agent_pids[5]}"
sleep 8 # --stale-after 6: both are offline now

echo "== HQ: a second release, whose copy at HQ is damaged after publishing (serve stopped)"
kill "${pids[0]}"
wait "${pids[0]}" 2>/dev/null || true
mkdir -p "$work/patch2"
head -c $((2 << 20)) /dev/urandom >"$work/patch2/patch.bin"
cp "$work/patch/install.sh" "$work/patch2/"
"$seeder" publish --repo "$work/repo" --key "$work/keys/release.key" --id MS26-0201 \
  --payload "$work/patch2" --install ./install.sh --severity critical --reboot none >/dev/null
# One byte flipped in HQ's copy before serve first checks it: no source has that piece.
printf 'X' | dd of="$work/repo/releases/MS26-0201/payload/patch2/patch.bin" bs=1 \
  seek=$(((2 << 20) - 10)) conv=notrunc 2>/dev/null
"$seeder" serve --repo "$work/repo" --http "$hq:8080" --bt "$hq:6881" --stale-after 6 \
  >>"$work/seeder.log" 2>&1 &
pids[0]=$!
demo_wait_port "$hq" 8080
damaged() { "$seeder" status --repo "$work/repo" --json |
  python3 -c "import json,sys; r=[x for x in json.load(sys.stdin)['releases'] if x['id']=='MS26-0201'][0]; sys.exit(0 if r['waiting_for_missing_pieces']>0 else 1)"; }
wait_for "endpoints stuck on HQ's damaged copy" 90 damaged || true

echo
echo "== the fleet report"
"$seeder" status --repo "$work/repo"
echo "== CSV (state column)"
"$seeder" status --repo "$work/repo" --csv | cut -d, -f1,3,7
echo "== /metrics (endpoints per state)"
curl -s "$url/metrics" | grep -E '^patchswarm_endpoints\{release="MS26-0200"|seed_damaged' || true
if command -v chromium >/dev/null; then
  timeout 90 chromium --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --no-first-run --user-data-dir="$work/chromium-profile" --hide-scrollbars \
    --window-size=1280,2400 --virtual-time-budget=6000 --screenshot="$shots/dashboard-states.png" \
    "$url/" >/dev/null 2>&1 && echo "   screenshot: $shots/dashboard-states.png"
fi
