#include "daemon/relay.hpp"

#include "core/manifest.hpp"
#include "core/root.hpp"

namespace patchswarm::daemon {

Relay::Relay(boost::asio::io_context& io)
    : server_(io, [this](io::http::Request&& req, io::http::Respond respond) {
          respond(handle(req));
      }) {}

Result<std::uint16_t> Relay::listen(const std::string& host_port) {
    return server_.listen(host_port);
}

void Relay::stop() {
    server_.stop();
}

void Relay::set_feed(std::string envelope, std::uint64_t sequence) {
    feed_ = std::move(envelope);
    feed_sequence_ = sequence;
}

io::http::Response Relay::handle(const io::http::Request& req) const {
    auto not_found = [] { return io::http::json_response(404, R"({"error":"not_found"})"); };
    if (req.method != "GET") return io::http::json_response(405, R"({"error":"method"})");
    if (req.path == "/v1/feed")
        return feed_.empty() ? not_found() : io::http::json_response(200, feed_);
    if (auto version = core::root_route_version(req.path)) {
        auto it = roots_.find(*version);
        return it == roots_.end() ? not_found() : io::http::json_response(200, it->second);
    }
    // /v1/releases/<id>/manifest and /v1/releases/<id>/torrent
    constexpr std::string_view prefix = "/v1/releases/";
    if (!req.path.starts_with(prefix)) return not_found();
    const std::string rest = req.path.substr(prefix.size());
    const auto slash = rest.find('/');
    if (slash == std::string::npos) return not_found();
    const std::string id = rest.substr(0, slash);
    const std::string what = rest.substr(slash + 1);
    if (!core::validate_release_id(id)) return not_found();
    const auto& table = what == "manifest" ? manifests_ : torrents_;
    if (what != "manifest" && what != "torrent") return not_found();
    auto it = table.find(id);
    if (it == table.end()) return not_found();
    io::http::Response r = io::http::json_response(200, it->second);
    if (what == "torrent") r.content_type = "application/x-bittorrent";
    return r;
}

}  // namespace patchswarm::daemon
