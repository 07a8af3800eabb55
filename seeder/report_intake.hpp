// Report intake: POST /v1/report into fleet.db (docs/PROTOCOL.md, "Report"). Verifies the
// envelope, with enrolment on refuses devices that are not enrolled, stores the report and logs
// every state change. A report that changed what a rollout evaluation reads (or brought back a
// stale endpoint) calls `on_rollout_facts`, so the rollout is evaluated now rather than on a
// timer.
//
// Threading: the io_context thread.
#pragma once

#include <cstdint>
#include <functional>

#include "io/env.hpp"
#include "seeder/enrolment.hpp"
#include "seeder/fleet_db.hpp"
#include "seeder/metrics.hpp"
#include "seeder/routes.hpp"

namespace patchswarm::seeder {

class ReportIntake final : public ReportSink {
  public:
    // Everything referred to must outlive the intake. `enrolment` null: enrolment is off.
    ReportIntake(FleetDb& db, EnrolmentDb* enrolment, io::Env& env, ServeCounters& counters,
                 std::int64_t stale_after, std::function<void()> on_rollout_facts)
        : db_(db),
          enrolment_(enrolment),
          env_(env),
          counters_(counters),
          stale_after_(stale_after),
          on_rollout_facts_(std::move(on_rollout_facts)) {}

    // 200 {"ok":true}; 400/403/409/413 for a refused report, 503 when fleet.db is unavailable.
    io::http::Response post_report(const io::http::Request& req) override;

  private:
    FleetDb& db_;
    EnrolmentDb* enrolment_;
    io::Env& env_;
    ServeCounters& counters_;
    std::int64_t stale_after_;
    std::function<void()> on_rollout_facts_;
};

}  // namespace patchswarm::seeder
