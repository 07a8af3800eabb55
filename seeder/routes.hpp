// The seeder's HTTP routes (docs/PROTOCOL.md, "HTTP routes") as one pure function from a request
// to a response, over small interfaces of what each route needs (after Beast's examples and
// daemon/relay.hpp). The HTTP server only calls route() and sends what it returns; tests call it
// with fakes and no sockets.
//
// Order of checks: rate limit (429), admin credential for the fleet view (401), then the route.
// GET /v1/feed and POST /v1/report are answered later: route() returns a FeedWait, which the
// caller hands to the FeedService (long-poll), or a ReportPost for the report intake.
//
// Threading: the io_context thread, like everything the context refers to.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "base/error.hpp"
#include "core/rate_limit.hpp"
#include "io/env.hpp"
#include "io/http/parse.hpp"
#include "seeder/admin_auth.hpp"
#include "seeder/metrics.hpp"
#include "seeder/repo.hpp"
#include "seeder/tracker.hpp"

namespace patchswarm::seeder {

// {"error": code, "message": message} with `status`.
io::http::Response error_response(int status, std::string_view code, std::string_view message);
io::http::Response error_response(const Error& e, int status);
// The HTTP status for a refused report or enrolment with this error.
int refusal_status(Errc code);

// ---- what the routes need from outside -------------------------------------------------------

// The published releases (the catalog).
class ReleaseView {
  public:
    virtual ~ReleaseView() = default;
    virtual bool is_listed(std::string_view id) const = 0;
    virtual bool is_ssl_torrent(std::string_view announce_hash) const = 0;
};

// POST /v1/enroll and the web seed's device credentials (seeder/enrol_intake.hpp); only when
// the repository has a fleet CA.
class EnrolService {
  public:
    virtual ~EnrolService() = default;
    virtual io::http::Response post_enroll(const io::http::Request& req) = 0;
    // Errc::database when fleet.db cannot be read.
    [[nodiscard]] virtual Result<bool> web_secret_valid(const std::string& device_id,
                                                        const std::string& secret) = 0;
};

// The fleet view: GET /v1/status (docs/STATUS_JSON.md) and GET /metrics.
class FleetView {
  public:
    virtual ~FleetView() = default;
    [[nodiscard]] virtual Result<std::string> status_json() = 0;
    [[nodiscard]] virtual Result<std::string> metrics(const ServeCounters& counters) = 0;
};

struct RouteContext {
    const RepoPaths& paths;
    const ReleaseView& releases;
    tracker::PeerTable& tracker;
    EnrolService* enrolment;  // null: enrolment is off (no fleet CA)
    FleetView& fleet;
    core::RateLimiter& limiter;
    ServeCounters& counters;
    io::Env& env;  // the steady clock for the rate limiter and the tracker
    std::string_view admin_token;
    AdminAuth admin_auth = AdminAuth::remote;
    std::chrono::seconds site_stall{30};  // named in the web seed's refusal
    std::uint16_t ssl_port = 0;           // the seeder's SSL listen port, 0: none
};

// GET /v1/feed?after=&wait=, checked: hand it to FeedService::get.
struct FeedWait {
    std::optional<std::uint64_t> after;
    std::chrono::seconds wait{0};  // at most kMaxFeedWait
};

// POST /v1/report, past the rate limit: hand the request to ReportIntake::post_report, which
// answers once the report is stored (seeder/report_intake.hpp).
struct ReportPost {};

using RouteResult = std::variant<io::http::Response, FeedWait, ReportPost>;

// Answers one request. Never throws: a bug answers 500 and is logged.
RouteResult route(const io::http::Request& req, RouteContext& ctx);

}  // namespace patchswarm::seeder
