#include "seeder/report_writer.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <stdexcept>

#include "seeder/routes.hpp"

namespace patchswarm::seeder {

namespace {

using Clock = std::chrono::steady_clock;

ReportVerdict refusal(const Error& e, int status, std::optional<Report> report = std::nullopt) {
    ReportVerdict v;
    v.response = error_response(e, status);
    v.refused = status != 503;
    v.report = std::move(report);
    return v;
}

std::string who(const Report& report, const std::string& remote) {
    return report.device_id.substr(0, 8) + " (" + remote + ")";
}

}  // namespace

ReportWriter::ReportWriter(boost::asio::io_context& io, const std::filesystem::path& fleet_db,
                           bool enrolment, core::BatchLimits limits,
                           std::function<void()> on_foreign_write)
    : io_(io), on_foreign_write_(std::move(on_foreign_write)), queue_(limits) {
    auto db = FleetDb::open(fleet_db);
    if (!db) throw std::runtime_error("fleet.db: " + db.error().message);
    db_ = std::move(*db);
    if (enrolment) {
        auto edb = EnrolmentDb::open(fleet_db);
        if (!edb) throw std::runtime_error("fleet.db: " + edb.error().message);
        enrolment_ = std::move(*edb);
    }
    // The baseline: commits from before start-up are not news.
    if (auto v = db_->data_version()) data_version_ = *v;
    thread_ = std::thread([this] { run(); });
}

ReportWriter::~ReportWriter() {
    stop();
}

std::optional<std::chrono::seconds> ReportWriter::submit(ReportJob job) {
    {
        std::lock_guard lock(mu_);
        if (stopping_) return std::chrono::seconds(1);
        if (!queue_.push(job)) return queue_.retry_after();
    }
    wake_.notify_one();
    return std::nullopt;
}

void ReportWriter::probe() {
    {
        std::lock_guard lock(mu_);
        probe_ = true;
    }
    wake_.notify_one();
}

void ReportWriter::stop() {
    {
        std::lock_guard lock(mu_);
        if (stopping_ && !thread_.joinable()) return;
        stopping_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
}

void ReportWriter::run() {
    for (;;) {
        std::vector<ReportJob> batch;
        bool probe = false;
        {
            std::unique_lock lock(mu_);
            wake_.wait(lock, [&] { return stopping_ || probe_ || !queue_.empty(); });
            if (stopping_ && queue_.empty()) return;
            batch = queue_.take_batch();
            probe = std::exchange(probe_, false);
        }
        // Asked before the batch: a commit by another connection is then seen now, not hidden
        // behind ours (ours never move data_version).
        if (probe) check_foreign_writes();
        if (batch.empty()) continue;
        const auto started = Clock::now();
        write_batch(batch);
        std::lock_guard lock(mu_);
        queue_.batch_done(batch.size(), started, Clock::now());
    }
}

void ReportWriter::check_foreign_writes() {
    auto v = db_->data_version();
    if (!v) {
        spdlog::error("fleet.db: {}", v.error().message);
        return;
    }
    if (*v == data_version_) return;
    data_version_ = *v;
    boost::asio::post(io_, on_foreign_write_);
}

void ReportWriter::write_batch(std::vector<ReportJob>& batch) {
    std::vector<ReportVerdict> verdicts(batch.size());
    std::vector<std::optional<Report>> reports(batch.size());
    std::vector<ReportInput> inputs;
    std::vector<std::size_t> stored;  // index into batch, per input
    for (std::size_t i = 0; i < batch.size(); ++i) {
        const ReportJob& job = batch[i];
        auto report = parse_report(job.body);
        if (!report) {
            spdlog::warn("report from {} refused: {}", job.remote_address, report.error().message);
            verdicts[i] = refusal(report.error(), refusal_status(report.error().code));
            continue;
        }
        if (enrolment_) {
            auto enrolled = enrolment_->is_enrolled(report->device_id, report->device_key);
            if (!enrolled) {
                verdicts[i] = refusal(enrolled.error(), 503);
                continue;
            }
            if (!*enrolled) {
                spdlog::warn("report from {} refused: device not enrolled",
                             who(*report, job.remote_address));
                ReportVerdict v;
                v.response = error_response(403, "not_enrolled",
                                            "device " + report->device_id +
                                                " is not enrolled (patchswarmd enroll --token)");
                v.refused = true;
                verdicts[i] = std::move(v);
                continue;
            }
        }
        reports[i] = std::move(*report);
        inputs.push_back(ReportInput{&*reports[i], job.remote_address, job.received_at});
        stored.push_back(i);
    }
    if (!inputs.empty()) {
        auto results = db_->apply_reports(inputs);
        for (std::size_t k = 0; k < stored.size(); ++k) {
            const std::size_t i = stored[k];
            if (!results) {
                spdlog::warn("report from {} not stored: {}",
                             who(*reports[i], batch[i].remote_address), results.error().message);
                verdicts[i] = refusal(results.error(), 503, std::move(reports[i]));
                continue;
            }
            auto& outcome = (*results)[k];
            if (!outcome) {
                spdlog::warn("report from {} refused: {}",
                             who(*reports[i], batch[i].remote_address), outcome.error().message);
                verdicts[i] = refusal(outcome.error(), refusal_status(outcome.error().code),
                                      std::move(reports[i]));
                continue;
            }
            ReportVerdict v;
            v.response = io::http::json_response(200, R"({"ok":true})");
            v.accepted = true;
            v.report = std::move(reports[i]);
            v.outcome = std::move(*outcome);
            verdicts[i] = std::move(v);
        }
    }
    // Committed (or refused): only now may the endpoints hear a 200.
    for (std::size_t i = 0; i < batch.size(); ++i) {
        boost::asio::post(
            io_, [done = std::move(batch[i].done), verdict = std::move(verdicts[i])]() mutable {
                done(std::move(verdict));
            });
    }
}

}  // namespace patchswarm::seeder
