#include "seeder/report_intake.hpp"

#include <spdlog/spdlog.h>

#include "seeder/report.hpp"
#include "seeder/routes.hpp"

namespace patchswarm::seeder {

namespace {

void log_outcome(const Report& report, const ReportOutcome& outcome, const std::string& remote) {
    const std::string who = report.device_id.substr(0, 8) + " (" + report.hostname + ")";
    if (outcome.new_device) spdlog::info("endpoint {} joined from {}", who, remote);
    for (const auto& c : outcome.changes) {
        spdlog::info("endpoint {} release {}: {} -> {}", who, c.release_id,
                     c.from ? core::to_string(*c.from) : std::string_view("new"),
                     core::to_string(c.to));
    }
}

}  // namespace

void ReportIntake::post_report(const io::http::Request& req, io::http::Respond respond) {
    ReportJob job;
    job.body = req.body;
    job.remote_address = req.remote_address;
    job.received_at = env_.now_unix();
    // The intake lives as long as the io_context runs its handlers (serve's Seeder).
    job.done = [this, remote = req.remote_address, respond](ReportVerdict verdict) {
        on_verdict(remote, std::move(verdict), respond);
    };
    if (auto retry_after = writer_.submit(std::move(job))) {
        ++counters_.reports_deferred;
        auto res = error_response(503, "busy", "report intake is busy; retry later");
        res.headers["Retry-After"] = std::to_string(retry_after->count());
        respond(std::move(res));
    }
}

void ReportIntake::on_verdict(const std::string& remote, ReportVerdict verdict,
                              const io::http::Respond& respond) {
    if (!verdict.accepted) {
        ++counters_.reports_refused;
        return respond(std::move(verdict.response));
    }
    ++counters_.reports_accepted;
    log_outcome(*verdict.report, verdict.outcome, remote);
    // A heartbeat that repeats what fleet.db has changes no verdict, unless the endpoint was
    // stale (not counted reachable) until now.
    const bool was_stale = env_.now_unix() - verdict.outcome.previous_last_seen > stale_after_;
    if (verdict.outcome.facts_changed || was_stale) on_rollout_facts_();
    respond(std::move(verdict.response));
}

}  // namespace patchswarm::seeder
