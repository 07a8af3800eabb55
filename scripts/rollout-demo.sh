#!/usr/bin/env bash
# A staged emergency rollout on loopback, driven from the CLI as an IT admin would: a signed
# rollout policy (canary ring, then sales, then everyone else), a finance group whose
# maintenance window is closed, a user who defers, and a deadline that ends both. The demo shows
# the fleet status as it goes, takes dashboard screenshots with headless Chromium, exports the
# CSV compliance report, and checks every "effective" in it against the endpoint itself (state
# effective, install marker written, boot id changed after the install).
#
# 12 desktops on 127.90.0.2-13, HQ on 127.90.0.1. Every process it starts is stopped on exit.
# Knobs (environment): ROLLOUT_DIR (/tmp/patchswarm-rollout), ROLLOUT_DEADLINE_S (90),
# ROLLOUT_SCREENSHOT_DIR (where the PNGs are copied; default: ROLLOUT_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh patchswarm-seeder patchswarmd

work=${ROLLOUT_DIR:-/tmp/patchswarm-rollout}
deadline_s=${ROLLOUT_DEADLINE_S:-90}
shots=${ROLLOUT_SCREENSHOT_DIR:-$work}
# shellcheck source=scripts/demo-lib.sh
. scripts/demo-lib.sh
hq=127.90.0.1
url="http://$hq:8080"
id=MS26-0142
n=12

group_of() {  # desk-1,2: it (canaries); desk-3..6: finance (window closed); the rest: sales
  if (($1 <= 2)); then echo it; elif (($1 <= 6)); then echo finance; else echo sales; fi
}

rm -rf "$work" && mkdir -p "$work" "$shots"
echo "== rollout demo folder: $work (logs: $work/*.log)"

echo "== HQ: keys, root document, a 4 MiB emergency patch that needs a reboot"
demo_repo "$work"
(umask 077 && "$seeder" token create --repo "$work/repo" --uses "$n" --label rollout-demo \
  >"$work/enrol.token" 2>/dev/null)
mkdir -p "$work/KB5031356"
head -c $((4 << 20)) /dev/urandom >"$work/KB5031356/patch.bin"
cat >"$work/KB5031356/install.sh" <<'SH'
#!/bin/sh
echo "installed $PATCHSWARM_RELEASE_ID at $(date +%s)" >"$PATCHSWARM_STATE_DIR/installed.marker"
SH
chmod +x "$work/KB5031356/install.sh"

# The finance window: one hour, twelve hours from now in Europe/Berlin, so closed for the demo.
hour=$(TZ=Europe/Berlin date -d "+12 hours" +%H)
cat >"$work/rollout.json" <<JSON
{"emergency": {
   "rings": [
     {"name": "canary", "groups": ["it"], "success_threshold": 1, "soak_s": 5,
      "max_failure_rate": 0.2},
     {"name": "sales", "groups": ["sales"], "success_threshold": 0.8, "soak_s": 5,
      "max_failure_rate": 0.2}],
   "windows": [
     {"group": "finance", "days": ["mon","tue","wed","thu","fri","sat","sun"],
      "start": "$hour:00", "end": "$hour:59", "tz": "Europe/Berlin"}]},
 "default": {"rings": []}}
JSON
echo "== HQ: the rollout policy (signed into the manifest)"
cat "$work/rollout.json"

echo "== HQ: publishing $id, severity emergency, deadline in ${deadline_s}s"
t_publish=$(date +%s)
"$seeder" publish --repo "$work/repo" --key "$work/keys/release.key" --id "$id" \
  --payload "$work/KB5031356" --install ./install.sh --severity emergency --reboot required \
  --rollout "$work/rollout.json" --deadline "+${deadline_s}s" >/dev/null

"$seeder" serve --repo "$work/repo" --http "$hq:8080" --bt "$hq:6881" --stale-after 30 \
  --site office=127.90.0.0/24 \
  >"$work/seeder.log" 2>&1 &
pids+=($!)
demo_wait_port "$hq" "8080"

echo "== $n desktops (it: 1-2, finance: 3-6, sales: 7-12); the reboot command changes the boot id"
for i in $(seq 1 "$n"); do
  ep="$work/desk-$i"
  mkdir -p "$ep"
  echo "boot-1" >"$ep/boot_id"
  # A stand-in for `systemctl reboot`: a new boot id is what the endpoint checks after a reboot.
  printf '#!/bin/sh\necho "boot-2-$(date +%%s)" > "%s"\n' "$ep/boot_id" >"$ep/reboot.sh"
  chmod +x "$ep/reboot.sh"
  "$agent" run --state-dir "$ep" --seeder "$url" --trust "$work/repo/root/1.json" \
    --bt "127.90.0.$((i + 1)):6881" --name "desk-$i" --boot-id-file "$ep/boot_id" \
    --group "$(group_of "$i")" --reboot-command "$ep/reboot.sh" --heartbeat 2 \
    --enroll-token-file "$work/enrol.token" \
    >"$work/desk-$i.log" 2>&1 &
  pids+=($!)
