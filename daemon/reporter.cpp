#include "daemon/reporter.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <nlohmann/json.hpp>
#include <set>

#include "base/version.hpp"
#include "core/envelope.hpp"
#include "daemon/endpoint_store.hpp"
#include "daemon/seeder_client.hpp"
#include "io/crash_point.hpp"
#include "io/env.hpp"
#include "io/http/client.hpp"

namespace patchswarm::daemon {

using nlohmann::json;

namespace {

constexpr auto kDebounce = std::chrono::milliseconds(200);

std::string tail(const std::string& s, std::size_t n) {
    return s.size() <= n ? s : s.substr(s.size() - n);
}

json release_json(const ReleaseReport& r, std::int64_t now) {
    const auto& rec = *r.record;
    const auto& st = *r.stored;
    const double total = static_cast<double>(r.total_size);
    json j = {{"id", rec.id},
              {"manifest_sha256", st.manifest_sha256},
              {"state", core::to_string(rec.state)},
              {"entered_at", rec.entered_at},
              {"progress", total > 0 ? static_cast<double>(st.bytes_done) / total : 1.0},
              {"bytes_from_peers", st.bytes_from_peers},
              {"bytes_from_seeder", st.bytes_from_seeder},
              {"bytes_from_lan", st.bytes_from_lan},
              {"bytes_from_wan", st.bytes_from_wan},
              {"attempts", rec.attempts},
              {"reason", rec.reason}};
    if (rec.state == core::State::failed) {
        // The seeder's auto-halt counts install and verify failures, not download trouble.
        j["failed_phase"] = core::to_string(rec.failed_phase);
        // The seeder says "retry N of M at T" or "gave up after M attempts" from these.
        j["next_attempt_at"] = rec.next_attempt_at;
        if (r.max_attempts > 0) j["max_attempts"] = r.max_attempts;
    }
    if (r.deferred_until && *r.deferred_until > now) {
        j["deferred_until"] = *r.deferred_until;
        if (!r.deferred_by.empty()) j["deferred_by"] = r.deferred_by;
    }
    return j;
}

}  // namespace

std::string sign_report(const ReporterIdentity& identity, std::uint64_t counter,
                        std::int64_t sent_at, const std::string& boot_id, const json& releases) {
    const json report = {{"format", 1},
                         {"device_id", identity.device_id},
                         {"device_key", crypto::to_hex(identity.device_key.public_key)},
                         {"hostname", identity.hostname},
                         {"sent_at", sent_at},
                         {"counter", counter},
                         {"boot_id", boot_id},
                         {"groups", identity.groups},
                         {"agent_version", std::string(kVersion)},
                         {"releases", releases}};
    const std::string payload = report.dump();
    const crypto::KeyPair keys[] = {identity.device_key};
    return core::serialize_envelope(
        core::sign_envelope(core::payload_type::report, crypto::as_bytes(payload), keys));
}

struct Reporter::Timers {
    explicit Timers(boost::asio::io_context& io) : heartbeat(io), debounce(io) {}
    boost::asio::steady_timer heartbeat;
    boost::asio::steady_timer debounce;
};

Reporter::Reporter(boost::asio::io_context& io, io::Env& env, EndpointStore& store,
                   SeederClient& seeders, ReporterIdentity identity, Releases releases,
                   std::function<std::string()> boot_id)
    : io_(io),
      env_(env),
      store_(store),
      seeders_(seeders),
      identity_(std::move(identity)),
      releases_(std::move(releases)),
      boot_id_(std::move(boot_id)),
      timers_(std::make_unique<Timers>(io)) {}

Reporter::~Reporter() = default;

void Reporter::start(int heartbeat_s) {
    heartbeat_s_ = heartbeat_s;
    arm_heartbeat();
}

void Reporter::stop() {
    stopping_ = true;
    timers_->heartbeat.cancel();
    timers_->debounce.cancel();
}

void Reporter::arm_heartbeat() {
    timers_->heartbeat.expires_after(std::chrono::seconds(heartbeat_s_));
    timers_->heartbeat.async_wait([this](const boost::system::error_code& ec) {
        if (ec || stopping_) return;
        send_now();
        arm_heartbeat();
    });
}

void Reporter::schedule() {
    if (scheduled_ || stopping_) return;
    scheduled_ = true;
    timers_->debounce.expires_after(kDebounce);
    timers_->debounce.async_wait([this](const boost::system::error_code& ec) {
        // Aborted: cancelled by stop() or destroyed with the reporter; touch nothing.
        if (ec == boost::asio::error::operation_aborted) return;
        scheduled_ = false;
        if (!ec && !stopping_) send_now();
    });
}

void Reporter::send_now() {
    std::uint64_t counter = 0;
    if (auto c = store_.get_meta("report_counter"); c && *c) counter = std::stoull(**c);
    ++counter;
    // The counter is persisted before use, so a restart never reuses one (replay defence).
    if (!store_.set_meta("report_counter", std::to_string(counter))) return;
    io::crash_point("report.counter_saved");
    const std::int64_t now = env_.now_unix();
    json rel = json::array();
    std::set<std::string> held;
    for (const auto& r : releases_()) {
        held.insert(r.record->id);
        rel.push_back(release_json(r, now));
    }
    if (auto rejected = store_.load_rejected()) {
        for (const auto& r : *rejected) {
            if (held.contains(r.id)) continue;
            rel.push_back({{"id", r.id},
                           {"manifest_sha256", r.manifest_sha256},
                           {"state", "rejected"},
                           {"entered_at", r.at},
                           {"progress", 0.0},
                           {"bytes_from_peers", 0},
                           {"bytes_from_seeder", 0},
                           {"attempts", 0},
                           {"reason", r.reason}});
        }
    }
    io::http::ClientRequest req = seeders_.get("/v1/report", 64 * 1024);
    req.method = "POST";
    req.body = sign_report(identity_, counter, now, boot_id_(), rel);
    io::http::request(io_, std::move(req), [](Result<io::http::ClientResponse> r) {
        if (!r) {
            spdlog::debug("report not delivered: {}", r.error().message);
        } else if (r->status != 200) {
            spdlog::warn("report refused: HTTP {} {}", r->status, tail(r->body, 200));
        }
    });
}

}  // namespace patchswarm::daemon
