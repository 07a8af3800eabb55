#!/usr/bin/env bash
# Control-plane benchmark (issue 12, "Measure"): one real `patchswarm-seeder serve` on loopback
# and the fleet simulator (bench/fleetsim, patchswarm-fleetsim) playing N endpoints against it,
# for each N of --sizes:
#   enrolment   N devices enrol with one token: enrolments per second
#   publish     a real `publish` -> every endpoint holds the new feed: p50 / p99 / max
#   storm       every endpoint sends --storm-states as signed state changes within
#               --storm-spread s: reports accepted per second, failed, lost (fleet.db compared
#               with what got 200), a GET /v1/feed probe's latency during the storm
#   restart     serve stopped and started again: time until every endpoint had a feed answer
#               and a report accepted (heartbeats every --heartbeat s)
#   hold        --hold s of steady state: the seeder's CPU seconds per 1,000 endpoints per
#               minute, and its RSS
#   nginx       nginx (Debian) serving a static copy of the feed to N held keep-alive
#               connections, one process, the same hold, then one GET on all at once
# One JSON line per N goes to bench/results/fleet-<time>.jsonl; a table is printed at the end.
#
# Usage: bench/fleet.sh [options]      (see --help)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT_DIR=$(cd "$BENCH_DIR/.." && pwd)

fleet_help() {
    cat <<'EOF'
Usage: bench/fleet.sh [options]

  --sizes LIST         endpoint counts, comma-separated (default 1000,5000,10000,20000)
  --phases LIST        simulator phases after set-up (default publish,storm,restart,hold)
  --storm-spread S     storm: every endpoint starts its state changes within S s (default 60)
  --storm-states LIST  storm: states each endpoint reports (default
                       verified,waiting,installing,effective: 4 signed reports each)
  --hold S             steady-state seconds for CPU and RSS, also nginx's hold (default 60)
  --heartbeat S        simulated endpoints' heartbeat (default 60, the agent's default)
  --phase-timeout S    give up on a phase after S s (default 180)
  --no-nginx           skip the nginx comparison
  --port P             seeder HTTP port on 127.0.0.1 (default 28180; BitTorrent P+1, nginx P+2)
  --bin-dir DIR        build folder (default build/)
  --out DIR            where fleet-<time>.jsonl goes (default bench/results)
  --keep               keep each run's folder (repository, logs, per-endpoint JSON lines)
  --no-setup           do not install packages or build (they must be there)
  -h, --help           this text

Simulated endpoints bind 127.10.0.1 onwards, the probe 127.9.255.254. Sizes above 4,096 need
a seeder with `serve --max-connections` (passed when `serve --help` lists it); without it the
run goes on and the JSON says how many endpoints were held and told. Needs root for open-file
limits above the hard limit (raised to 4 x N + 8192, at most fs.nr_open). Installs nginx-light,
curl and jq if missing and builds patchswarm-seeder and patchswarm-fleetsim, unless --no-setup.
The machine should be quiet: the simulator and the seeder share its cores.
Exit codes: 0 every run completed; 1 a run failed or a phase timed out (its JSON says so);
2 usage or environment error.
EOF
}

F_SIZES=1000,5000,10000,20000
F_PHASES=publish,storm,restart,hold
F_SPREAD=60
F_STATES=verified,waiting,installing,effective
F_HOLD=60
F_HEARTBEAT=60
F_TIMEOUT=180
F_NGINX=1
F_PORT=28180
F_BIN=$ROOT_DIR/build
F_OUT=$BENCH_DIR/results
F_KEEP=0
F_SETUP=1

die() {
    echo "fleet.sh: $*" >&2
    exit 2
}
log() { echo "fleet.sh: $*" >&2; }

while (($#)); do
    case $1 in
    --sizes) F_SIZES=${2:?}; shift 2 ;;
    --phases) F_PHASES=${2:?}; shift 2 ;;
    --storm-spread) F_SPREAD=${2:?}; shift 2 ;;
    --storm-states) F_STATES=${2:?}; shift 2 ;;
    --hold) F_HOLD=${2:?}; shift 2 ;;
    --heartbeat) F_HEARTBEAT=${2:?}; shift 2 ;;
    --phase-timeout) F_TIMEOUT=${2:?}; shift 2 ;;
    --no-nginx) F_NGINX=0; shift ;;
    --port) F_PORT=${2:?}; shift 2 ;;
    --bin-dir) F_BIN=$(cd "${2:?}" && pwd); shift 2 ;;
    --out) F_OUT=${2:?}; shift 2 ;;
    --keep) F_KEEP=1; shift ;;
    --no-setup) F_SETUP=0; shift ;;
    -h | --help) fleet_help; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
    esac
