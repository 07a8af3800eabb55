#!/usr/bin/env bash
# patchswarm network-namespace lab: HQ (seeder) + router + N sites of M endpoints behind shaped
# WAN links, all on one machine. See deploy/lab/README.md for the topology and the JSON it prints.
#
#   lab.sh check                          can this machine build a lab? (root, ip netns, veth, tbf)
#   lab.sh up [topology options]          build a lab and print its description (one JSON line)
#   lab.sh down [--id ID]                 kill every process in the lab's namespaces, delete them
#   lab.sh counters [--id ID]             per-site WAN bytes (router-side interface counters)
#   lab.sh run [topology + run options]   build, run seeder + endpoints, wait, print one JSON
#                                         result line, tear everything down (always)
#   lab.sh --cleanup                      remove every psl-* namespace (and its processes) and
#                                         leftover work folders of any run
#
# The file can also be sourced (`source lab.sh`) by benchmark scripts: every lab_* function is
# then available and nothing runs.
set -euo pipefail

LAB_PREFIX=psl
LAB_SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ----------------------------------------------------------------------------------------------
# Messages and errors

lab_log() { echo "lab.sh: $*" >&2; }
# Seconds (one decimal) since the unix time $1 (from date +%s.%N).
lab_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}'; }
# Usage / environment errors: exit 2.
lab_usage_error() {
    echo "lab.sh: $*" >&2
    echo "lab.sh: see 'lab.sh --help'" >&2
    exit 2
}
lab_env_error() {
    echo "lab.sh: $*" >&2
    exit 2
}
lab_fail() {
    echo "lab.sh: $*" >&2
    exit 1
}

lab_help() {
    cat <<'EOF'
Usage:
  lab.sh check
  lab.sh up       [--sites N] [--hosts M] [--wan-rate RATE] [--wan-delay D] [--wan-loss P] [--id ID]
  lab.sh down     [--id ID]
  lab.sh counters [--id ID]
  lab.sh run      [topology options] [--payload-mb MB] [--timeout S] [--until effective|verified]
                  [--keep] [--work-dir DIR] [--bin-dir DIR] [--seeder-bin F] [--daemon-bin F]
                  [--wan-limit BYTES_PER_S] [--seeder-opt ARG]... [--daemon-opt ARG]...
                  [--payload-dir DIR] [--warm-fleet]
  lab.sh --cleanup

Topology options:
  --sites N          number of sites (1..200, default 2)
  --hosts M          endpoint hosts per site (1..240, default 3)
  --wan-rate RATE    WAN rate per direction: <int>bit|kbit|mbit|gbit, or 'none' (default 20mbit)
  --wan-delay D      one-way WAN delay per direction, e.g. 30ms: netem where the kernel has it,
                     otherwise a small user-space forwarder (wan_delay.c, compiled with cc);
                     the JSON says how (delay_method) or why not
  --wan-loss P       WAN packet loss in percent per direction, e.g. 0.5 (netem where available,
                     otherwise a classic-BPF random filter into a dropping class)
  --id ID            lab id, [a-z0-9]{1,8}: namespaces are psl-ID-*. Default: 'lab' for
                     up/down/counters, random for run.
Run options:
  --payload-mb MB    random payload size in MiB (default 8)
  --payload-dir DIR  publish a copy of this payload folder instead (from lab_make_payload, so a
                     benchmark gives every contender the same bytes); it must hold install.sh;
                     --payload-mb is then ignored
  --warm-fleet       start the fleet on a tiny warm-up release and wait until every endpoint
                     has installed it; only then publish the measured release, and time from the
                     end of that publish (a running fleet meets an emergency patch). Without it
                     the release is published first and the time counts from the endpoints'
                     start, which on a loaded machine includes seconds of process start-up
  --timeout S        give up after S seconds of waiting (default 300)
  --until STATE      'effective' (default) or 'verified'
  --keep             keep the work folder (logs, state dirs, repo) after the run
  --work-dir DIR     work folder (must not exist; default ${TMPDIR:-/tmp}/psl-ID)
  --bin-dir DIR      build folder holding seeder/patchswarm-seeder and daemon/patchswarmd
  --seeder-bin F, --daemon-bin F   the binaries (also env PATCHSWARM_SEEDER_BIN/_DAEMON_BIN)
  --wan-limit B      pass --wan-limit B to every endpoint (needs patchswarmd support)
  --seeder-opt ARG   extra argument for 'patchswarm-seeder serve' (repeatable)
  --daemon-opt ARG   extra argument for 'patchswarmd run' (repeatable)

Exit codes: 0 success; 1 run failed or timed out (the JSON line is still printed); 2 usage
error, not root, or ip/tc/namespaces unavailable.
EOF
}

# ----------------------------------------------------------------------------------------------
# Options

lab_set_defaults() {
    LAB_ID=""
    LAB_SITES=2
    LAB_HOSTS=3
    LAB_WAN_RATE=20mbit
    LAB_WAN_DELAY=0
    LAB_WAN_LOSS=0
    RUN_PAYLOAD_MB=8
    RUN_PAYLOAD_DIR=""
    RUN_WARM=0
    RUN_TIMEOUT=300
    RUN_UNTIL=effective
    RUN_KEEP=0
    RUN_WORK_DIR=""
    RUN_BIN_DIR=""
    RUN_SEEDER_BIN=${PATCHSWARM_SEEDER_BIN:-}
    RUN_DAEMON_BIN=${PATCHSWARM_DAEMON_BIN:-}
    RUN_WAN_LIMIT=""
    RUN_SEEDER_OPTS=()
    RUN_DAEMON_OPTS=()
}

