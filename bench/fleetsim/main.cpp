// patchswarm-fleetsim: N simulated endpoints against a real `patchswarm-seeder serve`
// (simulator.hpp). main only parses the command line, raises the open-file limit and runs.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>

#include "crypto/crypto.hpp"
#include "io/fs.hpp"
#include "simulator.hpp"
#include "static_hold.hpp"

namespace {

// Each endpoint holds one long-poll and now and then a report, a manifest or an announce; the
// seeder on the same machine needs as many again. Root may raise the hard limit up to
// fs.nr_open; anyone may raise the soft limit up to the hard one.
void raise_fd_limit(int endpoints) {
    const rlim_t want = static_cast<rlim_t>(endpoints) * 3 + 1024;
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
    if (lim.rlim_cur >= want) return;
    rlim_t nr_open = want;
    if (std::ifstream f("/proc/sys/fs/nr_open"); f) f >> nr_open;
    rlimit raised = lim;
    raised.rlim_cur = std::min(want, nr_open);
    if (raised.rlim_max < raised.rlim_cur) raised.rlim_max = raised.rlim_cur;
    if (::setrlimit(RLIMIT_NOFILE, &raised) != 0) {
        raised.rlim_cur = lim.rlim_max;
        raised.rlim_max = lim.rlim_max;
        (void)::setrlimit(RLIMIT_NOFILE, &raised);
    }
    ::getrlimit(RLIMIT_NOFILE, &lim);
    if (lim.rlim_cur < want) {
        std::cerr << "fleetsim: warning: open-file limit " << lim.rlim_cur << " is below the "
                  << want << " that " << endpoints << " endpoints may need\n";
    }
}

}  // namespace

