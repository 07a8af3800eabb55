#!/usr/bin/env bash
# Three-way benchmark on the network-namespace lab (deploy/lab/lab.sh): the same topology and the
# same payload bytes, delivered to every endpoint by
#   patchswarm   patchswarm-seeder serve at HQ, patchswarmd on every endpoint (lab.sh run)
#   http         HTTP direct: a static server at HQ (busybox httpd), curl on every endpoint,
#                then sha256sum -c (what a central distribution server does)
#   bittorrent   a plain swarm: aria2c seeding at HQ and downloading on every endpoint, with
#                local peer discovery and peer exchange on, and a plain tracker at HQ
#                (opentracker); a v1 torrent of the same payload (mktorrent), no site awareness
# For each run: the time from starting the endpoints until every one holds the verified payload,
# and the bytes that crossed each site's WAN link divided by the payload size.
#
# Usage: bench/bench.sh [options]       (root; see --help)
# One JSON line per run goes to stdout and to the results file; at the end a Markdown report
# (the three-way table, the sweep, T_min) goes to the report file and to stdout.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_ROOT=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source=../deploy/lab/lab.sh
source "$BENCH_ROOT/deploy/lab/lab.sh"

bench_help() {
    cat <<'EOF'
Usage: bench/bench.sh [options]

Scenario (the issue's default, sized for 2 cores):
  --sites N            sites (default 4)
  --hosts M            endpoints per site (default 10)
  --wan-rate RATE      WAN rate per direction, tc syntax (default 20mbit)
  --wan-delay D        one-way WAN delay (default 30ms)
  --payload-mb MB      payload size of the main scenario (default 64)
  --repeat N           runs of the main scenario per contender; the report quotes medians
                       (default 1)
Sweep:
  --sweep LIST         endpoints per site for the scaling sweep, comma-separated, or 'none'
                       (default 5,10,20,40)
  --sweep-payload-mb MB  payload of the sweep (default 16: HTTP direct at 40 per site moves
                       40 copies over every WAN link, which at 64 MiB takes 18 minutes a point)
Run:
  --modes LIST         contenders, comma-separated: patchswarm,http,bittorrent (default all)
  --timeout S          give up on one run after S seconds (default 1800)
  --bin-dir DIR        build folder with the patchswarm binaries (default build/)
  --out DIR            where results-TIMESTAMP.jsonl and report-TIMESTAMP.md go
                       (default bench/results)
  --no-setup           do not install packages or build (they must be there)
  -h, --help           this text

Needs root and ip netns (like deploy/lab/lab.sh). Installs aria2, opentracker, mktorrent,
busybox, curl and jq if missing, and builds the two programs, unless --no-setup.
Exit codes: 0 all runs finished; 1 a run failed or timed out (its JSON line says so);
2 usage or environment error.
EOF
}

# ----------------------------------------------------------------------------------------------
# Options

B_SITES=4
B_HOSTS=10
B_WAN_RATE=20mbit
B_WAN_DELAY=30ms
B_PAYLOAD_MB=64
B_REPEAT=1
B_SWEEP=5,10,20,40
B_SWEEP_MB=16
B_MODES=patchswarm,http,bittorrent
B_TIMEOUT=1800
B_BIN_DIR=$BENCH_ROOT/build
B_OUT=$BENCH_DIR/results
B_SETUP=1

bench_usage_error() {
    echo "bench.sh: $*" >&2
    echo "bench.sh: see 'bench/bench.sh --help'" >&2
    exit 2
}
bench_log() { echo "bench.sh: $*" >&2; }

bench_parse() {
    while (($# > 0)); do
        case $1 in
            -h | --help)
                bench_help
                exit 0
                ;;
            --no-setup)
                B_SETUP=0
                shift
                continue
                ;;
        esac
        (($# >= 2)) || bench_usage_error "option '$1' needs a value"
        case $1 in
            --sites) B_SITES=$2 ;;
            --hosts) B_HOSTS=$2 ;;
            --wan-rate) B_WAN_RATE=$2 ;;
            --wan-delay) B_WAN_DELAY=$2 ;;
            --payload-mb) B_PAYLOAD_MB=$2 ;;
            --repeat) B_REPEAT=$2 ;;
            --sweep) B_SWEEP=$2 ;;
            --sweep-payload-mb) B_SWEEP_MB=$2 ;;
            --modes) B_MODES=$2 ;;
            --timeout) B_TIMEOUT=$2 ;;
            --bin-dir) B_BIN_DIR=$2 ;;
            --out) B_OUT=$2 ;;
            *) bench_usage_error "unknown option '$1'" ;;
        esac
        shift 2
    done
    lab_int_in "$B_SITES" 1 50 || bench_usage_error "--sites must be 1..50"
    lab_int_in "$B_HOSTS" 1 240 || bench_usage_error "--hosts must be 1..240"
    lab_int_in "$B_PAYLOAD_MB" 1 4096 || bench_usage_error "--payload-mb must be 1..4096"
    lab_int_in "$B_SWEEP_MB" 1 4096 || bench_usage_error "--sweep-payload-mb must be 1..4096"
    lab_int_in "$B_REPEAT" 1 20 || bench_usage_error "--repeat must be 1..20"
    lab_int_in "$B_TIMEOUT" 10 86400 || bench_usage_error "--timeout must be 10..86400 seconds"
    lab_rate_bps "$B_WAN_RATE" >/dev/null && (($(lab_rate_bps "$B_WAN_RATE") > 0)) ||
        bench_usage_error "--wan-rate must be a tc rate such as 20mbit"
    [[ $B_WAN_DELAY =~ ^(0|[0-9]+(\.[0-9]+)?(us|ms|s))$ ]] ||
        bench_usage_error "--wan-delay must look like 30ms (or 0)"
    [[ $B_SWEEP == none || $B_SWEEP =~ ^[0-9]+(,[0-9]+)*$ ]] ||
        bench_usage_error "--sweep must be a comma-separated list of integers or 'none'"
    local m
    IFS=, read -ra B_MODE_LIST <<<"$B_MODES"
    ((${#B_MODE_LIST[@]} > 0)) || bench_usage_error "--modes is empty"
    for m in "${B_MODE_LIST[@]}"; do
        [[ $m == patchswarm || $m == http || $m == bittorrent ]] ||
            bench_usage_error "unknown mode '$m' (patchswarm, http, bittorrent)"
    done
}

# ----------------------------------------------------------------------------------------------
# Setup

bench_setup() {
    if ((B_SETUP)); then
        PATCHSWARM_EXTRA_PACKAGES="aria2 opentracker mktorrent busybox curl jq" \
            "$BENCH_ROOT/scripts/setup.sh" patchswarm-seeder patchswarmd >&2
    fi
    local t
    for t in aria2c opentracker mktorrent busybox curl jq sha256sum; do
        command -v "$t" >/dev/null || bench_usage_error "$t is missing (run without --no-setup)"
    done
    [[ -x $B_BIN_DIR/seeder/patchswarm-seeder && -x $B_BIN_DIR/daemon/patchswarmd ]] ||
        bench_usage_error "no patchswarm binaries in $B_BIN_DIR (run without --no-setup)"
    lab_require_env
}

# ----------------------------------------------------------------------------------------------
# Baselines (http, bittorrent): one lab each, built and torn down inside a subshell

# bench_wait_listen NS ADDR PORT: waits up to 30 s until something listens on ADDR:PORT in NS.
bench_wait_listen() {
    local ns=$1 addr=$2 port=$3 deadline=$((SECONDS + 30))
    until ip netns exec "$ns" ss -Hltn "src $addr:$port" 2>/dev/null | grep -q .; do
        ((SECONDS < deadline)) || lab_fail "nothing listens on $addr:$port in $ns after 30 s"
        sleep 0.1
    done
}

# bench_wait_blocked PID...: waits (up to 60 s) until every client is blocked opening the start
# FIFO (/proc/PID/syscall starts with 257, openat, on x86-64; other architectures: a short grace).
bench_wait_blocked() {
    local deadline=$((SECONDS + 60)) p n sc
    [[ $(uname -m) == x86_64 ]] || {
        sleep 2
        return 0
    }
    while ((SECONDS < deadline)); do
        n=0
        for p in "$@"; do
            read -r sc _ <"/proc/$p/syscall" 2>/dev/null || sc=""
            [[ $sc == 257 ]] && n=$((n + 1))
        done
        ((n == $#)) && return 0
        sleep 0.1 # polling interval, not synchronisation
    done
    bench_log "only $n of $# clients are waiting for the start signal after 60 s; starting anyway"
}

# The scripts an endpoint runs; written once per lab into its work folder.
bench_write_client_scripts() {
    local w=$1
    # Every client first waits for the start signal, so that all start at once however long the
    # machine took to start them. The signal is a FIFO: opening it blocks until the bench opens
    # it for writing, and the read returns when the bench closes it. No polling: 160 clients
    # polling a file every 50 ms kept a 2-core machine at load 150.
    cat >"$w/wait-go.sh" <<'EOF'
#!/bin/sh
read -r _ <"$BENCH_GO" || true
exec "$@"
EOF
    # HTTP direct: fetch every payload file from HQ, check them against the SHA-256 list that
    # came with the release, then stamp the time. $1 = the endpoint's folder.
    cat >"$w/http-client.sh" <<'EOF'
#!/bin/sh
set -e
cd "$1"
while read -r sum path; do
    mkdir -p "payload/$(dirname "$path")"
    curl -sSf --retry 5 --retry-connrefused -o "payload/$path" "http://10.77.0.2:8080/$path"
done <"$2"
(cd payload && sha256sum -c --quiet "$2")
date +%s.%N >done.tmp
mv done.tmp done
EOF
    # aria2's on-bt-download-complete hook (every piece was SHA-1 checked on arrival).
    cat >"$w/aria2-done.sh" <<'EOF'
#!/bin/sh
date +%s.%N >"$BENCH_DONE.tmp"
mv "$BENCH_DONE.tmp" "$BENCH_DONE"
EOF
    chmod +x "$w/wait-go.sh" "$w/http-client.sh" "$w/aria2-done.sh"
}

# bench_lab_begin SITES HOSTS RATE DELAY: sets up a lab of a fresh id and its work folder, with
# lab.sh's run_teardown as the EXIT trap (it stops every process and deletes the lab and the
# folder whatever happens). Call it inside a subshell, which the trap then ends.
bench_lab_begin() {
    LAB_SITES=$1
    LAB_HOSTS=$2
    LAB_WAN_RATE=$3
    LAB_WAN_DELAY=$4
    LAB_WAN_LOSS=0
    LAB_ID=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
    lab_set_prefix
    lab_assert_free
    RUN_KEEP=0
    RUN_WORK=${TMPDIR:-/tmp}/${LAB_PREFIX}-$LAB_ID
    mkdir "$RUN_WORK"
    LAB_PIDS=()
    trap run_teardown EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    touch "$RUN_WORK/.psl-work"
    LAB_PID_DIR=$RUN_WORK
    LAB_LOG_DIR=$RUN_WORK/logs
    mkdir -p "$RUN_WORK/logs" "$RUN_WORK/ep"
}

# bench_baseline MODE SITES HOSTS PAYLOAD_DIR: prints one JSON result line (in a subshell).
bench_baseline() (
    local mode=$1 payload=$4
    bench_lab_begin "$2" "$3" "$B_WAN_RATE" "$B_WAN_DELAY"
    local w=$RUN_WORK
    bench_write_client_scripts "$w"
    cp -a "$payload" "$w/KB-LAB"
    local payload_bytes
    payload_bytes=$(lab_payload_bytes "$w/KB-LAB")
    (cd "$w/KB-LAB" && find . -type f -printf '%P\n' | sort | xargs sha256sum) >"$w/SHA256SUMS"

    bench_log "$mode: building lab $LAB_ID ($LAB_SITES x $LAB_HOSTS, WAN $LAB_WAN_RATE, $LAB_WAN_DELAY)"
    lab_build
    local hq=${LAB_NSP}hq
    if [[ $mode == http ]]; then
        lab_spawn "$hq" "$w/logs/httpd.log" busybox httpd -f -p 10.77.0.2:8080 -h "$w/KB-LAB"
        bench_wait_listen "$hq" 10.77.0.2 8080
    else
        # v1 torrent of the same folder, 128 KiB pieces like patchswarm's v2 torrent.
        mktorrent -l 17 -a http://10.77.0.2:6969/announce -o "$w/KB-LAB.torrent" "$w/KB-LAB" \
            >"$w/logs/mktorrent.log" 2>&1 || lab_fail "mktorrent failed"
        local ih
        ih=$(aria2c -S "$w/KB-LAB.torrent" | awk '/^Info Hash:/ {print $3}')
        [[ $ih =~ ^[0-9a-f]{40}$ ]] || lab_fail "no info-hash from aria2c -S"
        # Debian's opentracker only tracks whitelisted torrents; it chroots into its folder.
        mkdir -p "$w/ot"
        echo "$ih" >"$w/ot/whitelist"
        chmod 755 "$w" "$w/ot"
        chmod 644 "$w/ot/whitelist"
        lab_spawn "$hq" "$w/logs/opentracker.log" opentracker -i 10.77.0.2 -p 6969 -P 6969 \
            -w /whitelist -d "$w/ot" -u nobody
        bench_wait_listen "$hq" 10.77.0.2 6969
        lab_spawn "$hq" "$w/logs/aria2-hq.log" aria2c --dir="$w" --bt-seed-unverified=true \
            --seed-ratio=0.0 --enable-dht=false --enable-dht6=false --disable-ipv6=true \
            --bt-enable-lpd=false --listen-port=6881 --summary-interval=0 \
            --console-log-level=warn "$w/KB-LAB.torrent"
        bench_wait_listen "$hq" 0.0.0.0 6881
    fi

    mkfifo "$w/go"
    local s h name dir
    local -A ep_pid
    for ((s = 1; s <= LAB_SITES; s++)); do
        for ((h = 1; h <= LAB_HOSTS; h++)); do
            name=s${s}h$h
            dir=$w/ep/$name
            mkdir -p "$dir"
            if [[ $mode == http ]]; then
                lab_spawn "${LAB_NSP}$name" "$w/logs/$name.log" env BENCH_GO="$w/go" \
                    "$w/wait-go.sh" sh "$w/http-client.sh" "$dir" "$w/SHA256SUMS"
            else
                lab_spawn "${LAB_NSP}$name" "$w/logs/$name.log" env BENCH_GO="$w/go" \
                    BENCH_DONE="$dir/done" "$w/wait-go.sh" aria2c --dir="$dir" --enable-dht=false --enable-dht6=false \
                    --disable-ipv6=true --bt-enable-lpd=true --enable-peer-exchange=true \
                    --seed-ratio=0.0 --listen-port=6881 --file-allocation=none \
                    --summary-interval=0 --console-log-level=warn \
                    --on-bt-download-complete="$w/aria2-done.sh" "$w/KB-LAB.torrent"
            fi
            ep_pid[$name]=$LAB_SPAWNED_PID
        done
    done
    local n_total=$((LAB_SITES * LAB_HOSTS))
    declare -A rx0 tx0
    local ifc rx tx
    while read -r ifc rx tx; do
        rx0[$ifc]=$rx
        tx0[$ifc]=$tx
    done < <(lab_read_counters)
    local cpu0 t0
    bench_wait_blocked "${ep_pid[@]}"
    cpu0=$(run_cpu_sample)
    t0=$(date +%s.%N)
    exec 5>"$w/go" # every client waiting in open() goes on to read(), which ends at the close
    exec 5>&-
    bench_log "$mode: $n_total endpoints started"

    local n_done=0 result=ok load_max=0 l1 start=$SECONDS next_report=$((SECONDS + 15))
    local -A done_at
    while true; do
        local dead=0
        for name in "${!ep_pid[@]}"; do
            [[ -n ${done_at[$name]:-} ]] && continue
            if [[ -e $w/ep/$name/done ]]; then
                done_at[$name]=$(awk -v a="$t0" '{ printf "%.1f", $1 - a }' "$w/ep/$name/done")
                n_done=$((n_done + 1))
            elif ! lab_alive "${ep_pid[$name]}"; then
                dead=$((dead + 1))
            fi
        done
        read -r l1 _ </proc/loadavg
        if ((10#${l1/./} > 10#${load_max/./})); then load_max=$l1; fi
        ((n_done < n_total)) || break
        if ((dead > 0)); then
            result=failed
            bench_log "$mode: $dead endpoint(s) exited without the payload"
            for name in "${!ep_pid[@]}"; do
                [[ -z ${done_at[$name]:-} ]] && ! lab_alive "${ep_pid[$name]}" &&
                    tail -n 5 "$w/logs/$name.log" >&2 && break
            done
            break
        fi
        if ((SECONDS - start >= B_TIMEOUT)); then
            result=timeout
            break
        fi
        if ((SECONDS >= next_report)); then
            bench_log "$mode: $n_done/$n_total done after $((SECONDS - start)) s (load $l1)"
            next_report=$((SECONDS + 15))
        fi
        sleep 0.5 # polling interval, not synchronisation
    done
    local cpu1
    cpu1=$(run_cpu_sample)

    local -A wan_in wan_out
    while read -r ifc rx tx; do
        wan_in[$ifc]=$((tx - ${tx0[$ifc]:-0}))
        wan_out[$ifc]=$((rx - ${rx0[$ifc]:-0}))
    done < <(lab_read_counters)
    local out per_site="" total=0
    for ((s = 1; s <= LAB_SITES; s++)); do
        local site_t=0 done_s=0 dt
        for ((h = 1; h <= LAB_HOSTS; h++)); do
            dt=${done_at[s${s}h$h]:-}
            [[ -n $dt ]] || continue
            done_s=$((done_s + 1))
            site_t=$(awk -v a="$site_t" -v b="$dt" 'BEGIN { print (b > a) ? b : a }')
        done
        [[ -n $per_site ]] && per_site+=","
        per_site+="{\"site\":\"site$s\",\"done\":$done_s,\"seconds\":$site_t"
        per_site+=",\"wan_in_bytes\":${wan_in[s$s]:-0},\"wan_out_bytes\":${wan_out[s$s]:-0}}"
        total=$(awk -v a="$total" -v b="$site_t" 'BEGIN { print (b > a) ? b : a }')
    done
    local busy
    busy=$(run_cpu_busy_percent "$cpu0" "$cpu1")
    out="{\"mode\":\"$mode\",\"result\":\"$result\",\"sites\":$LAB_SITES,\"hosts\":$LAB_HOSTS"
    out+=",\"endpoints\":$n_total,\"done\":$n_done,\"payload_bytes\":$payload_bytes"
    out+=",\"seconds\":$total,\"per_site\":[$per_site]"
    out+=",\"cpu_busy_percent\":$busy,\"loadavg_1m_peak\":$load_max}"
    echo "$out"
    [[ $result == ok ]]
)

# bench_patchswarm SITES HOSTS PAYLOAD_DIR: lab.sh run, its JSON reduced to the common fields.
bench_patchswarm() {
    local sites=$1 hosts=$2 payload=$3 js rc=0
    js=$(bash "$BENCH_ROOT/deploy/lab/lab.sh" run --sites "$sites" --hosts "$hosts" \
        --wan-rate "$B_WAN_RATE" --wan-delay "$B_WAN_DELAY" --payload-dir "$payload" \
        --until verified --warm-fleet --timeout "$B_TIMEOUT" --bin-dir "$B_BIN_DIR") || rc=$?
    [[ -n $js ]] || {
        echo "{\"mode\":\"patchswarm\",\"result\":\"failed\",\"sites\":$sites,\"hosts\":$hosts}"
        return 1
    }
    jq -c '{mode: "patchswarm", result, sites, hosts, endpoints, done, payload_bytes, seconds,
            per_site: [.per_site[] | {site, done, seconds, wan_in_bytes, wan_out_bytes}],
            cpu_busy_percent: .cpu.busy_percent, loadavg_1m_peak: .cpu.loadavg_1m_peak,
            bytes_from_peers, bytes_from_seeder, publish_seconds}' <<<"$js"
    return "$rc"
}

# The LAN rate the T_min formula needs: one payload copied between two hosts of a one-site lab
# (unshaped veth through the site bridge), curl from busybox httpd. Prints bytes per second.
bench_probe_lan() (
    local payload=$1
    bench_lab_begin 1 2 none 0
    lab_build
    lab_spawn "${LAB_NSP}s1h1" /dev/null busybox httpd -f -p 10.77.1.10:8080 -h "$payload"
    bench_wait_listen "${LAB_NSP}s1h1" 10.77.1.10 8080
    local speeds=() i
    for i in 1 2 3; do
        speeds+=("$(ip netns exec "${LAB_NSP}s1h2" curl -sSf -o /dev/null \
            -w '%{speed_download}' http://10.77.1.10:8080/data/patch.bin)")
    done
    printf '%s\n' "${speeds[@]}" | sort -n | sed -n 2p
)

# ----------------------------------------------------------------------------------------------
# Report

# bench_report RESULTS LAN_BPS: the Markdown report from the JSON lines.
bench_report() {
    local results=$1 lan=$2
    local wan_bps
    wan_bps=$(lab_rate_bps "$B_WAN_RATE")
    jq -rs --argjson wan "$wan_bps" --argjson lan "$lan" --argjson main_hosts "$B_HOSTS" \
        --argjson main_bytes "$((B_PAYLOAD_MB * 1048576))" --arg date "$(date -u +%F)" \
        --arg cmd "$B_COMMAND" --arg rate "$B_WAN_RATE" --arg delay "$B_WAN_DELAY" -f \
        "$BENCH_DIR/report.jq" "$results"
}

# ----------------------------------------------------------------------------------------------

bench_main() {
    B_COMMAND="bench/bench.sh $*"
    bench_parse "$@"
    bench_setup
    mkdir -p "$B_OUT"
    local stamp
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    local results=$B_OUT/results-$stamp.jsonl report=$B_OUT/report-$stamp.md
    local tmp
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/psl-bench.XXXXXX")
    # shellcheck disable=SC2064 # expand now
    trap "rm -rf --one-file-system '$tmp'" EXIT

    bench_log "payloads: ${B_PAYLOAD_MB} MiB (main), ${B_SWEEP_MB} MiB (sweep)"
    lab_make_payload "$tmp/main" "$B_PAYLOAD_MB"
    lab_make_payload "$tmp/sweep" "$B_SWEEP_MB"
    local lan
    lan=$(bench_probe_lan "$tmp/main")
    bench_log "LAN rate (curl between two hosts of one site, median of 3): $lan bytes/s"
    echo "{\"probe\":\"lan\",\"bytes_per_second\":$lan}" >>"$results"

    # run MODE SITES HOSTS PAYLOAD SCENARIO
    local failed=0
    bench_one() {
        local mode=$1 line rc=0
        bench_log "== $mode: $2 sites x $3 endpoints, $(lab_payload_bytes "$4") bytes ($5)"
        if [[ $mode == patchswarm ]]; then
            line=$(bench_patchswarm "$2" "$3" "$4") || rc=$?
        else
            line=$(bench_baseline "$mode" "$2" "$3" "$4") || rc=$?
        fi
        ((rc == 0)) || failed=1
        [[ -n $line ]] || line="{\"mode\":\"$mode\",\"result\":\"failed\",\"sites\":$2,\"hosts\":$3}"
        line=$(jq -c --arg sc "$5" '. + {scenario: $sc}' <<<"$line")
        echo "$line" | tee -a "$results"
        bench_log "$(jq -r '. as $r | "\(.mode): \(.result) in \(.seconds) s; WAN in / payload per site: \([.per_site[]? | .wan_in_bytes / $r.payload_bytes * 100 | round / 100] | map(tostring) | join(" "))"' <<<"$line")"
    }
    local r m n
    for ((r = 1; r <= B_REPEAT; r++)); do
        for m in "${B_MODE_LIST[@]}"; do bench_one "$m" "$B_SITES" "$B_HOSTS" "$tmp/main" main; done
    done
    if [[ $B_SWEEP != none ]]; then
        IFS=, read -ra sweep <<<"$B_SWEEP"
        for n in "${sweep[@]}"; do
            for m in "${B_MODE_LIST[@]}"; do bench_one "$m" "$B_SITES" "$n" "$tmp/sweep" sweep; done
        done
    fi
    bench_report "$results" "$lan" | tee "$report"
    bench_log "results: $results"
    bench_log "report:  $report"
    return "$failed"
}

bench_main "$@"