# lab_parse_options CMD ARGS...: sets the LAB_*/RUN_* variables; refuses options that CMD does
# not take.
lab_parse_options() {
    local cmd=$1
    shift
    local topo=0 runopts=0
    case $cmd in
        up) topo=1 ;;
        run) topo=1 runopts=1 ;;
    esac
    while (($# > 0)); do
        local opt=$1
        local kind=id
        case $opt in
            --sites | --hosts | --wan-rate | --wan-delay | --wan-loss) kind=topo ;;
            --payload-mb | --timeout | --until | --work-dir | --bin-dir | --seeder-bin | \
                --daemon-bin | --wan-limit | --seeder-opt | --daemon-opt | --payload-dir) kind=run ;;
            --keep | --warm-fleet) kind=runflag ;;
            --id) kind=id ;;
            -h | --help)
                lab_help
                exit 0
                ;;
            *) lab_usage_error "unknown option '$opt' for '$cmd'" ;;
        esac
        if [[ $kind == topo && $topo == 0 ]] || [[ ($kind == run || $kind == runflag) && $runopts == 0 ]]; then
            lab_usage_error "option '$opt' does not apply to '$cmd'"
        fi
        if [[ $kind == runflag ]]; then
            [[ $opt == --keep ]] && RUN_KEEP=1
            [[ $opt == --warm-fleet ]] && RUN_WARM=1
            shift
            continue
        fi
        (($# >= 2)) || lab_usage_error "option '$opt' needs a value"
        local val=$2
        shift 2
        case $opt in
            --id) LAB_ID=$val ;;
            --sites) LAB_SITES=$val ;;
            --hosts) LAB_HOSTS=$val ;;
            --wan-rate) LAB_WAN_RATE=$val ;;
            --wan-delay) LAB_WAN_DELAY=$val ;;
            --wan-loss) LAB_WAN_LOSS=${val%\%} ;;
            --payload-mb) RUN_PAYLOAD_MB=$val ;;
            --payload-dir) RUN_PAYLOAD_DIR=$val ;;
            --timeout) RUN_TIMEOUT=$val ;;
            --until) RUN_UNTIL=$val ;;
            --work-dir) RUN_WORK_DIR=$val ;;
            --bin-dir) RUN_BIN_DIR=$val ;;
            --seeder-bin) RUN_SEEDER_BIN=$val ;;
            --daemon-bin) RUN_DAEMON_BIN=$val ;;
            --wan-limit) RUN_WAN_LIMIT=$val ;;
            --seeder-opt) RUN_SEEDER_OPTS+=("$val") ;;
            --daemon-opt) RUN_DAEMON_OPTS+=("$val") ;;
        esac
    done

    if [[ -z $LAB_ID ]]; then
        if [[ $cmd == run ]]; then
            LAB_ID=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
        else
            LAB_ID=lab
        fi
    fi
    [[ $LAB_ID =~ ^[a-z0-9]{1,8}$ ]] || lab_usage_error "--id must match [a-z0-9]{1,8}, got '$LAB_ID'"
    lab_set_prefix
    lab_int_in "$LAB_SITES" 1 200 || lab_usage_error "--sites must be 1..200, got '$LAB_SITES'"
    lab_int_in "$LAB_HOSTS" 1 240 || lab_usage_error "--hosts must be 1..240, got '$LAB_HOSTS'"
    lab_rate_bps "$LAB_WAN_RATE" >/dev/null ||
        lab_usage_error "--wan-rate must be <int>bit|kbit|mbit|gbit or 'none', got '$LAB_WAN_RATE'"
    [[ $LAB_WAN_DELAY =~ ^(0|[0-9]+(\.[0-9]+)?(us|ms|s))$ ]] ||
        lab_usage_error "--wan-delay must look like 30ms (or 0), got '$LAB_WAN_DELAY'"
    if ! [[ $LAB_WAN_LOSS =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
        ! awk -v p="$LAB_WAN_LOSS" 'BEGIN{exit !(p < 100)}'; then
        lab_usage_error "--wan-loss must be a percentage 0..<100, got '$LAB_WAN_LOSS'"
    fi
    lab_int_in "$RUN_PAYLOAD_MB" 1 4096 ||
        lab_usage_error "--payload-mb must be 1..4096, got '$RUN_PAYLOAD_MB'"
    lab_int_in "$RUN_TIMEOUT" 1 86400 ||
        lab_usage_error "--timeout must be 1..86400 seconds, got '$RUN_TIMEOUT'"
    [[ $RUN_UNTIL == effective || $RUN_UNTIL == verified ]] ||
        lab_usage_error "--until must be 'effective' or 'verified', got '$RUN_UNTIL'"
    [[ -z $RUN_PAYLOAD_DIR || -f $RUN_PAYLOAD_DIR/install.sh ]] ||
        lab_usage_error "--payload-dir must be a folder holding install.sh, got '$RUN_PAYLOAD_DIR'"
    [[ -z $RUN_WAN_LIMIT || $RUN_WAN_LIMIT =~ ^[0-9]+$ ]] ||
        lab_usage_error "--wan-limit must be bytes per second, got '$RUN_WAN_LIMIT'"
    return 0
}

# lab_int_in VALUE MIN MAX: VALUE is a decimal integer within [MIN, MAX].
lab_int_in() {
    [[ $1 =~ ^[0-9]{1,9}$ ]] || return 1
    local v=$((10#$1))
    ((v >= $2 && v <= $3))
}

# lab_rate_bps RATE: prints the rate in bit/s (0 for 'none'); fails on a malformed rate.
lab_rate_bps() {
    local r=$1
    if [[ $r == none ]]; then
        echo 0
        return 0
    fi
    [[ $r =~ ^([0-9]+)(bit|kbit|mbit|gbit)$ ]] || return 1
    local n=${BASH_REMATCH[1]} mult=1
    case ${BASH_REMATCH[2]} in
        kbit) mult=1000 ;;
        mbit) mult=1000000 ;;
        gbit) mult=1000000000 ;;
    esac
    ((n > 0)) || return 1
    echo $((n * mult))
}

# ----------------------------------------------------------------------------------------------
# Environment checks

lab_require_env() {
    [[ $(id -u) == 0 ]] || lab_env_error "must run as root (network namespaces, veth, tc)"
    command -v ip >/dev/null 2>&1 || lab_env_error "'ip' (iproute2) not found"
    command -v tc >/dev/null 2>&1 || lab_env_error "'tc' (iproute2) not found"
    ip netns list >/dev/null 2>&1 || lab_env_error "'ip netns' does not work here"
}

# Builds and removes a two-namespace probe with a shaped veth link. Exit 2 if impossible.
lab_check() {
    lab_require_env
    local a="${LAB_PREFIX}-chk$$-a" b="${LAB_PREFIX}-chk$$-b" ok=1 why=""
    if ! ip netns add "$a" 2>/dev/null; then
        lab_env_error "cannot create a network namespace (ip netns add failed)"
    fi
    if ! ip netns add "$b" 2>/dev/null; then
        ok=0 why="cannot create a second network namespace"
    elif ! ip link add x netns "$a" type veth peer y netns "$b" 2>/dev/null; then
        ok=0 why="cannot create a veth pair between namespaces"
    elif ! tc -n "$a" qdisc add dev x root tbf rate 10mbit burst 16000 latency 50ms 2>/dev/null; then
        ok=0 why="cannot add a tbf qdisc (sch_tbf missing?)"
    elif ! ip -n "$a" link add br0 type bridge 2>/dev/null; then
        ok=0 why="cannot create a Linux bridge"
    fi
    ip netns del "$b" 2>/dev/null || true
    ip netns del "$a" 2>/dev/null || true
    ((ok)) || lab_env_error "$why"
    local netem=no
    lab_netem_available && netem=yes
    echo "{\"ok\":true,\"netem\":$([[ $netem == yes ]] && echo true || echo false)}"
}

# Whether the kernel has sch_netem (probed once, on a throwaway namespace).
lab_netem_available() {
    if [[ -z ${LAB_NETEM:-} ]]; then
        local p="${LAB_PREFIX}-chk$$-n"
        LAB_NETEM=no
        if ip netns add "$p" 2>/dev/null; then
            if ip -n "$p" link add d0 type dummy 2>/dev/null &&
                tc -n "$p" qdisc add dev d0 root netem delay 1ms 2>/dev/null; then
                LAB_NETEM=yes
            fi
            ip netns del "$p" 2>/dev/null || true
        fi
    fi
    [[ $LAB_NETEM == yes ]]
}

# ----------------------------------------------------------------------------------------------
# Names and addresses (the only addresses the lab uses, all inside its own namespaces)
#   HQ        psl-ID-hq    eth0 10.77.0.2/24, default via 10.77.0.1
#   router    psl-ID-rt    hq 10.77.0.1/24; sS 10.77.S.1/24 (WAN link to site S); forwarding on
#   site S    psl-ID-sS    bridge br0 with ports wan (peer of the router's sS) and h1..hM
#   host S/H  psl-ID-sShH  eth0 10.77.S.(9+H)/24, default via 10.77.S.1

lab_ns() { echo "${LAB_PREFIX}-${LAB_ID}-$1"; }
# The same prefix as a variable (no subshell per name: forks are slow on a loaded machine).
lab_set_prefix() { LAB_NSP="${LAB_PREFIX}-${LAB_ID}-"; }
lab_host_ip() { echo "10.77.$1.$((9 + $2))"; }

# Namespaces of lab LAB_ID that exist now.
lab_existing_ns() {
    ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${LAB_PREFIX}-${LAB_ID}-" || true
}

