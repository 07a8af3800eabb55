#include "seeder/report_intake.hpp"

#include <spdlog/spdlog.h>

#include "seeder/report.hpp"

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

io::http::Response ReportIntake::post_report(const io::http::Request& req) {
    auto report = parse_report(req.body);
    if (!report) {
        ++counters_.reports_refused;
        spdlog::warn("report from {} refused: {}", req.remote_address, report.error().message);
        return error_response(report.error(), refusal_status(report.error().code));
    }
    if (enrolment_) {
        auto enrolled = enrolment_->is_enrolled(report->device_id, report->device_key);
        if (!enrolled) return error_response(enrolled.error(), 503);
        if (!*enrolled) {
            ++counters_.reports_refused;
            spdlog::warn("report from {} ({}) refused: device not enrolled",
                         report->device_id.substr(0, 8), req.remote_address);
            return error_response(
                403, "not_enrolled",
                "device " + report->device_id + " is not enrolled (patchswarmd enroll --token)");
        }
    }
    const std::int64_t now = env_.now_unix();
    auto outcome = db_.apply_report(*report, req.remote_address, now);
    if (!outcome) {
        ++counters_.reports_refused;
        spdlog::warn("report from {} ({}) refused: {}", report->device_id.substr(0, 8),
                     req.remote_address, outcome.error().message);
        return error_response(outcome.error(), refusal_status(outcome.error().code));
    }
    ++counters_.reports_accepted;
    log_outcome(*report, *outcome, req.remote_address);
    // A heartbeat that repeats what fleet.db has changes no verdict, unless the endpoint was
    // stale (not counted reachable) until now.
    const bool was_stale = now - outcome->previous_last_seen > stale_after_;
    if (outcome->facts_changed || was_stale) on_rollout_facts_();
    return io::http::json_response(200, R"({"ok":true})");
}

}  // namespace patchswarm::seeder
