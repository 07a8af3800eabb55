// The fleet simulator: one process that plays N endpoints against a real `patchswarm-seeder
// serve`, each with its own device key and loopback source address, speaking the agent's protocol
// (docs/PROTOCOL.md): enrolment with a token, the pinned-root update cycle and feed long-poll,
// manifest fetch, tracker announces, state-change reports and heartbeats, with the real
// signatures and counters. It moves no payload bytes: it loads the control plane.
//
// Threading: everything runs on one io_context, on the thread that calls run(); the hook program
// and the sampling of the seeder's /proc entries run on short-lived helper threads that post
// their results back.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace patchswarm::fleetsim {

struct Options {
    std::string seeder;           // base URL, e.g. http://127.0.0.1:18080
    std::filesystem::path trust;  // the pinned root (the repository's root/1.json)
    int endpoints = 100;
    std::string source_base = "127.10.0.1";  // first source address; the rest count up
    std::string token;                       // enrolment token (pst_...); empty: no enrolment
    int enrol_concurrency = 64;              // enrolment requests in flight at once
    double ramp_per_s = 2000;                // update cycles started per second
    int poll_wait_s = 60;                    // long-poll wait (the agent's --poll-wait)
    int heartbeat_s = 60;                    // the agent's --heartbeat; first one at a random phase
    double retry_jitter = 0;                 // 0..1: a retry waits backoff * (1 +- jitter)
    std::vector<std::string> phases;         // publish, storm, restart, hold:S
    std::filesystem::path hook;              // run as `hook PHASE` at the start of each phase
    int phase_timeout_s = 120;
    int storm_spread_s = 60;  // storm: each endpoint starts within this many seconds
    std::vector<std::string> storm_states = {"verified", "waiting", "installing", "effective"};
    int storm_step_ms = 1000;     // between one endpoint's storm state changes
    int probe_interval_ms = 100;  // GET /v1/feed probe during phases (0: none)
    std::string probe_address = "127.9.255.254";
    std::filesystem::path seeder_pid_file;  // sample the seeder's RSS and CPU from /proc
    std::filesystem::path fleet_db;         // compare what got 200 with fleet.db at the end
    std::filesystem::path out;              // the JSON summary (stdout when empty)
    std::filesystem::path endpoint_log;     // one JSON line per simulated endpoint (optional)
    bool verify_cache = true;               // verify identical signed bytes once per process
    std::string label;                      // copied into the summary
};

// Runs setup (enrolment, every endpoint holding a long-poll) and the phases, then writes the
// summary. Returns the process exit code: 0 when every phase completed, 1 when one timed out or
// the fleet.db check found a lost report, 2 when setup failed. Throws std::runtime_error for
// bad options or an unreadable trust root.
int run(const Options& options);

// The i-th loopback address after `base` (127.x.y.z), skipping .0 and .255 in the last octet.
// Throws std::runtime_error for a base outside 127.0.0.0/8 or past its end.
std::string source_address_for(const std::string& base, int i);

}  // namespace patchswarm::fleetsim
