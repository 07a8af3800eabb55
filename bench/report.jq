# Markdown report of bench/bench.sh from its JSON lines (jq -s: an array of them).
# Arguments: $wan (WAN rate, bit/s), $lan (measured LAN rate, bytes/s), $date, $cmd, $rate,
# $delay, $main_hosts, $main_bytes.
#
# T_min for one run, with F the payload bytes, S sites, N endpoints, w = $wan/8 and l = $lan:
#   T_min = max(F/w + F/l, N*F / (u_seeder + sum u_endpoints))
# The seeder's upload reaches the sites only through their WAN links (u_seeder = S*w); every
# endpoint can upload at LAN rate (u_endpoint = l).

def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
    else (.[length / 2 - 1] + .[length / 2]) / 2 end;
def r1: if . == null then "–" else (. * 10 | round / 10 | tostring) end;
def r2: if . == null then "–" else (. * 100 | round / 100 | tostring) end;
def tmin: (.payload_bytes) as $f | ($wan / 8) as $w
    | ([$f / $w + $f / $lan, .endpoints * $f / (.sites * $w + .endpoints * $lan)] | max);
def wan_ratios: . as $r | [.per_site[]? | .wan_in_bytes / $r.payload_bytes];
def ok: map(select(.result == "ok"));
def modes: ["patchswarm", "bittorrent", "http"];
def short_label: {patchswarm: "patchswarm", bittorrent: "BitTorrent", http: "HTTP direct"}[.];
def mode_label: {patchswarm: "patchswarm", bittorrent: "plain BitTorrent (aria2c + opentracker, v1)",
    http: "HTTP direct (busybox httpd + curl)"}[.];

. as $all
| ($all | map(select(.probe == null))) as $runs
| ($runs | map(select(.scenario == "main"))) as $main
| ($runs | map(select(.scenario == "sweep"))) as $sweep
| ($main | ok | first // null) as $m0
| [
    "### Run of \($date)",
    "",
    "Command: `\($cmd)`",
    "",
    "WAN \($rate) each way (\($wan) bit/s = \($wan / 8 | round) B/s), one-way delay \($delay); " +
    "LAN measured at \($lan | round) B/s (\($lan * 8 / 1e6 | r1) Mbit/s: curl between two hosts of one site, median of 3).",
    "",
    (if $m0 != null then
        "Main scenario: \($m0.sites) sites × \($m0.hosts) endpoints, payload \($m0.payload_bytes) bytes; " +
        "T_min = max(\($m0.payload_bytes)/\($wan / 8 | round) + \($m0.payload_bytes)/\($lan | round), " +
        "\($m0.endpoints)·\($m0.payload_bytes)/(\($m0.sites)·\($wan / 8 | round) + \($m0.endpoints)·\($lan | round))) " +
        "= **\($m0 | tmin | r1) s**."
     else "Main scenario: no successful run." end),
    "",
    "| contender | runs ok | time to all verified, median (s) | × T_min | WAN in per site / payload, median (min–max over sites and runs) | CPU busy (median) |",
    "|---|---|---|---|---|---|",
    (modes[] as $mode
     | ($main | map(select(.mode == $mode))) as $rs
     | select($rs | length > 0)
     | ($rs | ok) as $okr
     | ($okr | map(.seconds) | median) as $t
     | ($okr | map(wan_ratios | max) | median) as $wmed
     | ($okr | map(wan_ratios[]) ) as $wall
     | "| \($mode | mode_label) | \($okr | length)/\($rs | length) | \($t | r1) | " +
       "\(if $t == null then "–" else ($t / ($okr[0] | tmin) | r2) end) | " +
       "\($wmed | r2) (\($wall | min | r2)–\($wall | max | r2)) | " +
       "\($okr | map(.cpu_busy_percent) | median | r1) % |"),
    "",
    (if ($sweep | length) > 0 then
        ("Scaling sweep: \($sweep[0].sites) sites, payload \($sweep[0].payload_bytes) bytes; " +
         "time to all verified in s (× T_min), and the largest per-site WAN in / payload."),
        "",
        "| endpoints per site | T_min (s) | " + ([modes[] | "\(short_label) s (× T_min) | WAN ×"] | join(" | ")) + " |",
        "|---|---|" + ([modes[] | "---|---|"] | join("")),
        ($sweep | map(.hosts) | unique | .[] as $h
         | ($sweep | map(select(.hosts == $h))) as $rs
         | ($rs | ok | first // null) as $any
         | "| \($h) | \(if $any == null then "–" else ($any | tmin | r1) end) | " +
           ([modes[] as $mode
             | ($rs | map(select(.mode == $mode)) | ok | first // null) as $r
             | if $r == null then
                 (($rs | map(select(.mode == $mode)) | first // {result: "not run"}).result) + " | –"
               else "\($r.seconds | r1) (\($r.seconds / ($r | tmin) | r2)) | \($r | wan_ratios | max | r2)" end]
            | join(" | ")) + " |")
     else empty end)
  ]
| join("\n")