done
[[ $F_SIZES =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--sizes must be comma-separated numbers"
for n in $F_HOLD $F_SPREAD $F_HEARTBEAT $F_TIMEOUT $F_PORT; do
    [[ $n =~ ^[0-9]+$ ]] || die "'$n' is not a number"
done

if ((F_SETUP)); then
    PATCHSWARM_EXTRA_PACKAGES="nginx-light curl jq" \
        "$ROOT_DIR/scripts/setup.sh" patchswarm-seeder patchswarm-fleetsim >&2
fi
SEEDER=$F_BIN/seeder/patchswarm-seeder
FLEETSIM=$F_BIN/bench/fleetsim/patchswarm-fleetsim
[[ -x $SEEDER && -x $FLEETSIM ]] || die "no patchswarm-seeder / patchswarm-fleetsim in $F_BIN"
for t in curl jq; do command -v $t >/dev/null || die "$t is missing (run without --no-setup)"; done
NGINX=$(command -v nginx || true)
[[ -n $NGINX || $F_NGINX == 0 ]] || die "nginx is missing (run without --no-setup, or --no-nginx)"

mkdir -p "$F_OUT"
STAMP=$(date -u +%Y%m%d-%H%M%S)
RESULTS=$F_OUT/fleet-$STAMP.jsonl
COMMIT=$(git -C "$ROOT_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)
HAS_MAX_CONN=0
"$SEEDER" serve --help 2>&1 | grep -q -- '--max-connections ' && HAS_MAX_CONN=1
STATUS=0
WORK=""
cleanup() {
    local f
    for f in "$WORK"/seeder.pid "$WORK"/nginx.pid; do
        [[ -n $WORK && -s $f ]] && kill "$(cat "$f")" 2>/dev/null || true
    done
    [[ -n $WORK && $F_KEEP == 0 ]] && rm -rf "$WORK"
    return 0
}
trap cleanup EXIT

wait_http() { # URL SECONDS
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        curl -sf -o /dev/null --max-time 2 "$1" && return 0
        sleep 0.1 # polling a port that is not up yet
    done
    return 1
}

run_size() { # N
    local n=$1 lim cur
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/ps-fleet-$n-XXXXXX")
    log "N=$n in $WORK"
    lim=$((4 * n + 8192))
    cur=$(ulimit -n)
    if ((cur < lim)); then
        ulimit -Hn "$lim" 2>/dev/null || true
        ulimit -n "$lim" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    fi
    local S=$SEEDER W=$WORK
    "$S" keygen --out "$W/keys/root1" >/dev/null 2>&1
    "$S" keygen --out "$W/keys/release1" >/dev/null 2>&1
    "$S" root init --repo "$W/repo" --root-pub "$W/keys/root1.pub" --root-threshold 1 \
        --release-pub "$W/keys/release1.pub" --release-threshold 1 \
        --key "$W/keys/root1.key" >/dev/null 2>&1
    "$S" token create --repo "$W/repo" --uses "$n" --label fleet-bench 2>/dev/null |
        grep '^pst_' >"$W/token"
    mkdir -p "$W/payload"
    printf '#!/bin/sh\nexit 0\n' >"$W/payload/install.sh"
    chmod +x "$W/payload/install.sh"

    local serve_args=(serve --repo "$W/repo" --http "127.0.0.1:$F_PORT" --bt "127.0.0.1:$((F_PORT + 1))"
        --log-level warn)
    ((HAS_MAX_CONN)) && serve_args+=(--max-connections "$((n + 2048))")
    # The hook the simulator runs at each phase: publish a release, or restart serve.
    {
        echo '#!/usr/bin/env bash'
        echo 'set -euo pipefail'
        printf 'W=%q\nS=%q\nURL=%q\n' "$W" "$S" "http://127.0.0.1:$F_PORT/healthz"
        printf 'ARGS=(%s)\n' "$(printf '%q ' "${serve_args[@]}")"
        printf 'ulimit -n %q\n' "$(ulimit -n)"
        cat <<'EOF'
start() {
    "$S" "${ARGS[@]}" >>"$W/seeder.log" 2>&1 &
    echo $! >"$W/seeder.pid"
    for ((i = 0; i < 600; i++)); do
        curl -sf -o /dev/null --max-time 2 "$URL" && return 0
        sleep 0.1 # serve is starting
    done
    echo "serve did not come up" >&2; return 1
}
case $1 in
start) start ;;
publish)
    k=$(( $(cat "$W/published" 2>/dev/null || echo 0) + 1 )); echo $k >"$W/published"
    "$S" publish --repo "$W/repo" --key "$W/keys/release1.key" --id "BENCH-$k" \
        --payload "$W/payload" --install ./install.sh >/dev/null ;;
restart)
    pid=$(cat "$W/seeder.pid"); kill "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done # waiting for serve to exit
    start ;;
esac
EOF
    } >"$W/hook"
    chmod +x "$W/hook"
    "$W/hook" start || { log "serve did not start (see $W/seeder.log)"; return 1; }
    # The static file nginx serves: the signed feed as the seeder serves it (again after the run,
    # when it lists the releases published; this one stays if the seeder no longer answers).
    curl -sf --max-time 10 "http://127.0.0.1:$F_PORT/v1/feed" >"$W/feed.json" || true

    local phases=() p
    IFS=, read -ra phases <<<"$F_PHASES"
    for p in "${!phases[@]}"; do [[ ${phases[$p]} == hold ]] && phases[$p]="hold:$F_HOLD"; done
    local rc=0
    local t0 t1
    "$FLEETSIM" --seeder "http://127.0.0.1:$F_PORT" --trust "$W/repo/root/1.json" -n "$n" \
        --token-file "$W/token" --hook "$W/hook" --phase "${phases[@]}" \
        --storm-spread "$F_SPREAD" --storm-states "$F_STATES" --heartbeat "$F_HEARTBEAT" \
        --phase-timeout "$F_TIMEOUT" --seeder-pid-file "$W/seeder.pid" \
        --fleet-db "$W/repo/fleet.db" --out "$W/summary.json" \
        --endpoint-log "$W/endpoints.jsonl" --label "N=$n" 2>"$W/fleetsim.log" || rc=$?
    curl -sf --max-time 10 --retry 5 "http://127.0.0.1:$F_PORT/v1/feed" >"$W/feed.new" &&
        mv "$W/feed.new" "$W/feed.json" || true
    # status --json over the whole fleet (a target of issue 12: <= 1 s at 20,000)
    t0=$(date +%s.%N)
    "$S" status --repo "$W/repo" --json >/dev/null 2>&1 || true
    t1=$(date +%s.%N)
    kill "$(cat "$W/seeder.pid")" 2>/dev/null || true
    rm -f "$W/seeder.pid"

    local nginx_json='null'
    if ((F_NGINX)) && [[ -s $W/feed.json ]]; then
        mkdir -p "$W/nginx/www" "$W/nginx/tmp"
        cp "$W/feed.json" "$W/nginx/www/feed.json"
        cat >"$W/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile $((2 * n + 4096));
pid $W/nginx.pid;
error_log $W/nginx/error.log warn;
events { worker_connections $((n + 1024)); multi_accept on; }
http {
  access_log off;
  keepalive_timeout 600s;
  keepalive_requests 1000000;
  client_body_temp_path $W/nginx/tmp;
  proxy_temp_path $W/nginx/tmp;
  fastcgi_temp_path $W/nginx/tmp;
  uwsgi_temp_path $W/nginx/tmp;
  scgi_temp_path $W/nginx/tmp;
  server { listen 127.0.0.1:$((F_PORT + 2)) backlog=65535; root $W/nginx/www; }
}
EOF
        "$NGINX" -c "$W/nginx/nginx.conf" -p "$W/nginx" >"$W/nginx/out.log" 2>&1 &
        if wait_http "http://127.0.0.1:$((F_PORT + 2))/feed.json" 20; then
            "$FLEETSIM" --static-url "http://127.0.0.1:$((F_PORT + 2))/feed.json" -n "$n" \
                --static-hold "$F_HOLD" --phase-timeout "$F_TIMEOUT" \
                --seeder-pid-file "$W/nginx.pid" --out "$W/nginx.json" --label "nginx N=$n" \
                2>>"$W/fleetsim.log" || rc=1
            [[ -s $W/nginx.json ]] && nginx_json=$(jq -c . "$W/nginx.json")
        else
            log "nginx did not start (see $W/nginx/out.log)"
        fi
        kill "$(cat "$W/nginx.pid" 2>/dev/null)" 2>/dev/null || true
        rm -f "$W/nginx.pid"
    fi

    if [[ ! -s $W/summary.json ]]; then
        log "N=$n: no summary (see $W/fleetsim.log)"
        echo '{}' >"$W/summary.json"
        rc=1
    fi
    jq -c --arg date "$(date -u +%FT%TZ)" --arg commit "$COMMIT" --argjson n "$n" \
        --argjson maxconn "$HAS_MAX_CONN" --argjson rc "$rc" --argjson nginx "$nginx_json" \
        --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --arg cpus "$(nproc)" \
        --argjson status_s "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" \
        '{kind: "fleet", date: $date, commit: $commit, endpoints: $n,
          max_connections_flag: ($maxconn == 1), exit_code: $rc, loadavg_at_end: $load,
          cpus: ($cpus | tonumber), status_json_s: $status_s, fleetsim: ., nginx: $nginx}' \
        "$W/summary.json" | tee -a "$RESULTS" >/dev/null
    log "N=$n: exit $rc, $(jq -r '.phases | map(.name + (if .completed then " ok" else " TIMED OUT" end)) | join(", ")' "$W/summary.json" 2>/dev/null)"
    ((F_KEEP)) && log "kept $W"
    cleanup
    WORK=""
    return "$rc"
}

IFS=, read -ra SIZES <<<"$F_SIZES"
for n in "${SIZES[@]}"; do
    if ((n > 4096 && !HAS_MAX_CONN)); then
        log "N=$n: this seeder has no --max-connections (at most 4,096 connections): measuring what happens"
    fi
    run_size "$n" || STATUS=1
done

# The table (Markdown), from this run's lines.
jq -rs -f "$BENCH_DIR/fleet_table.jq" "$RESULTS"
log "results: $RESULTS"
exit "$STATUS"