# lab_shape_cmds DEV: prints the tc batch lines that shape DEV's egress as a WAN link (rate with
# tbf; delay and loss with netem where the kernel has it, loss with classic BPF otherwise).
lab_shape_cmds() {
    local dev=$1
    local bps
    bps=$(lab_rate_bps "$LAB_WAN_RATE")
    local want_delay=0 want_loss=0
    [[ $LAB_WAN_DELAY != 0 ]] && want_delay=1
    awk -v p="$LAB_WAN_LOSS" 'BEGIN{exit !(p > 0)}' && want_loss=1
    local burst=$((bps / 8 / 100))
    ((burst >= 16000)) || burst=16000
    local tbf="tbf rate $LAB_WAN_RATE burst $burst latency 50ms"

    if ((want_delay || want_loss)) && lab_netem_available; then
        local netem="netem limit 100000"
        ((want_delay)) && netem+=" delay $LAB_WAN_DELAY"
        ((want_loss)) && netem+=" loss ${LAB_WAN_LOSS}%"
        echo "qdisc add dev $dev root handle 1: $netem"
        ((bps > 0)) && echo "qdisc add dev $dev parent 1:1 handle 10: $tbf"
        return 0
    fi
    if ((want_loss)); then
        # No netem: a classic-BPF filter (ld rand < threshold) sends a random share of the
        # packets to an HTB class whose pfifo has limit 0, so they are dropped; the others go to
        # a bfifo sized like tbf's own queue. The HTB sits under tbf, which splits GSO packets
        # bigger than its burst into frames first, so loss is per frame (burst 1600 bytes).
        local threshold parent=root
        threshold=$(awk -v p="$LAB_WAN_LOSS" 'BEGIN{printf "%.0f", p / 100 * 4294967296}')
        if ((bps > 0)); then
            echo "qdisc add dev $dev root handle 1: tbf rate $LAB_WAN_RATE burst 1600 latency 50ms"
            parent="parent 1:1"
        fi
        echo "qdisc add dev $dev $parent handle 2: htb default 1"
        echo "class add dev $dev parent 2: classid 2:1 htb rate 10gbit quantum 60000"
        echo "class add dev $dev parent 2: classid 2:2 htb rate 10gbit quantum 60000"
        echo "qdisc add dev $dev parent 2:1 handle 21: bfifo limit $((bps / 8 / 20 + 16000))"
        echo "qdisc add dev $dev parent 2:2 handle 22: pfifo limit 0"
        # ld rand; jge #threshold -> pass; ret #2:2 (drop); ret #2:1 (pass)
        echo "filter add dev $dev parent 2: protocol all prio 1 bpf" \
            "bytecode \"4,32 0 0 4294963256,53 1 0 ${threshold},6 0 0 131074,6 0 0 131073\""
        return 0
    fi
    ((bps > 0)) && echo "qdisc add dev $dev root $tbf"
    return 0
}

# lab_batch NS TOOL: runs the batch of TOOL (ip, tc) commands on stdin inside NS ('' = here).
lab_batch() {
    local ns=$1 tool=$2 cmds
    cmds=$(cat)
    [[ -n $cmds ]] || return 0
    if [[ -n $ns ]]; then
        "$tool" -n "$ns" -batch - <<<"$cmds" || lab_fail "$tool batch failed in $ns"
    else
        "$tool" -batch - <<<"$cmds" || lab_fail "$tool batch failed"
    fi
}

# Whether delay / loss are really applied on the WAN links, and why not.
lab_wan_capabilities() {
    LAB_DELAY_APPLIED=false
    LAB_LOSS_APPLIED=false
    LAB_DELAY_NOTE=""
    LAB_LOSS_METHOD=none
    LAB_DELAY_METHOD=none
    LAB_DELAY_US=$(awk -v d="$LAB_WAN_DELAY" 'BEGIN {
        v = d + 0; if (d ~ /us$/) v = v; else if (d ~ /ms$/) v = v * 1000; else if (d ~ /s$/) v = v * 1000000;
        printf "%.0f", v }')
    if ((LAB_DELAY_US > 0)); then
        if lab_netem_available; then
            LAB_DELAY_APPLIED=true
            LAB_DELAY_METHOD=netem
        elif lab_build_wan_delay; then
            LAB_DELAY_APPLIED=true
            LAB_DELAY_METHOD=forwarder
        else
            LAB_DELAY_NOTE="not applied: no sch_netem in this kernel and $LAB_WAN_DELAY_WHY"
        fi
    fi
    if awk -v p="$LAB_WAN_LOSS" 'BEGIN{exit !(p > 0)}'; then
        LAB_LOSS_APPLIED=true
        if lab_netem_available; then LAB_LOSS_METHOD=netem; else LAB_LOSS_METHOD=cbpf; fi
    fi
}

# Compiles the user-space delay forwarder (wan_delay.c) once per source version, into
# ${TMPDIR:-/tmp}/psl-bin/. Sets LAB_WAN_DELAY_BIN, or LAB_WAN_DELAY_WHY and fails.
lab_build_wan_delay() {
    local src="$LAB_SCRIPT_DIR/wan_delay.c" cc sum dir
    if [[ ! -r $src ]]; then
        LAB_WAN_DELAY_WHY="$src is missing"
        return 1
    fi
    cc=$(command -v cc || command -v gcc || command -v clang || true)
    if [[ -z $cc ]]; then
        LAB_WAN_DELAY_WHY="no C compiler (cc) to build the delay forwarder"
        return 1
    fi
    sum=$(cksum <"$src" | awk '{print $1}')
    dir="${TMPDIR:-/tmp}/${LAB_PREFIX}-bin"
    LAB_WAN_DELAY_BIN="$dir/wan_delay-$sum"
    [[ -x $LAB_WAN_DELAY_BIN ]] && return 0
    mkdir -p "$dir"
    if ! "$cc" -O2 -o "$LAB_WAN_DELAY_BIN.tmp$$" "$src" 2>"$dir/build-$$.log"; then
        LAB_WAN_DELAY_WHY="the delay forwarder did not compile: $(head -c 300 "$dir/build-$$.log" | tr '\n"' ' ')"
        rm -f "$dir/build-$$.log" "$LAB_WAN_DELAY_BIN.tmp$$"
        return 1
    fi
    rm -f "$dir/build-$$.log"
    mv -f "$LAB_WAN_DELAY_BIN.tmp$$" "$LAB_WAN_DELAY_BIN"
}

# Refuses to build over an existing lab of the same id (checked before any trap is set, so a
# failed attempt never tears down somebody else's lab).
lab_assert_free() {
    if [[ -n $(lab_existing_ns) ]]; then
        lab_usage_error "lab '$LAB_ID' already exists (lab.sh down --id $LAB_ID)"
    fi
}

# The kernel's ARP table is one table for every network namespace, 1024 entries by default
# (gc_thresh3): a lab of 4 sites x 20 hosts that all talk to each other needs more, and then new
# connections hang with "neighbour table overflow" in dmesg and no packet sent. Raises the
# thresholds (never lowers them) to fit every lab that may run at once.
lab_size_neighbour_table() {
    local hosts=$((LAB_SITES * LAB_HOSTS)) want need
    need=$(((hosts * (LAB_HOSTS + 4) + 2 * hosts) * 4))
    local -A min=([gc_thresh1]=8192 [gc_thresh2]=32768 [gc_thresh3]=65536)
    local k f
    for k in gc_thresh1 gc_thresh2 gc_thresh3; do
        f=/proc/sys/net/ipv4/neigh/default/$k
        [[ -w $f ]] || continue
        want=${min[$k]}
        [[ $k == gc_thresh3 ]] && ((need > want)) && want=$need
        [[ $k == gc_thresh2 ]] && ((need / 2 > want)) && want=$((need / 2))
        (($(<"$f") >= want)) || echo "$want" >"$f"
    done
}