int main(int argc, char** argv) {
    patchswarm::fleetsim::Options o;
    patchswarm::fleetsim::StaticOptions so;
    std::string token_file;
    int static_hold_s = 30;
    CLI::App app{
        "patchswarm-fleetsim: plays N endpoints against a real `patchswarm-seeder serve` from one "
        "process, each with its own device key and loopback source address, speaking the agent's "
        "protocol (enrolment with a token, pinned-root update cycle, feed long-poll, manifests, "
        "tracker announces, heartbeats and state-change reports with real signatures and "
        "counters). Moves no payload bytes. Runs set-up (enrol, every endpoint holding a "
        "long-poll), then the --phase list, then writes a JSON summary.\n\n"
        "Phases: publish (runs `HOOK publish`, e.g. a real publish; measures publish -> every "
        "endpoint told), storm (every endpoint sends --storm-states as signed state changes "
        "within --storm-spread s), restart (runs `HOOK restart`, which restarts serve; measures "
        "until every endpoint is back and reported), hold:S (S seconds of steady state; the "
        "seeder's CPU per 1,000 endpoints per minute).\n\n"
        "Exit codes: 0 every phase completed; 1 a phase timed out, a hook failed or fleet.db "
        "lacks a report that got 200; 2 set-up failed (not every endpoint got a long-poll) or "
        "bad options."};
    auto* seeder =
        app.add_option("--seeder", o.seeder, "seeder base URL, e.g. http://127.0.0.1:18080");
    auto* trust = app.add_option("--trust", o.trust, "pinned root: the repository's root/1.json")
                      ->check(CLI::ExistingFile);
    auto* static_url = app.add_option(
        "--static-url", so.url,
        "baseline mode instead of the simulation: hold --endpoints keep-alive connections to "
        "this static file (http://IPv4:PORT/PATH, e.g. nginx), --static-hold s, then GET it on "
        "all at once; the fan-out time and, with --seeder-pid-file, the server's RSS and CPU");
    static_url->excludes(seeder)->excludes(trust);
    app.add_option("--static-hold", static_hold_s, "baseline: seconds to hold before the fan-out")
        ->capture_default_str();
    app.add_option("-n,--endpoints", o.endpoints, "simulated endpoints")
        ->capture_default_str()
        ->check(CLI::Range(1, 1'000'000));
    app.add_option("--source-base", o.source_base,
                   "first loopback source address (127.x.y.z); endpoint i binds the i-th after "
                   "it, skipping .0 and .255")
        ->capture_default_str();
    auto* token = app.add_option("--token", o.token, "enrolment token (pst_...): enrol first");
    app.add_option("--token-file", token_file, "file holding the enrolment token")->excludes(token);
    app.add_option("--enrol-concurrency", o.enrol_concurrency, "enrolments in flight at once")
        ->capture_default_str()
        ->check(CLI::Range(1, 100'000));
    app.add_option("--ramp", o.ramp_per_s, "update cycles started per second")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--poll-wait", o.poll_wait_s, "long-poll wait in seconds (as patchswarmd)")
        ->capture_default_str()
        ->check(CLI::Range(1, 60));
    app.add_option("--heartbeat", o.heartbeat_s,
                   "seconds between heartbeat reports; the first at a random phase")
        ->capture_default_str()
        ->check(CLI::Range(1, 86'400));
    app.add_option("--retry-jitter", o.retry_jitter,
                   "retries wait backoff*(1+-J); 0 = exactly the agent's 1,2,4..30 s")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 1.0));
    app.add_option("--phase", o.phases, "phases in order: publish, storm, restart, hold:S")
        ->take_all();
    app.add_option("--hook", o.hook,
                   "program run as `HOOK PHASE` at each phase start (and `HOOK done`); publish "
                   "and restart are measured from it (no shell; PATH is passed)")
        ->check(CLI::ExistingFile);
    app.add_option("--phase-timeout", o.phase_timeout_s, "seconds a phase may take")
        ->capture_default_str();
    app.add_option("--storm-spread", o.storm_spread_s,
                   "storm: endpoints start their state changes within this many seconds")
        ->capture_default_str();
    app.add_option("--storm-states", o.storm_states, "storm: the states each endpoint reports")
        ->delimiter(',')
        ->capture_default_str();
    app.add_option("--storm-step-ms", o.storm_step_ms,
                   "storm: milliseconds between one endpoint's state changes")
        ->capture_default_str();
    app.add_option("--probe-interval-ms", o.probe_interval_ms,
                   "a GET /v1/feed (answered at once) this often, its latency per phase; 0: off")
        ->capture_default_str();
    app.add_option("--probe-address", o.probe_address, "source address of the probe")
        ->capture_default_str();
    app.add_option("--seeder-pid-file", o.seeder_pid_file,
                   "file holding the seeder's pid (re-read at each sample): its RSS, CPU "
                   "seconds and open fds per phase");
    app.add_option("--fleet-db", o.fleet_db,
                   "the seeder's fleet.db: at the end, check that every report that got 200 is "
                   "there (counter and states)");
    app.add_option("-o,--out", o.out, "JSON summary file (default: stdout)");
    app.add_option("--endpoint-log", o.endpoint_log,
                   "one JSON line per endpoint: feeds seen (sequence, unix ms), reports, errors");
    app.add_flag("!--no-verify-cache", o.verify_cache,
                 "verify every signature per endpoint (by default identical signed bytes are "
                 "verified once per process, so the simulator's CPU goes to the network)");
    app.add_option("--label", o.label, "free text copied into the summary");
    CLI11_PARSE(app, argc, argv);
    try {
        patchswarm::crypto::init();
        if (!token_file.empty()) {
            auto t = patchswarm::io::read_file(token_file, 1024);
            if (!t) throw std::runtime_error("--token-file: " + t.error().message);
            o.token = *t;
            while (!o.token.empty() && (o.token.back() == '\n' || o.token.back() == '\r'))
                o.token.pop_back();
        }
        raise_fd_limit(o.endpoints);
        if (!so.url.empty()) {
            so.connections = o.endpoints;
            so.source_base = o.source_base;
            so.ramp_per_s = o.ramp_per_s;
            so.hold_s = static_hold_s;
            so.timeout_s = o.phase_timeout_s;
            so.server_pid_file = o.seeder_pid_file;
            so.out = o.out;
            so.label = o.label;
            return patchswarm::fleetsim::run_static(so);
        }
        if (o.seeder.empty() || o.trust.empty())
            throw std::runtime_error("--seeder and --trust are required (or --static-url)");
        return patchswarm::fleetsim::run(o);
    } catch (const std::exception& e) {
        std::cerr << "patchswarm-fleetsim: " << e.what() << "\n";
        return 2;
    }
}
