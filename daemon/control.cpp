#include "daemon/control.hpp"

#include "core/json_strict.hpp"
#include "core/manifest.hpp"

namespace patchswarm::daemon {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json error_response(const Error& e) {
    return {{"ok", false}, {"error", std::string(to_string(e.code))}, {"message", e.message}};
}

// The inverse of to_string(Errc); Errc::internal for a code this build does not know. Relies on
// Errc being numbered from 0 to Errc::internal, its last enumerator.
Errc errc_from_string(std::string_view name) {
    for (int i = 0; i <= static_cast<int>(Errc::internal); ++i) {
        if (to_string(static_cast<Errc>(i)) == name) return static_cast<Errc>(i);
    }
    return Errc::internal;
}

// At most the first 40 bytes of a hostile value, for error messages (dump() escapes the rest).
std::string excerpt(std::string_view s) {
    return s.size() <= 40 ? std::string(s) : std::string(s.substr(0, 40)) + "...";
}

json do_status(core::json_strict::ObjectReader& r, std::optional<Error>& err,
               ControlTarget& target) {
    r.allow_only({"op"});
    if (!r.ok()) return error_response(*err);
    auto status = target.status();
    if (!status) return error_response(status.error());
    return {{"ok", true}, {"status", std::move(*status)}};
}

json do_defer(core::json_strict::ObjectReader& r, std::optional<Error>& err,
              ControlTarget& target) {
    r.allow_only({"op", "release", "until"});
    const std::string id = r.string("release");
    const auto* until_value = r.value("until");
    if (!r.ok()) return error_response(*err);
    if (auto ok = core::validate_release_id(id); !ok) {
        return error_response({ok.error().code, "request.release: " + ok.error().message});
    }
    std::optional<std::int64_t> until;
    if (!until_value->is_null()) {
        const std::int64_t t = r.as_i64(*until_value, "request.until");
        if (!r.ok()) return error_response(*err);
        if (t < 0 || t > kMaxDeferUntil) {
            return error_response({Errc::invalid_argument,
                                   "request.until: outside 0.." + std::to_string(kMaxDeferUntil)});
        }
        until = t;
    }
    auto stored = target.defer(id, until);
    if (!stored) return error_response(stored.error());
    return {{"ok", true},
            {"release", id},
            {"deferred_until", *stored ? json(**stored) : json(nullptr)}};
}

json dispatch(const Result<std::string>& request, ControlTarget& target) {
    if (!request) return error_response(request.error());
    auto doc = core::json_strict::parse(*request, "request");
    if (!doc) return error_response(doc.error());
    std::optional<Error> err;
    core::json_strict::ObjectReader r(*doc, "request", err);
    const std::string op = r.string("op");
    if (!r.ok()) return error_response(*err);
    if (op == "status") return do_status(r, err, target);
    if (op == "defer") return do_defer(r, err, target);
    return error_response({Errc::malformed, "request.op: unknown op \"" + excerpt(op) + "\""});
}

// Sends one request; nullopt when nobody listens on the state folder's socket.
std::optional<Result<json>> exchange(const fs::path& state_dir, const json& request) {
    auto line = io::local_request(control_socket_path(state_dir), request.dump());
    if (!line) {
        if (line.error().code == Errc::not_found) return std::nullopt;
        return std::unexpected(line.error());
    }
    return decode_control_response(*line);
}

Result<json> not_a_response(std::string_view why) {
    return fail(Errc::malformed, "the daemon's answer " + std::string(why));
}

}  // namespace

ControlTarget::~ControlTarget() = default;

fs::path control_socket_path(const fs::path& state_dir) {
    return state_dir / "control.sock";
}

std::string handle_control_request(const Result<std::string>& request, ControlTarget& target) {
    // The response may carry text from state.db (install output, reasons): replace invalid
    // UTF-8 rather than throw.
    const auto dump = [](const json& j) {
        return j.dump(-1, ' ', /*ensure_ascii=*/false, json::error_handler_t::replace);
    };
    try {
        return dump(dispatch(request, target));
    } catch (const std::exception& e) {
        return dump(error_response({Errc::internal, std::string("control: ") + e.what()}));
    }
}

Result<json> decode_control_response(std::string_view line) {
    json doc = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded() || !doc.is_object()) return not_a_response("is not a JSON object");
    const auto ok = doc.find("ok");
    if (ok == doc.end() || !ok->is_boolean()) return not_a_response("has no \"ok\"");
    if (ok->get<bool>()) return doc;
    const auto code = doc.find("error");
    const auto message = doc.find("message");
    if (code == doc.end() || !code->is_string() || message == doc.end() || !message->is_string()) {
        return not_a_response("is an error without a code and message");
    }
    return fail(errc_from_string(code->get<std::string>()), message->get<std::string>());
}

std::optional<Result<json>> ask_daemon_status(const fs::path& state_dir) {
    auto answer = exchange(state_dir, {{"op", "status"}});
    if (!answer || !*answer) return answer;
    const auto status = (*answer)->find("status");
    if (status == (*answer)->end() || !status->is_object()) {
        return not_a_response("has no status document");
    }
    return std::move(*status);
}

std::optional<Result<std::optional<std::int64_t>>> ask_daemon_defer(
    const fs::path& state_dir, const std::string& release_id, std::optional<std::int64_t> until) {
    auto answer = exchange(state_dir, {{"op", "defer"},
                                       {"release", release_id},
                                       {"until", until ? json(*until) : json(nullptr)}});
    if (!answer) return std::nullopt;
    if (!*answer) return std::unexpected(answer->error());
    const auto stored = (*answer)->find("deferred_until");
    if (stored == (*answer)->end() || !(stored->is_null() || stored->is_number_integer())) {
        return std::unexpected(not_a_response("has no deferred_until").error());
    }
    if (stored->is_null()) return std::optional<std::int64_t>{};
    return std::optional<std::int64_t>{stored->get<std::int64_t>()};
}

ControlServer::ControlServer(boost::asio::io_context& io, ControlTarget& target,
                             io::LocalSocketLimits limits)
    : server_(
          io,
          [&target](Result<std::string> request) {
              return handle_control_request(request, target);
          },
          limits) {}

Result<void> ControlServer::listen(const fs::path& state_dir) {
    return server_.listen(control_socket_path(state_dir));
}

void ControlServer::stop() {
    server_.stop();
}

}  // namespace patchswarm::daemon