# Builds the topology of LAB_ID (LAB_SITES x LAB_HOSTS). The caller tears down on failure.
# Commands go in batches (one ip/tc process per namespace): on a loaded 2-core machine every
# process start costs 30-100 ms. IPv6 gets no addresses (addrgenmode none), so no router
# solicitation, DAD or MLD frame crosses a WAN link.
lab_build() {
    local rt hq s h
    rt=${LAB_NSP}rt
    hq=${LAB_NSP}hq
    lab_size_neighbour_table
    lab_wan_capabilities
    [[ $LAB_DELAY_APPLIED == true || $LAB_WAN_DELAY == 0 ]] ||
        lab_log "warning: --wan-delay $LAB_WAN_DELAY $LAB_DELAY_NOTE"

    # Namespaces and veth pairs, each veth created directly inside its two namespaces.
    {
        echo "netns add $rt"
        echo "netns add $hq"
        for ((s = 1; s <= LAB_SITES; s++)); do
            echo "netns add ${LAB_NSP}s$s"
            for ((h = 1; h <= LAB_HOSTS; h++)); do echo "netns add ${LAB_NSP}s${s}h$h"; done
        done
        echo "link add hq netns $rt type veth peer eth0 netns $hq"
        for ((s = 1; s <= LAB_SITES; s++)); do
            echo "link add s$s netns $rt type veth peer wan netns ${LAB_NSP}s$s"
            for ((h = 1; h <= LAB_HOSTS; h++)); do
                echo "link add h$h netns ${LAB_NSP}s$s type veth peer eth0 netns ${LAB_NSP}s${s}h$h"
            done
        done
    } | lab_batch "" ip

    # Router: gateway of HQ and of every site, forwarding on; WAN egress shaped (into sites).
    ip netns exec "$rt" sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward'
    {
        echo "link set lo up"
        echo "link set hq addrgenmode none"
        echo "addr add 10.77.0.1/24 dev hq"
        echo "link set hq up"
        for ((s = 1; s <= LAB_SITES; s++)); do
            echo "link set s$s addrgenmode none"
            echo "addr add 10.77.$s.1/24 dev s$s"
            echo "link set s$s up"
        done
    } | lab_batch "$rt" ip
    for ((s = 1; s <= LAB_SITES; s++)); do lab_shape_cmds "s$s"; done | lab_batch "$rt" tc

    {
        echo "link set lo up"
        echo "link set eth0 addrgenmode none"
        echo "addr add 10.77.0.2/24 dev eth0"
        echo "link set eth0 up"
        echo "route add default via 10.77.0.1"
    } | lab_batch "$hq" ip

    for ((s = 1; s <= LAB_SITES; s++)); do
        local sw
        sw=${LAB_NSP}s$s
        # Site switch: a bridge whose ports are the WAN link (wan) and the hosts (h1..hM).
        # Local multicast (BEP 14 discovery) stays on the LAN, as behind a real branch router.
        # With the delay forwarder, wan is not a bridge port: the forwarder copies frames
        # between wan and dl0, whose veth peer dl1 is the bridge port instead.
        local up=wan
        [[ $LAB_DELAY_METHOD == forwarder ]] && up=dl1
        {
            echo "link set lo up"
            echo "link add br0 type bridge stp_state 0"
            echo "link set br0 addrgenmode none"
            echo "link set wan addrgenmode none"
            if [[ $up == dl1 ]]; then
                echo "link add dl0 type veth peer dl1"
                echo "link set dl0 addrgenmode none"
                echo "link set dl1 addrgenmode none"
                echo "link set dl0 up"
            fi
            echo "link set $up master br0"
            echo "link set dev $up type bridge_slave mcast_flood off"
            [[ $up == dl1 ]] && echo "link set dl1 up"
            for ((h = 1; h <= LAB_HOSTS; h++)); do
                echo "link set h$h addrgenmode none"
                echo "link set h$h master br0"
            done
            echo "link set br0 up"
            echo "link set wan up"
            for ((h = 1; h <= LAB_HOSTS; h++)); do echo "link set h$h up"; done
        } | lab_batch "$sw" ip
        lab_shape_cmds wan | lab_batch "$sw" tc
        if [[ $up == dl1 ]]; then
            lab_spawn "$sw" "${LAB_LOG_DIR:-/dev/null}${LAB_LOG_DIR:+/wan-delay-s$s.log}" \
                "$LAB_WAN_DELAY_BIN" wan dl0 "$LAB_DELAY_US"
        fi
        for ((h = 1; h <= LAB_HOSTS; h++)); do
            {
                echo "link set lo up"
                echo "link set eth0 addrgenmode none"
                echo "addr add 10.77.$s.$((9 + h))/24 dev eth0"
                echo "link set eth0 up"
                echo "route add default via 10.77.$s.1"
            } | lab_batch "${LAB_NSP}s${s}h$h" ip
        done
    done
}

# The lab's description as one JSON line.
lab_describe() {
    local s h out
    out="{\"id\":\"$LAB_ID\",\"prefix\":\"${LAB_PREFIX}-${LAB_ID}-\""
    out+=",\"router\":{\"netns\":\"${LAB_NSP}rt\",\"forwarding\":true}"
    out+=",\"hq\":{\"netns\":\"${LAB_NSP}hq\",\"interface\":\"eth0\",\"address\":\"10.77.0.2\""
    out+=",\"cidr\":\"10.77.0.0/24\",\"gateway\":\"10.77.0.1\",\"router_if\":\"hq\"}"
    out+=",\"wan\":{\"rate\":\"$LAB_WAN_RATE\",\"rate_bps\":$(lab_rate_bps "$LAB_WAN_RATE")"
    out+=",\"qdisc\":\"tbf\",\"shaped\":\"both directions\""
    out+=",\"delay\":\"$LAB_WAN_DELAY\",\"delay_applied\":$LAB_DELAY_APPLIED"
    out+=",\"delay_method\":\"$LAB_DELAY_METHOD\""
    [[ -n $LAB_DELAY_NOTE ]] && out+=",\"delay_note\":\"$LAB_DELAY_NOTE\""
    out+=",\"loss_percent\":$LAB_WAN_LOSS,\"loss_applied\":$LAB_LOSS_APPLIED"
    out+=",\"loss_method\":\"$LAB_LOSS_METHOD\"}"
    out+=",\"sites\":["
    for ((s = 1; s <= LAB_SITES; s++)); do
        ((s > 1)) && out+=","
        out+="{\"name\":\"site$s\",\"index\":$s,\"cidr\":\"10.77.$s.0/24\",\"gateway\":\"10.77.$s.1\""
        out+=",\"switch_netns\":\"${LAB_NSP}s$s\",\"bridge\":\"br0\""
        out+=",\"wan\":{\"router_netns\":\"${LAB_NSP}rt\",\"router_if\":\"s$s\""
        out+=",\"site_netns\":\"${LAB_NSP}s$s\",\"site_if\":\"wan\""
        out+=",\"in\":\"router_if tx_bytes\",\"out\":\"router_if rx_bytes\"}"
        out+=",\"hosts\":["
        for ((h = 1; h <= LAB_HOSTS; h++)); do
            ((h > 1)) && out+=","
            out+="{\"name\":\"s${s}h$h\",\"netns\":\"${LAB_NSP}s${s}h$h\",\"interface\":\"eth0\""
            out+=",\"address\":\"10.77.$s.$((9 + h))\"}"
        done
        out+="]}"
    done
    out+="]}"
    echo "$out"
}

# ----------------------------------------------------------------------------------------------
# Counters

# Prints "IFACE RX_BYTES TX_BYTES" for every site WAN interface (sN) in the router namespace.
lab_read_counters() {
    local rt
    rt=${LAB_NSP}rt
    # shellcheck disable=SC2016 # expanded by the inner sh
    ip netns exec "$rt" sh -c 'for d in /sys/class/net/s*; do
        [ -e "$d/statistics/rx_bytes" ] || continue
        echo "${d##*/} $(cat "$d/statistics/rx_bytes") $(cat "$d/statistics/tx_bytes")"
    done' | sort -V
}

lab_counters_json() {
    local rt
    rt=${LAB_NSP}rt
    ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$rt" ||
        lab_fail "no lab '$LAB_ID' (namespace $rt not found)"
    local out="{\"id\":\"$LAB_ID\",\"sites\":[" first=1 ifc rx tx
    while read -r ifc rx tx; do
        ((first)) || out+=","
        first=0
        out+="{\"site\":\"site${ifc#s}\",\"router_if\":\"$ifc\",\"wan_in_bytes\":$tx,\"wan_out_bytes\":$rx}"
    done < <(lab_read_counters)
    out+="]}"
    echo "$out"
}

# ----------------------------------------------------------------------------------------------
# Processes

LAB_PIDS=()

