// Report intake: POST /v1/report into fleet.db (docs/PROTOCOL.md, "Report"). The network thread
// only queues the body for the single writer (seeder/report_writer.hpp), which verifies the
// envelope, with enrolment on refuses devices that are not enrolled, and stores reports in
// batches; the answer goes out once the report's batch has committed (a 200 means durable). A
// full queue is answered at once with 503 and Retry-After (back-pressure, which the agent
// honours). Every state change is logged; a report that changed what a rollout evaluation reads
// (or brought back a stale endpoint) calls `on_rollout_facts`, so the rollout is evaluated now
// rather than on a timer.
//
// Threading: the io_context thread (the writer has its own).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>

#include "core/batch_queue.hpp"
#include "io/env.hpp"
#include "io/http/server.hpp"
#include "seeder/metrics.hpp"
#include "seeder/report_writer.hpp"

namespace boost::asio {
class io_context;
}

namespace patchswarm::seeder {

class ReportIntake {
  public:
    // `env` and `counters` must outlive the intake; the callbacks run on the io_context thread.
    // `on_foreign_write`: fleet.db was committed to by another connection (see probe()).
    // Throws std::runtime_error when fleet.db cannot be opened (start-up).
    ReportIntake(boost::asio::io_context& io, const std::filesystem::path& fleet_db, bool enrolment,
                 io::Env& env, ServeCounters& counters, std::int64_t stale_after,
                 core::BatchLimits limits, std::function<void()> on_rollout_facts,
                 std::function<void()> on_foreign_write)
        : env_(env),
          counters_(counters),
          stale_after_(stale_after),
          on_rollout_facts_(std::move(on_rollout_facts)),
          writer_(io, fleet_db, enrolment, limits, std::move(on_foreign_write)) {}

    // Answers, later, 200 {"ok":true}; 400/403/409/413 for a refused report; 503 when fleet.db
    // is unavailable, or with Retry-After when the writer's queue is full.
    void post_report(const io::http::Request& req, io::http::Respond respond);
    // fleet.db's files changed: has someone else written it? (ReportWriter::probe)
    void probe() { writer_.probe(); }
    // Stores what is queued (its answers are posted to the io_context), then stops the writer.
    void stop() { writer_.stop(); }

  private:
    void on_verdict(const std::string& remote, ReportVerdict verdict,
                    const io::http::Respond& respond);

    io::Env& env_;
    ServeCounters& counters_;
    std::int64_t stale_after_;
    std::function<void()> on_rollout_facts_;
    ReportWriter writer_;  // last: its thread stops before the rest goes
};

}  // namespace patchswarm::seeder
