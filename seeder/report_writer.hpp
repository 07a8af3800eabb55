// The single writer of report intake: one thread with its own fleet.db connection (WAL), which
// takes the reports waiting in a bounded queue (core/batch_queue.hpp) and stores each batch in
// one transaction: one fsync for all the reports that arrived while the last batch was being
// written (group commit), with the statements prepared once. It also verifies each report's
// signature and, with enrolment on, that its device is enrolled, so the network thread only
// queues bytes. A report's verdict is posted back to the io_context after its batch has
// committed: a 200 means the report is durable in fleet.db.
//
// It also tells writes by anyone else apart from its own: SQLite's data_version on its
// connection moves only for other connections' commits (`halt`, `resume`, token and device
// commands, the seeder's own rollout latching), which serve asks about through probe() when
// fleet.db's files change.
//
// Threading: construct, submit, probe, stop and destroy on the io_context thread; `done` and
// `on_foreign_write` run there (posted).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core/batch_queue.hpp"
#include "io/http/parse.hpp"
#include "seeder/enrolment.hpp"
#include "seeder/fleet_db.hpp"
#include "seeder/report.hpp"

namespace boost::asio {
class io_context;
}

namespace patchswarm::seeder {

// What became of one report.
struct ReportVerdict {
    io::http::Response response;   // 200 {"ok":true}, or the refusal (400/403/409/413/503)
    bool accepted = false;         // stored: `report` and `outcome` are set
    bool refused = false;          // refused for what it is (not for the database's trouble)
    std::optional<Report> report;  // parsed, when it was
    ReportOutcome outcome;
};

struct ReportJob {
    std::string body;  // the POST body, the signed envelope
    std::string remote_address;
    std::int64_t received_at = 0;  // seeder clock, unix seconds
    std::function<void(ReportVerdict)> done;
};

class ReportWriter {
  public:
    // Opens fleet.db (and, with `enrolment`, its enrolment tables) for the writer thread and
    // starts it. Throws std::runtime_error when fleet.db cannot be opened (start-up).
    ReportWriter(boost::asio::io_context& io, const std::filesystem::path& fleet_db, bool enrolment,
                 core::BatchLimits limits, std::function<void()> on_foreign_write);
    ~ReportWriter();  // stop()s
    ReportWriter(const ReportWriter&) = delete;
    ReportWriter& operator=(const ReportWriter&) = delete;

    // Queues the report: nullopt, and `job.done` will run once it is stored or refused; or,
    // when the queue is full, the Retry-After to answer with 503 (job.done is not called).
    [[nodiscard]] std::optional<std::chrono::seconds> submit(ReportJob job);
    // Asks the writer whether another connection has committed to fleet.db since it last
    // looked; if so `on_foreign_write` is posted.
    void probe();
    // Stores what is queued, then ends the thread. Idempotent.
    void stop();

  private:
    void run();
    void write_batch(std::vector<ReportJob>& batch);
    void check_foreign_writes();

    boost::asio::io_context& io_;
    std::function<void()> on_foreign_write_;
    std::unique_ptr<FleetDb> db_;             // the writer thread's
    std::unique_ptr<EnrolmentDb> enrolment_;  // null: enrolment off
    std::int64_t data_version_ = 0;           // the writer thread's
    std::mutex mu_;
    std::condition_variable wake_;
    core::BatchQueue<ReportJob> queue_;  // guarded by mu_
    bool probe_ = false;                 // guarded by mu_
    bool stopping_ = false;              // guarded by mu_
    std::thread thread_;
};

}  // namespace patchswarm::seeder