# Whether a process is alive (and not a zombie). No fork: it is called in polling loops.
lab_alive() {
    local line st
    [[ -r /proc/$1/stat ]] || return 1
    read -r line <"/proc/$1/stat" 2>/dev/null || return 1
    st=${line##*) }
    st=${st%% *}
    [[ -n $st && $st != Z && $st != X ]]
}

# lab_spawn NS LOG CMD...: starts CMD inside NS in a session of its own (setsid), output to LOG;
# records its pid in LAB_PIDS and in $LAB_PIDFILE (if set); sets LAB_SPAWNED_PID.
lab_spawn() {
    local ns=$1 log=$2
    shift 2
    local pidfile
    pidfile=$(mktemp "${LAB_PID_DIR:-${TMPDIR:-/tmp}}/${LAB_PREFIX}-pid.XXXXXX")
    # shellcheck disable=SC2016 # $$ and $@ are expanded by the inner sh
    ip netns exec "$ns" setsid sh -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" \
        >"$log" 2>&1 </dev/null &
    local pid="" i
    for ((i = 0; i < 200; i++)); do
        [[ -s $pidfile ]] && read -r pid <"$pidfile" && [[ -n $pid ]] && break
        sleep 0.05
    done
    rm -f "$pidfile"
    [[ -n $pid ]] || lab_fail "could not start in $ns: $*"
    LAB_PIDS+=("$pid")
    [[ -n ${LAB_PIDFILE:-} ]] && echo "$pid" >>"$LAB_PIDFILE"
    LAB_SPAWNED_PID=$pid
}

# Stops the given pids (their process groups): SIGTERM, then SIGKILL after a grace period.
lab_stop_pids() {
    local grace=${LAB_STOP_GRACE:-5} pid
    (($# > 0)) || return 0
    for pid in "$@"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
    local deadline=$((SECONDS + grace)) any
    while ((SECONDS < deadline)); do
        any=0
        for pid in "$@"; do lab_alive "$pid" && any=1; done
        ((any)) || break
        sleep 0.1
    done
    for pid in "$@"; do
        if lab_alive "$pid"; then
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}

# Pids of the processes inside the given namespaces (one pass over /proc for all of them).
lab_ns_pids() {
    (($# > 0)) || return 0
    local inodes
    inodes=$(cd /run/netns 2>/dev/null && stat -L -c '%i' "$@" 2>/dev/null) || true
    [[ -n $inodes ]] || return 0
    find /proc -maxdepth 3 -path '/proc/[0-9]*/ns/net' -printf '%h %l\n' 2>/dev/null |
        awk -v list="$inodes" 'BEGIN { n = split(list, a, "\n"); for (i = 1; i <= n; i++) want["net:[" a[i] "]"] = 1 }
            ($2 in want) { split($1, p, "/"); print p[3] }'
}

# Kills every process inside the given namespaces (SIGTERM, SIGKILL after 3 s), then deletes
# the namespaces, which deletes their veths and bridges.
lab_delete_ns() {
    (($# > 0)) || return 0
    local pids=() p
    mapfile -t pids < <(lab_ns_pids "$@")
    if ((${#pids[@]} > 0)); then
        for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
        local deadline=$((SECONDS + 3)) any
        while ((SECONDS < deadline)); do
            any=0
            for p in "${pids[@]}"; do lab_alive "$p" && any=1; done
            ((any)) || break
            sleep 0.1
        done
        for p in "${pids[@]}"; do lab_alive "$p" && kill -KILL "$p" 2>/dev/null; done
    fi
    printf 'netns del %s\n' "$@" | ip -force -batch - 2>/dev/null || true
}

lab_down() {
    local nss=()
    mapfile -t nss < <(lab_existing_ns)
    if ((${#nss[@]} == 0)); then
        lab_log "no namespaces for lab '$LAB_ID'"
        return 0
    fi
    lab_delete_ns "${nss[@]}"
    local left
    left=$(lab_existing_ns)
    [[ -z $left ]] || lab_fail "could not delete: $left"
    lab_log "lab '$LAB_ID' removed (${#nss[@]} namespaces)"
}

# Every psl-* namespace (and its processes), every psl* link in the root namespace (the lab
# never makes one, but an interrupted older run might have), every work folder of a run that
# was not asked to be kept, and the cached delay forwarder binary.
lab_cleanup() {
    local nss=() links=() d
    mapfile -t nss < <(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${LAB_PREFIX}-" || true)
    ((${#nss[@]} == 0)) || lab_delete_ns "${nss[@]}"
    mapfile -t links < <(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' |
        grep -E "^${LAB_PREFIX}" || true)
    for d in "${links[@]}"; do ip link del "$d" 2>/dev/null || true; done
    for d in "${TMPDIR:-/tmp}/${LAB_PREFIX}"-*/; do
        [[ -f "$d/.psl-work" && ! -f "$d/.psl-keep" ]] || continue
        rm -rf --one-file-system "${d%/}"
    done
    rm -f "${TMPDIR:-/tmp}/${LAB_PREFIX}"-pid.* 2>/dev/null || true
    rm -rf --one-file-system "${TMPDIR:-/tmp}/${LAB_PREFIX}-bin" # the compiled delay forwarder
    local left
    left=$(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${LAB_PREFIX}-" || true)
    [[ -z $left ]] || lab_fail "could not delete: $left"
    lab_log "cleanup: ${#nss[@]} namespaces, ${#links[@]} links removed"
}

# ----------------------------------------------------------------------------------------------
# run

# lab_make_payload DIR MB: a release payload folder: data/patch.bin (MB MiB of random bytes) and
# install.sh, which leaves a marker in the endpoint's state folder with the time it ran: `run`
# waits for the marker and takes an endpoint's time from it, not from when polling noticed.
lab_make_payload() {
    local dir=$1 mb=$2
    mkdir -p "$dir/data"
    head -c $((mb * 1048576)) /dev/urandom >"$dir/data/patch.bin"
    cat >"$dir/install.sh" <<'EOF'
#!/bin/sh
echo "installed $PATCHSWARM_RELEASE_ID at $(date +%s.%N)" >>"$PATCHSWARM_STATE_DIR/installed-$PATCHSWARM_RELEASE_ID"
exit 0
EOF
    chmod +x "$dir/install.sh"
}

# lab_payload_bytes DIR: the payload's size in bytes (every regular file in it).
lab_payload_bytes() {
    find "$1" -type f -printf '%s\n' | awk '{ t += $1 } END { printf "%d", t }'
}

run_find_binaries() {
    local d
    local dirs=()
    [[ -n $RUN_BIN_DIR ]] && dirs+=("$RUN_BIN_DIR")
    dirs+=("$LAB_SCRIPT_DIR/../../build")
    if [[ -z $RUN_SEEDER_BIN ]]; then
        for d in "${dirs[@]}"; do
            for f in "$d/seeder/patchswarm-seeder" "$d/patchswarm-seeder"; do
                [[ -z $RUN_SEEDER_BIN && -x $f ]] && RUN_SEEDER_BIN=$f
            done
        done
        [[ -z $RUN_SEEDER_BIN ]] && RUN_SEEDER_BIN=$(command -v patchswarm-seeder || true)
    fi
    if [[ -z $RUN_DAEMON_BIN ]]; then
        for d in "${dirs[@]}"; do
            for f in "$d/daemon/patchswarmd" "$d/patchswarmd"; do
                [[ -z $RUN_DAEMON_BIN && -x $f ]] && RUN_DAEMON_BIN=$f
            done
        done
        [[ -z $RUN_DAEMON_BIN ]] && RUN_DAEMON_BIN=$(command -v patchswarmd || true)
    fi
    [[ -n $RUN_SEEDER_BIN && -x $RUN_SEEDER_BIN ]] ||
        lab_usage_error "patchswarm-seeder not found (--bin-dir, --seeder-bin or PATCHSWARM_SEEDER_BIN)"
    [[ -n $RUN_DAEMON_BIN && -x $RUN_DAEMON_BIN ]] ||
        lab_usage_error "patchswarmd not found (--bin-dir, --daemon-bin or PATCHSWARM_DAEMON_BIN)"
    RUN_SEEDER_BIN=$(realpath "$RUN_SEEDER_BIN")
    RUN_DAEMON_BIN=$(realpath "$RUN_DAEMON_BIN")
}

# The EXIT trap of `run`: stop what it started, delete its namespaces, remove its work folder.
run_teardown() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    local td
    td=$(date +%s.%N)
    # Every process it started (recorded pids), and any background job whose pid was not
    # recorded yet (a signal during lab_spawn); then whatever still runs in the namespaces.
    local jobs_left=()
    mapfile -t jobs_left < <(jobs -p)
    if ((${#LAB_PIDS[@]} + ${#jobs_left[@]} > 0)); then
        lab_stop_pids "${LAB_PIDS[@]}" "${jobs_left[@]}"
    fi
    local nss=()
    mapfile -t nss < <(lab_existing_ns)
    ((${#nss[@]} == 0)) || lab_delete_ns "${nss[@]}"
    if [[ -n ${RUN_WORK:-} && -d $RUN_WORK ]]; then
        if ((RUN_KEEP)); then
            touch "$RUN_WORK/.psl-keep"
            lab_log "work folder kept: $RUN_WORK"
        else
            rm -rf --one-file-system "$RUN_WORK"
        fi
    fi
    lab_log "torn down in $(lab_since "$td") s"
    exit "$rc"
}

# Whether the seeder answers on HTTP (from inside HQ).
run_seeder_ready() {
    # shellcheck disable=SC2016
    ip netns exec "${LAB_NSP}hq" timeout 2 bash -c '
        exec 3<>/dev/tcp/10.77.0.2/8080 || exit 1
        printf "GET /healthz HTTP/1.0\r\nHost: hq\r\n\r\n" >&3
        read -r line <&3 && [[ $line == *" 200 "* ]]' 2>/dev/null
}

# run_status_json STATE_DIR RELEASE: sets RUN_JS to RELEASE's entry of the endpoint's status
# document ('' if unreadable or not there). Entries are flat objects, so the entry is what lies
# between the last '{' before its "id" and the first '}' after it.
run_status_json() {
    RUN_JS=$("$RUN_DAEMON_BIN" status --state-dir "$1" --json 2>/dev/null) || RUN_JS=""
    local key="\"id\":\"$2\""
    if [[ $RUN_JS == *"$key"* ]]; then
        local pre=${RUN_JS%%"$key"*} post=${RUN_JS#*"$key"}
        RUN_JS="{${pre##*\{}$key${post%%\}*}}"
    else
        RUN_JS=""
    fi
}

# run_json_field JSON KEY: prints the first string or integer value of "KEY" in JSON ('' if
# none). Enough for the flat status document of one release; no jq or python needed.
run_json_field() {
    local re="\"$2\":(\"([^\"]*)\"|([0-9]+))"
    if [[ $1 =~ $re ]]; then
        echo "${BASH_REMATCH[2]}${BASH_REMATCH[3]}"
    fi
}

run_state_reached() {
    local st=$1
    if [[ $RUN_UNTIL == effective ]]; then
        [[ $st == effective ]]
    else
        [[ $st == verified || $st == waiting || $st == installing || $st == reboot_pending ||
            $st == effective ]]
    fi
}

# /proc/stat: "busy total" jiffies summed over all cores.
run_cpu_sample() {
    awk '/^cpu /{t=0; for(i=2;i<=NF;i++) t+=$i; print t-$5-$6, t; exit}' /proc/stat
}

# run_cpu_busy_percent SAMPLE0 SAMPLE1: the machine's CPU busy share between two run_cpu_sample
# readings, in percent.
run_cpu_busy_percent() {
    awk -v a="$1" -v b="$2" 'BEGIN{split(a, x, " "); split(b, y, " ");
        dt = y[2] - x[2]; v = 0; if (dt > 0) v = 100 * (y[1] - x[1]) / dt; printf "%.0f", v}'
}

# utime+stime (seconds) summed over the given processes (those still there).
run_cpu_seconds_of() {
    local files=() p
    for p in "$@"; do [[ -r /proc/$p/stat ]] && files+=("/proc/$p/stat"); done
    ((${#files[@]} > 0)) || {
        echo 0
        return 0
    }
    awk -v hz="$(getconf CLK_TCK)" '{ t += $14 + $15 } END { printf "%.2f", t / hz }' "${files[@]}" 2>/dev/null ||
        echo 0
}

lab_run() {
    run_find_binaries
    local serve_help daemon_help
    serve_help=$("$RUN_SEEDER_BIN" serve --help 2>&1 || true)
    daemon_help=$("$RUN_DAEMON_BIN" run --help 2>&1 || true)
    local seeder_sites=false endpoint_ranges=false endpoint_wan_limit=false
    grep -qE -- '--site( |$)' <<<"$serve_help" && seeder_sites=true
    grep -qE -- '--site-ranges' <<<"$daemon_help" && endpoint_ranges=true
    grep -qE -- '--wan-limit' <<<"$daemon_help" && endpoint_wan_limit=true
    # Enrolment (SSL torrents, enrolled endpoints only) whenever the binaries support it, unless
    # LAB_ENROL=0 (e.g. to compare with plain torrents).
    local enrolment=false
    if [[ ${LAB_ENROL:-1} != 0 ]] && grep -qE -- '--enroll-token' <<<"$daemon_help" &&
        "$RUN_SEEDER_BIN" ca --help >/dev/null 2>&1; then
        enrolment=true
    fi
    if [[ -n $RUN_WAN_LIMIT && $endpoint_wan_limit == false ]]; then
        lab_usage_error "--wan-limit: this patchswarmd has no --wan-limit option"
    fi

    lab_assert_free
    local work=${RUN_WORK_DIR:-${TMPDIR:-/tmp}/${LAB_PREFIX}-${LAB_ID}}
    [[ ! -e $work ]] || lab_usage_error "work folder exists: $work"
    mkdir -p "$(dirname "$work")"
    mkdir "$work" || lab_fail "cannot create the work folder $work"
    RUN_WORK=$(realpath "$work")
    LAB_PIDS=()
    trap run_teardown EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    touch "$RUN_WORK/.psl-work"
    LAB_PIDFILE=$RUN_WORK/pids
    LAB_PID_DIR=$RUN_WORK
    LAB_LOG_DIR=$RUN_WORK/logs
    mkdir -p "$RUN_WORK/keys" "$RUN_WORK/logs" "$RUN_WORK/ep"

    # Root and release keys, the repository's root document (1 of 1 each), and a random payload
    # whose install script leaves a marker.
    local rel="LAB-${LAB_ID}" k
    for k in root release; do
        "$RUN_SEEDER_BIN" keygen --out "$RUN_WORK/keys/$k" >>"$RUN_WORK/logs/keygen.log" 2>&1 ||
            lab_fail "keygen failed: $(cat "$RUN_WORK/logs/keygen.log")"
    done
    local no_ca=()
    # root init makes a fleet CA unless told not to (older binaries have no such flag).
    [[ $enrolment == false ]] && "$RUN_SEEDER_BIN" root init --help 2>&1 | grep -q -- --no-fleet-ca &&
        no_ca=(--no-fleet-ca)
    "$RUN_SEEDER_BIN" root init --repo "$RUN_WORK/repo" --root-pub "$RUN_WORK/keys/root.pub" \
        --release-pub "$RUN_WORK/keys/release.pub" --key "$RUN_WORK/keys/root.key" "${no_ca[@]}" \
        >"$RUN_WORK/logs/root.log" 2>&1 ||
        lab_fail "root init failed: $(cat "$RUN_WORK/logs/root.log")"
    local enrol_token=""
    if [[ $enrolment == true ]]; then
        "$RUN_SEEDER_BIN" ca init --repo "$RUN_WORK/repo" >"$RUN_WORK/logs/ca.log" 2>&1 ||
            lab_fail "ca init failed: $(cat "$RUN_WORK/logs/ca.log")"
        enrol_token=$("$RUN_SEEDER_BIN" token create --repo "$RUN_WORK/repo" \
            --uses $((LAB_SITES * LAB_HOSTS)) --label lab 2>>"$RUN_WORK/logs/ca.log") ||
            lab_fail "token create failed: $(cat "$RUN_WORK/logs/ca.log")"
    fi
    local pl="$RUN_WORK/payload/KB-LAB"
    if [[ -n $RUN_PAYLOAD_DIR ]]; then
        mkdir -p "$RUN_WORK/payload"
        cp -a "$RUN_PAYLOAD_DIR" "$pl" || lab_fail "cannot copy $RUN_PAYLOAD_DIR"
    else
        lab_make_payload "$pl" "$RUN_PAYLOAD_MB"
    fi
    local payload_bytes
    payload_bytes=$(lab_payload_bytes "$pl")
    # run_publish ID PAYLOAD_DIR LOG
    run_publish() {
        "$RUN_SEEDER_BIN" publish --repo "$RUN_WORK/repo" --key "$RUN_WORK/keys/release.key" \
            --id "$1" --payload "$2" --install ./install.sh --severity emergency --reboot none \
            >"$3" 2>&1 || lab_fail "publish failed: $(cat "$3")"
    }
    # The release every endpoint waits for first: the measured one, or a 1 KiB warm-up.
    local first_rel=$rel
    if ((RUN_WARM)); then
        first_rel="LAB-${LAB_ID}-warm"
        mkdir -p "$RUN_WORK/payload/KB-WARM"
        head -c 1024 /dev/urandom >"$RUN_WORK/payload/KB-WARM/warm.bin"
        cp -a "$pl/install.sh" "$RUN_WORK/payload/KB-WARM/install.sh"
        run_publish "$first_rel" "$RUN_WORK/payload/KB-WARM" "$RUN_WORK/logs/publish-warm.log"
    else
        run_publish "$rel" "$pl" "$RUN_WORK/logs/publish.log"
    fi

    lab_log "building lab '$LAB_ID': $LAB_SITES sites x $LAB_HOSTS hosts, WAN $LAB_WAN_RATE"
    local tb
    tb=$(date +%s.%N)
    lab_build
    lab_log "lab built in $(lab_since "$tb") s"
    lab_describe >"$RUN_WORK/lab.json"

    # Seeder at HQ.
    local serve=("$RUN_SEEDER_BIN" serve --repo "$RUN_WORK/repo" --http 10.77.0.2:8080
        --bt 10.77.0.2:6881)
    local s h
    if [[ $seeder_sites == true ]]; then
        for ((s = 1; s <= LAB_SITES; s++)); do serve+=(--site "site$s=10.77.$s.0/24"); done
    fi
    serve+=("${RUN_SEEDER_OPTS[@]}")
    lab_spawn "${LAB_NSP}hq" "$RUN_WORK/logs/seeder.log" "${serve[@]}"
    local seeder_pid=$LAB_SPAWNED_PID
    local deadline=$((SECONDS + 30))
    until run_seeder_ready; do
        lab_alive "$seeder_pid" || lab_fail "seeder exited: $(tail -n 20 "$RUN_WORK/logs/seeder.log")"
        ((SECONDS < deadline)) || lab_fail "seeder not answering on 10.77.0.2:8080 after 30 s"
        sleep 0.2
    done

    # Counters, CPU and the clock start now, or (warm fleet) just before the measured publish.
    declare -A wan_rx0 wan_tx0
    local ifc rx tx cpu0 t0 publish_seconds=null
    run_mark_start() {
        while read -r ifc rx tx; do
            wan_rx0[$ifc]=$rx
            wan_tx0[$ifc]=$tx
        done < <(lab_read_counters)
        cpu0=$(run_cpu_sample)
        t0=$(date +%s.%N)
    }
    ((RUN_WARM)) || run_mark_start

    local -A ep_dir ep_pid ep_done
    local n_total=$((LAB_SITES * LAB_HOSTS))
    for ((s = 1; s <= LAB_SITES; s++)); do
        for ((h = 1; h <= LAB_HOSTS; h++)); do
            local name="s${s}h$h" ip
            ip=10.77.$s.$((9 + h))
            ep_dir[$name]="$RUN_WORK/ep/$name"
            local agent=("$RUN_DAEMON_BIN" run --state-dir "${ep_dir[$name]}"
                --seeder http://10.77.0.2:8080 --trust "$RUN_WORK/repo/root/1.json"
                --bt "$ip:6881" --heartbeat 2 --name "$name")
            [[ $endpoint_ranges == true ]] && agent+=(--site-ranges "10.77.$s.0/24")
            [[ -n $enrol_token ]] && agent+=(--enroll-token "$enrol_token")
            [[ -n $RUN_WAN_LIMIT ]] && agent+=(--wan-limit "$RUN_WAN_LIMIT")
            agent+=("${RUN_DAEMON_OPTS[@]}")
            lab_spawn "${LAB_NSP}$name" "$RUN_WORK/logs/$name.log" "${agent[@]}"
            ep_pid[$name]=$LAB_SPAWNED_PID
        done
    done
    if ((RUN_WARM)); then
        lab_log "seeder and $n_total endpoints started; waiting until all installed the warm-up release"
        local warm_deadline=$((SECONDS + RUN_TIMEOUT)) n_warm=0
        while ((n_warm < n_total)); do
            n_warm=0
            for name in "${!ep_dir[@]}"; do
                [[ -e ${ep_dir[$name]}/installed-$first_rel ]] && n_warm=$((n_warm + 1))
                lab_alive "${ep_pid[$name]}" || lab_fail "$name exited during the warm-up: $(tail -n 5 "$RUN_WORK/logs/$name.log")"
            done
            ((SECONDS < warm_deadline)) || lab_fail "only $n_warm/$n_total endpoints installed the warm-up release"
            ((n_warm < n_total)) && sleep 0.5 # polling interval, not synchronisation
        done
        lab_log "fleet warm: publishing the measured release"
        run_mark_start
        run_publish "$rel" "$pl" "$RUN_WORK/logs/publish.log"
        publish_seconds=$(lab_since "$t0")
        t0=$(date +%s.%N)
    fi
    ((RUN_WARM)) || lab_log "seeder and $n_total endpoints started"
    lab_log "waiting until all endpoints have $rel $RUN_UNTIL (timeout ${RUN_TIMEOUT}s)"

    # Wait: poll the endpoints that are not done yet (a marker file first, it costs nothing).
    local n_done=0 n_dead=0 load_max=0 next_report=$((SECONDS + 10)) result=ok name st l1 js
    # The install marker holds the time install.sh ran (right after the payload was verified),
    # so an endpoint's time does not depend on how fast this loop notices. `patchswarmd status`
    # costs a process start and is asked only to confirm `effective`, or every 10th round for an
    # endpoint without a marker (verified but held back from installing).
    local start=$SECONDS round=0 marker mt
    local -A ep_state
    while ((n_done < n_total)); do
        n_dead=0
        round=$((round + 1))
        for name in "${!ep_dir[@]}"; do
            [[ -n ${ep_done[$name]:-} ]] && continue
            if ! lab_alive "${ep_pid[$name]}"; then
                ep_state[$name]=exited
                n_dead=$((n_dead + 1))
                continue
            fi
            marker=${ep_dir[$name]}/installed-$rel
            mt=""
            if [[ -e $marker ]]; then
                mt=$(awk 'END { print $NF }' "$marker")
                [[ $mt =~ ^[0-9]+\.[0-9]+$ ]] || mt=""
            fi
            if [[ -n $mt && $RUN_UNTIL == verified ]]; then
                st=installed # installing ran, so the payload was verified
            elif [[ -n $mt ]] || [[ $RUN_UNTIL == verified && $((round % 10)) == 1 ]]; then
                run_status_json "${ep_dir[$name]}" "$rel"
                st=$(run_json_field "$RUN_JS" state)
            else
                continue
            fi
            ep_state[$name]=${st:-unknown}
            if [[ $st == installed ]] || run_state_reached "$st"; then
                if [[ -n $mt ]]; then
                    ep_done[$name]=$(awk -v a="$t0" -v b="$mt" 'BEGIN { printf "%.1f", b - a }')
                else
                    ep_done[$name]=$(lab_since "$t0")
                fi
                n_done=$((n_done + 1))
            fi
        done
        read -r l1 _ </proc/loadavg
        if ((10#${l1/./} > 10#${load_max/./})); then load_max=$l1; fi
        ((n_done < n_total)) || break
        if ((n_done + n_dead == n_total)); then
            result=failed
            lab_log "$n_dead endpoint(s) exited"
            break
        fi
        if ((SECONDS - start >= RUN_TIMEOUT)); then
            result=timeout
            break
        fi
        if ((SECONDS >= next_report)); then
            lab_log "$n_done/$n_total $RUN_UNTIL after $((SECONDS - start)) s (load $l1)"
            next_report=$((SECONDS + 10))
        fi
        sleep 0.5 # polling interval, not synchronisation
    done
    local t_end
    t_end=$(date +%s.%N)
    local elapsed
    elapsed=$(awk -v a="$t0" -v b="$t_end" 'BEGIN{printf "%.1f", b - a}')
    lab_log "waited $elapsed s: $n_done/$n_total $RUN_UNTIL"
    if [[ $result == ok ]]; then
        # The time is the last endpoint's (from its marker), not when this loop noticed it.
        elapsed=$(printf '%s\n' "${ep_done[@]}" | sort -g | tail -n 1)
    fi
    local cpu1
    cpu1=$(run_cpu_sample)

    # Results.
    local -A wan_in wan_out
    while read -r ifc rx tx; do
        wan_out[$ifc]=$((rx - ${wan_rx0[$ifc]:-0}))
        wan_in[$ifc]=$((tx - ${wan_tx0[$ifc]:-0}))
    done < <(lab_read_counters)
    local cpu_seeder cpu_eps
    cpu_seeder=$(run_cpu_seconds_of "$seeder_pid")
    cpu_eps=$(run_cpu_seconds_of "${ep_pid[@]}")
    local from_peers=0 from_seeder=0 fp fs
    local -A states
    for name in "${!ep_dir[@]}"; do
        run_status_json "${ep_dir[$name]}" "$rel"
        js=$RUN_JS
        st=$(run_json_field "$js" state)
        [[ -n $st ]] || st=${ep_state[$name]:-unknown}
        if [[ $st == unknown ]] && ! lab_alive "${ep_pid[$name]}"; then st=exited; fi
        states[$st]=$((${states[$st]:-0} + 1))
        fp=$(run_json_field "$js" bytes_from_peers)
        fs=$(run_json_field "$js" bytes_from_seeder)
        from_peers=$((from_peers + ${fp:-0}))
        from_seeder=$((from_seeder + ${fs:-0}))
    done
    local busy
    busy=$(run_cpu_busy_percent "$cpu0" "$cpu1")
    local cores load_now
    cores=$(nproc)
    read -r load_now _ </proc/loadavg
    local cpu_note="machine CPU busy ${busy}% of $cores cores during the run, load average (1 min) peak $load_max"
    if ((busy >= 90)); then
        cpu_note+=": CPU-saturated (the whole machine, other processes included), so times include CPU contention"
    fi

    local out
    out="{\"result\":\"$result\",\"id\":\"$LAB_ID\",\"sites\":$LAB_SITES,\"hosts\":$LAB_HOSTS"
    out+=",\"endpoints\":$n_total,\"wan_rate\":\"$LAB_WAN_RATE\",\"wan_delay\":\"$LAB_WAN_DELAY\""
    out+=",\"wan_delay_applied\":$LAB_DELAY_APPLIED,\"wan_delay_method\":\"$LAB_DELAY_METHOD\""
    [[ -n $LAB_DELAY_NOTE ]] && out+=",\"wan_delay_note\":\"$LAB_DELAY_NOTE\""
    out+=",\"wan_loss_percent\":$LAB_WAN_LOSS,\"wan_loss_applied\":$LAB_LOSS_APPLIED"
    out+=",\"payload_bytes\":$payload_bytes,\"until\":\"$RUN_UNTIL\",\"seconds\":$elapsed"
    out+=",\"warm_fleet\":$( ((RUN_WARM)) && echo true || echo false),\"publish_seconds\":$publish_seconds"
    out+=",\"done\":$n_done,\"states\":{"
    local first=1 k
    for k in $(printf '%s\n' "${!states[@]}" | sort); do
        ((first)) || out+=","
        first=0
        out+="\"$k\":${states[$k]}"
    done
    out+="},\"site_aware\":{\"seeder_site\":$seeder_sites,\"endpoint_site_ranges\":$endpoint_ranges"
    out+=",\"endpoint_wan_limit\":${RUN_WAN_LIMIT:-null}}"
    out+=",\"per_site\":["
    local sum_in=0 sum_out=0
    for ((s = 1; s <= LAB_SITES; s++)); do
        ((s > 1)) && out+=","
        local in=${wan_in[s$s]:-0} o=${wan_out[s$s]:-0} site_t=0 done_s=0
        sum_in=$((sum_in + in))
        sum_out=$((sum_out + o))
        for ((h = 1; h <= LAB_HOSTS; h++)); do
            local dt=${ep_done[s${s}h$h]:-}
            [[ -n $dt ]] || continue
            done_s=$((done_s + 1))
            site_t=$(awk -v a="$site_t" -v b="$dt" 'BEGIN { m = a; if (b > a) m = b; print m }')
        done
        out+="{\"site\":\"site$s\",\"done\":$done_s,\"seconds\":$site_t"
        out+=",\"wan_in_bytes\":$in,\"wan_out_bytes\":$o"
        out+=",\"wan_in_ratio\":$(awk -v a="$in" -v p="$payload_bytes" 'BEGIN{printf "%.3f", a / p}')"
        out+=",\"wan_out_ratio\":$(awk -v a="$o" -v p="$payload_bytes" 'BEGIN{printf "%.3f", a / p}')}"
    done
    out+="],\"wan_in_bytes_total\":$sum_in,\"wan_out_bytes_total\":$sum_out"
    out+=",\"bytes_from_peers\":$from_peers,\"bytes_from_seeder\":$from_seeder"
    out+=",\"cpu\":{\"cores\":$cores,\"busy_percent\":$busy,\"loadavg_1m_peak\":$load_max"
    out+=",\"loadavg_1m_end\":$load_now,\"cpu_seconds_seeder\":$cpu_seeder"
    out+=",\"cpu_seconds_endpoints\":$cpu_eps,\"note\":\"$cpu_note\"}"
    out+=",\"work_dir\":\"$RUN_WORK\",\"kept\":$( ((RUN_KEEP)) && echo true || echo false)}"

    if [[ $result != ok ]]; then
        lab_log "not all endpoints reached '$RUN_UNTIL' within ${RUN_TIMEOUT}s"
        lab_log "--- seeder.log (tail)"
        tail -n 15 "$RUN_WORK/logs/seeder.log" >&2 || true
        for name in "${!ep_dir[@]}"; do
            [[ -z ${ep_done[$name]:-} ]] || continue
            lab_log "--- $name.log (tail)"
            tail -n 15 "$RUN_WORK/logs/$name.log" >&2 || true
            break
        done
    fi
    echo "$out"
    [[ $result == ok ]]
}

# ----------------------------------------------------------------------------------------------

lab_main() {
    (($# > 0)) || {
        lab_help >&2
        exit 2
    }
    local cmd=$1
    shift
    lab_set_defaults
    case $cmd in
        -h | --help | help) lab_help ;;
        --cleanup | cleanup)
            (($# == 0)) || lab_usage_error "--cleanup takes no options"
            lab_require_env
            lab_cleanup
            ;;
        check)
            (($# == 0)) || lab_usage_error "check takes no options"
            lab_check
            ;;
        up)
            lab_parse_options up "$@"
            lab_require_env
            lab_assert_free
            trap 'rc=$?; if ((rc != 0)); then lab_down >/dev/null 2>&1; fi' EXIT
            trap 'exit 130' INT
            trap 'exit 143' TERM
            lab_build
            lab_describe
            ;;
        down)
            lab_parse_options down "$@"
            lab_require_env
            lab_down
            ;;
        counters)
            lab_parse_options counters "$@"
            lab_require_env
            lab_counters_json
            ;;
        run)
            lab_parse_options run "$@"
            lab_require_env
            lab_run
            ;;
        *) lab_usage_error "unknown command '$cmd'" ;;
    esac
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    lab_main "$@"
fi
