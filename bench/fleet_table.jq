# Markdown table of bench/fleet.sh's JSON lines (jq -rs: an array of them). One row per run.
def ph($n): ((.fleetsim.phases // []) | map(select(.name == $n)) | .[0]);
def r0: if . == null then "–" else (. | round | tostring) end;
def r1: if . == null then "–" else (. * 10 | round / 10 | tostring) end;
def r2: if . == null then "–" else (. * 100 | round / 100 | tostring) end;
def dist: if . == null or .count == 0 then "–" else "\(.p50 | r0) / \(.p99 | r0) / \(.max | r0)" end;
def mib: if . == null or . == 0 then "–" else (. / 1024 | r0) end;

"| endpoints | told (of held) | enrol/s | publish → told p50/p99/max ms | storm reports/s: offered, accepted (peak s) | failed / lost | probe during storm p99 ms | restart: all back and reported s | seeder CPU s per 1k per min | seeder RSS max MiB | status --json s | nginx fan-out p50/p99/max ms | nginx CPU s per 1k per min | nginx RSS MiB |",
"|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
(.[] | . as $r
 | (ph("publish")) as $p | (ph("storm")) as $s | (ph("restart")) as $x | (ph("hold")) as $h
 | "| \(.endpoints)\(if .max_connections_flag then "" else " (no --max-connections)" end) | \($p.told // "–") (\(.fleetsim.setup.got_feed // "–")) | \(.fleetsim.enrolment.enrolments_per_s | r1) | \($p.publish_to_told_ms | dist) | \($s.offered_reports_per_s | r0), \($s.reports_ok_per_s | r0) (\($s.peak_reports_ok_per_s | r0)) | \($s.reports_failed // "–") / \(.fleetsim.fleet_db.lost // "–") | \($s.probe_ms.p99 | r1) | \(if $x == null then "–" elif ($x.completed) then ($x.all_back_and_reported_s | r1) else "not all (\($x.not_reconnected) not back, \($x.not_reported) not reported)" end) | \($h.seeder_cpu_s_per_1000_per_min | r2) | \(.fleetsim.seeder_rss_max_kib | mib) | \(.status_json_s | r2) | \(.nginx.fanout_ms | dist) | \(.nginx.cpu_s_per_1000_per_min | r2) | \(.nginx.server_rss_max_kib | mib) |")