done

# desk-12's user defers the install for a day: the deadline overrides that.
for _ in $(seq 100); do
  "$agent" defer "$id" --until +1d --state-dir "$work/desk-12" >/dev/null 2>&1 && break
  sleep 0.2
done

status_json() { "$seeder" status --repo "$work/repo" --json; }
count() {  # endpoints of the release in state $1 (from the seeder's view)
  status_json | python3 -c "import json,sys; r=json.load(sys.stdin)['releases'][0]; print(r['counts'].get('$1',0))"
}

screenshot() {  # screenshot NAME: the dashboard as a browser shows it now
  command -v chromium >/dev/null || return 0
  local out="$shots/dashboard-$1.png"
  timeout 90 chromium --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --no-first-run --user-data-dir="$work/chromium-profile" --hide-scrollbars \
    --window-size=1280,1000 --virtual-time-budget=6000 --screenshot="$out" "$url/" \
    >/dev/null 2>&1 && echo "   screenshot: $out"
}

wait_for() {  # wait_for DESCRIPTION SECONDS CONDITION...: poll until the condition holds
  local what=$1 limit=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@"; do
    if ((SECONDS >= deadline)); then
      echo "timed out waiting for $what (see $work/*.log)" >&2
      "$seeder" status --repo "$work/repo" >&2 || true
      return 1
    fi
    kill -0 "${pids[0]}" 2>/dev/null || { echo "the seeder stopped" >&2; return 1; }
    sleep 1
  done
}
why_contains() {  # why_contains HOST TEXT: the seeder's "why" for HOST mentions TEXT
  status_json | python3 -c "
import json, sys
r = json.load(sys.stdin)['releases'][0]
sys.exit(0 if any(e['hostname'] == '$1' and '$2' in e.get('why', '') for e in r['not_effective']) else 1)"
}
effective_at_least() { (($(count effective) >= $1)); }
all_effective() { (($(count effective) == n)); }

echo
echo "== canaries first: waiting for the it ring"
wait_for "the canaries" 60 effective_at_least 2
"$seeder" status --repo "$work/repo"
echo
echo "== sales opens after the canaries' soak (80 % of it suffices: desk-12 deferred), then"
echo "   everyone else; finance waits for its window"
wait_for "sales" $((deadline_s - 10)) effective_at_least 7
"$seeder" status --repo "$work/repo"
echo
echo "== everyone else is open now: finance waits for its window until the deadline"
wait_for "finance to report its window" 30 why_contains desk-3 "maintenance window"
"$seeder" status --repo "$work/repo"
screenshot staged
echo
echo "== the deadline ($deadline_s s after publish) overrides window and deferral"
wait_for "the whole fleet" $((deadline_s + 90)) all_effective
t_done=$(date +%s)
echo
echo "== final status ($((t_done - t_publish)) s after publish)"
"$seeder" status --repo "$work/repo"
screenshot final

echo
echo "== compliance report: $work/report.csv"
"$seeder" status --repo "$work/repo" --csv >"$work/report.csv"
head -n 4 "$work/report.csv"
echo "..."

# Every "effective" row must be true on the endpoint itself.
python3 - "$work" "$id" "$agent" <<'PY'
import csv, json, os, subprocess, sys
work, rid, agent = sys.argv[1:4]
rows = [r for r in csv.DictReader(open(os.path.join(work, "report.csv"))) if r["release"] == rid]
checked = 0
for r in rows:
    if r["state"] != "effective":
        continue
    ep = os.path.join(work, r["hostname"])
    local = json.loads(subprocess.run([agent, "status", "--state-dir", ep, "--json"],
                                      capture_output=True, text=True, check=True).stdout)
    rel = next(x for x in local["releases"] if x["id"] == rid)
    marker = open(os.path.join(ep, "installed.marker")).read().split()
    boot = open(os.path.join(ep, "boot_id")).read().strip()
    assert rel["state"] == "effective", (r["hostname"], rel["state"])
    assert marker[:2] == ["installed", rid], marker
    assert boot.startswith("boot-2-") and int(boot.split("-")[2]) >= int(marker[3]), (boot, marker)
    checked += 1
print(f"verified {checked} of {len(rows)} rows marked effective against the endpoints "
      "(state effective, installed, rebooted after the install)")
sys.exit(0 if checked == len(rows) else 1)
PY
