#include "seeder/routes.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

#include "core/manifest.hpp"
#include "core/root.hpp"
#include "seeder/dashboard.hpp"
#include "seeder/feed_service.hpp"

namespace patchswarm::seeder {

io::http::Response error_response(int status, std::string_view code, std::string_view message) {
    const nlohmann::json body = {{"error", code}, {"message", message}};
    return io::http::json_response(
        status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

io::http::Response error_response(const Error& e, int status) {
    return error_response(status, to_string(e.code), e.message);
}

int refusal_status(Errc code) {
    switch (code) {
        case Errc::too_large:
            return 413;
        case Errc::rollback:
            return 409;
        case Errc::permission:
            return 403;
        case Errc::database:
            return 503;
        case Errc::internal:
            return 500;
        default:
            return 400;
    }
}

namespace {

using io::http::Request;
using io::http::Response;

std::optional<std::uint64_t> parse_u64(const std::string& text) {
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return v;
}

bool is_read(const Request& req) {
    return req.method == "GET" || req.method == "HEAD";
}

// The fleet view: which machines are unpatched is worth knowing to an attacker.
bool is_admin_route(std::string_view path) {
    return path == "/" || path == "/dashboard" || path == "/v1/status" || path == "/metrics";
}

Response not_found() {
    return error_response(404, "not_found", "no such route");
}

Response method_not_allowed() {
    return error_response(405, "method_not_allowed", "method not allowed");
}

// 429 with Retry-After once a client (req.client, the HTTP server's per-connection key) has used
// its burst.
std::optional<Response> rate_limited(const Request& req, RouteContext& ctx) {
    const auto decision = ctx.limiter.take(req.client, ctx.env.now_steady());
    if (decision.allowed) return std::nullopt;
    ++ctx.counters.http_rate_limited;
    spdlog::debug("{} {} from {}: rate limited", req.method, req.path, req.remote_address);
    auto res = error_response(429, "rate_limited",
                              "too many requests from " + req.client + "; retry after " +
                                  std::to_string(decision.retry_after.count()) + " s");
    res.headers["Retry-After"] = std::to_string(decision.retry_after.count());
    return res;
}

RouteResult get_feed(const Request& req) {
    FeedWait w;
    if (const auto it = req.query.find("after"); it != req.query.end()) {
        w.after = parse_u64(it->second);
        if (!w.after) return error_response(400, "malformed", "after: not a number");
    }
    if (const auto it = req.query.find("wait"); it != req.query.end()) {
        const auto v = parse_u64(it->second);
        if (!v) return error_response(400, "malformed", "wait: not a number");
        w.wait = std::chrono::seconds(std::min<std::uint64_t>(*v, kMaxFeedWait.count()));
    }
    return w;
}

// /v1/releases/<ID>/manifest and /v1/releases/<ID>/torrent
Response get_release_file(const Request& req, RouteContext& ctx) {
    const std::string_view rest = std::string_view(req.path).substr(13);
    const auto slash = rest.find('/');
    if (slash == std::string_view::npos) return not_found();
    const std::string id(rest.substr(0, slash));
    const std::string_view what = rest.substr(slash + 1);
    if (auto ok = core::validate_release_id(id); !ok) return error_response(ok.error(), 400);
    if (!ctx.releases.is_listed(id)) return error_response(404, "not_found", "no release " + id);
    if (what == "manifest") {
        return io::http::file_response(ctx.paths.manifest(id), nullptr, "application/json");
    }
    if (what == "torrent") {
        return io::http::file_response(ctx.paths.torrent(id), nullptr, "application/x-bittorrent");
    }
    return not_found();
}

// With enrolment on, the web seed serves only enrolled, unrevoked devices, which present their
// device id and web secret as HTTP Basic credentials: a stranger on the LAN gets neither the
// swarm (TLS) nor this, even from behind an endpoint's NAT.
std::optional<Response> refuse_unenrolled(const Request& req, RouteContext& ctx,
                                          const std::string& id) {
    if (!ctx.enrolment) return std::nullopt;
    const auto credentials = io::http::basic_credentials(req);
    auto valid = credentials
                     ? ctx.enrolment->web_secret_valid(credentials->first, credentials->second)
                     : Result<bool>(false);
    if (!valid) return error_response(valid.error(), 503);
    if (*valid) return std::nullopt;
    spdlog::warn("web seed {} refused to {}: {}", id, req.remote_address,
                 credentials ? "not an enrolled device's web secret" : "no device credentials");
    return error_response(403, "not_enrolled", "the web seed serves enrolled endpoints only");
}

// /v1/payload/<ID>/<path>: the BEP 19 web seed root is /v1/payload/<ID>/, below which the
// torrent's name and file paths follow.
Response get_payload(const Request& req, RouteContext& ctx) {
    const std::string_view rest = std::string_view(req.path).substr(12);
    const auto slash = rest.find('/');
    if (slash == std::string_view::npos) return error_response(404, "not_found", "no file");
    const std::string id(rest.substr(0, slash));
    const std::string path(rest.substr(slash + 1));
    if (auto ok = core::validate_release_id(id); !ok) return error_response(ok.error(), 400);
    if (auto ok = core::validate_relative_path(path); !ok) return error_response(ok.error(), 400);
    if (!ctx.releases.is_listed(id)) return error_response(404, "not_found", "no release " + id);
    // The web seed is HQ's WAN link like the seeder's BitTorrent address: only a site's
    // gateways, or any peer of a site that has stopped making progress, may use it.
    const auto from = tracker::make_address(req.remote_address, 0);
    const auto access = from ? ctx.tracker.seeder_access(id, *from, ctx.env.now_steady())
                             : tracker::SeederAccess::refused;
    if (auto refused = refuse_unenrolled(req, ctx, id)) return std::move(*refused);
    if (!tracker::allowed(access)) {
        const std::string site = from ? ctx.tracker.site_of(*from) : "?";
        spdlog::debug("web seed {} refused to {} (site {}): not a gateway, site progressing", id,
                      req.remote_address, site);
        return error_response(403, "not_a_gateway",
                              "site " + site +
                                  ": the web seed serves only the site's gateway peers, or every "
                                  "peer once the site has made no progress for " +
                                  std::to_string(ctx.site_stall.count()) + "s");
    }
    const auto range = req.headers.find("range");
    return io::http::file_response(ctx.paths.payload_dir(id) / path,
                                   range == req.headers.end() ? nullptr : &range->second);
}

// One line per answer, naming every address handed out (tests check that no site ever gets
// another's).
void log_answer(const tracker::PeerTable& table, const tracker::Announce& a,
                const tracker::Reply& reply) {
    std::string peers;
    for (const auto& p : reply.peers) {
        if (!peers.empty()) peers += ' ';
        peers += p.address.v6 ? "[" + tracker::ip_to_string(p.address) + "]"
                              : tracker::ip_to_string(p.address);
        peers += ':' + std::to_string(p.address.port);
    }
    const std::string* id = table.release_id(a.info_hash);
    spdlog::debug("tracker: answered {}:{} site {}{}{} release {}: peers [{}]",
                  tracker::ip_to_string(a.address), a.address.port, reply.site,
                  reply.gateway ? " gateway" : "", reply.site_stalled ? " stalled" : "",
                  id ? *id : "?", peers);
}

Response announce(const Request& req, RouteContext& ctx) {
    // Trackers answer failures with 200 and a bencoded reason (BEP 3).
    Response res = io::http::text_response(200, "");
    res.content_type = "text/plain";
    auto a = tracker::parse_announce(req.raw_query, req.remote_address);
    if (!a) {
        res.body = tracker::bencode_failure(a.error().message);
        return res;
    }
    ++ctx.counters.tracker_requests;
    auto reply = ctx.tracker.announce(*a, ctx.env.now_steady());
    // Peers of an SSL torrent announce their SSL listen port; the seeder's own entry must be its
    // SSL port too (its plain port refuses SSL torrents).
    if (reply && ctx.ssl_port != 0 && ctx.releases.is_ssl_torrent(a->info_hash)) {
        for (auto& p : reply->peers) {
            if (p.peer_id.empty() && p.address == ctx.tracker.seeder())
                p.address.port = ctx.ssl_port;
        }
    }
    res.body = reply ? tracker::bencode_reply(*reply, a->compact)
                     : tracker::bencode_failure(reply.error().message);
    if (reply && spdlog::should_log(spdlog::level::debug)) log_answer(ctx.tracker, *a, *reply);
    return res;
}

// The page is static: it reads /v1/status itself, so it shows no more than that does.
Response get_dashboard() {
    Response res = io::http::text_response(200, std::string(dashboard_html()));
    res.content_type = "text/html; charset=utf-8";
    res.headers["Cache-Control"] = "no-store";
    res.headers["Content-Security-Policy"] = std::string(kDashboardCsp);
    res.headers["X-Content-Type-Options"] = "nosniff";
    res.headers["Referrer-Policy"] = "no-referrer";
    return res;
}

Response get_status(RouteContext& ctx) {
    auto json = ctx.fleet.status_json();
    if (!json) return error_response(json.error(), 500);
    return io::http::json_response(200, std::move(*json));
}

Response get_metrics(RouteContext& ctx) {
    auto text = ctx.fleet.metrics(ctx.counters);
    if (!text) return error_response(text.error(), 500);
    Response res = io::http::text_response(200, std::move(*text));
    res.content_type = std::string(kMetricsContentType);
    return res;
}

RouteResult dispatch(const Request& req, RouteContext& ctx) {
    if (auto refused = rate_limited(req, ctx)) return std::move(*refused);
    if (is_admin_route(req.path) && !admin_authorized(req, ctx.admin_token, ctx.admin_auth)) {
        ++ctx.counters.http_unauthorized;
        spdlog::info("{} {} from {}: refused, no admin credential", req.method, req.path,
                     req.remote_address);
        return admin_unauthorized();
    }
    if (req.path == "/v1/report") {
        if (req.method != "POST") return method_not_allowed();
        return ReportPost{};
    }
    if (req.path == "/v1/enroll") {
        if (req.method != "POST") return method_not_allowed();
        if (!ctx.enrolment) {
            return error_response(404, "not_found",
                                  "enrolment is off: the repository has no fleet CA (ca init)");
        }
        return ctx.enrolment->post_enroll(req);
    }
    if (!is_read(req)) return method_not_allowed();
    if (req.path == "/v1/feed") return get_feed(req);
    if (req.path == "/healthz") return io::http::text_response(200, "ok");
    if (req.path == "/announce") return announce(req, ctx);
    if (auto version = core::root_route_version(req.path)) {
        return io::http::file_response(ctx.paths.root_version(*version), nullptr,
                                       "application/json");
    }
    if (req.path == "/" || req.path == "/dashboard") return get_dashboard();
    if (req.path == "/v1/status") return get_status(ctx);
    if (req.path == "/metrics") return get_metrics(ctx);
    if (req.path.starts_with("/v1/releases/")) return get_release_file(req, ctx);
    if (req.path.starts_with("/v1/payload/")) return get_payload(req, ctx);
    return not_found();
}

}  // namespace

RouteResult route(const Request& req, RouteContext& ctx) {
    spdlog::debug("{} {} from {}", req.method, req.target, req.remote_address);
    try {
        return dispatch(req, ctx);
    } catch (const std::exception& e) {
        // Nothing may escape into the io_context; a bug answers 500 and is logged.
        spdlog::error("{} {}: {}", req.method, req.path, e.what());
        return error_response(500, "internal", "internal error");
    }
}

}  // namespace patchswarm::seeder
