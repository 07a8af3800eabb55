// The control protocol: the pure handler against a fake target (every hostile request is refused
// with a clear error before the target is called), then end to end over a real socket in a
// temporary state folder, and the real `patchswarmd status` / `defer` talking to an in-process
// ControlServer, with the same output as when they read state.db themselves.
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <catch2/catch.hpp>
#include <thread>

#include "daemon/control.hpp"
#include "daemon/endpoint_store.hpp"
#include "daemon/status_view.hpp"
#include "support/process.hpp"
#include "support/signing.hpp"

using namespace patchswarm;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct DeferCall {
    std::string id;
    std::optional<std::int64_t> until;
};

// Records what the handler asks; answers with what the test set.
class FakeTarget : public daemon::ControlTarget {
  public:
    Result<json> status() override {
        ++status_calls;
        return status_answer;
    }
    Result<std::optional<std::int64_t>> defer(const std::string& id,
                                              std::optional<std::int64_t> until) override {
        defer_calls.push_back({id, until});
        if (!defer_answer) return std::unexpected(defer_answer.error());
        return until ? std::optional<std::int64_t>(std::min(*until, *defer_answer))
                     : std::optional<std::int64_t>{};
    }

    Result<json> status_answer = json{{"format", 1}, {"releases", json::array()}};
    Result<std::int64_t> defer_answer = std::numeric_limits<std::int64_t>::max();  // the deadline
    std::atomic<int> status_calls{0};
    std::vector<DeferCall> defer_calls;
};

json handle(FakeTarget& target, const Result<std::string>& request) {
    const std::string line = daemon::handle_control_request(request, target);
    CHECK(line.find('\n') == std::string::npos);  // one line on the wire
    return json::parse(line);
}

// A ControlServer for `state_dir` on its own io_context thread.
class Served {
  public:
    Served(daemon::ControlTarget& target, const fs::path& state_dir) : server_(io_, target) {
        auto ok = server_.listen(state_dir);
        REQUIRE(ok);
        thread_ = std::thread([this] { io_.run(); });
    }
    ~Served() { halt(); }
    void halt() {
        if (!thread_.joinable()) return;
        boost::asio::post(io_, [this] { server_.stop(); });
        thread_.join();
    }

  private:
    boost::asio::io_context io_;
    daemon::ControlServer server_;
    std::thread thread_;
};

}  // namespace

TEST_CASE("the control handler refuses every hostile request before calling the agent", "[core]") {
    struct Case {
        const char* what;
        Result<std::string> request;
        Errc expected;
    };
    const std::string deep = std::string(100, '[') + std::string(100, ']');
    const Case cases[] = {
        {"transport: oversized", fail(Errc::too_large, "request longer than 65536 bytes"),
         Errc::too_large},
        {"transport: other user", fail(Errc::permission, "only root"), Errc::permission},
        {"transport: timeout", fail(Errc::network, "no complete request"), Errc::network},
        {"transport: no newline", fail(Errc::malformed, "closed"), Errc::malformed},
        {"empty line", std::string(), Errc::malformed},
        {"not JSON", std::string("status"), Errc::malformed},
        {"trailing bytes", std::string(R"({"op":"status"} x)"), Errc::malformed},
        {"NUL byte", std::string("{\"op\":\"status\"}\0", 16), Errc::malformed},
        {"nested too deeply", deep, Errc::malformed},
        {"an array", std::string(R"(["status"])"), Errc::malformed},
        {"no op", std::string("{}"), Errc::malformed},
        {"op not a string", std::string(R"({"op":1})"), Errc::malformed},
        {"unknown op", std::string(R"({"op":"reboot"})"), Errc::malformed},
        {"duplicate op", std::string(R"({"op":"status","op":"defer"})"), Errc::malformed},
        {"status with a field", std::string(R"({"op":"status","all":true})"), Errc::malformed},
        {"defer without release", std::string(R"({"op":"defer","until":5})"), Errc::malformed},
        {"defer without until", std::string(R"({"op":"defer","release":"KB1"})"), Errc::malformed},
        {"defer with a field", std::string(R"({"op":"defer","release":"KB1","until":5,"x":0})"),
         Errc::malformed},
        {"release a number", std::string(R"({"op":"defer","release":7,"until":5})"),
         Errc::malformed},
        {"release empty", std::string(R"({"op":"defer","release":"","until":5})"), Errc::malformed},
        {"release a path", std::string(R"({"op":"defer","release":"../etc","until":5})"),
         Errc::malformed},
        {"release ..", std::string(R"({"op":"defer","release":"..","until":5})"),
         Errc::unsafe_path},
        {"release with a newline", std::string(R"({"op":"defer","release":"KB\n1","until":5})"),
         Errc::malformed},
        {"release over 64 bytes",
         std::string(R"({"op":"defer","release":")") + std::string(65, 'K') + R"(","until":5})",
         Errc::too_large},
        {"until a string", std::string(R"({"op":"defer","release":"KB1","until":"+1h"})"),
         Errc::malformed},
        {"until fractional", std::string(R"({"op":"defer","release":"KB1","until":1.5})"),
         Errc::malformed},
        {"until a boolean", std::string(R"({"op":"defer","release":"KB1","until":true})"),
         Errc::malformed},
        {"until negative", std::string(R"({"op":"defer","release":"KB1","until":-1})"),
         Errc::invalid_argument},
        {"until after 9999", std::string(R"({"op":"defer","release":"KB1","until":253402300800})"),
         Errc::invalid_argument},
        {"until over int64",
         std::string(R"({"op":"defer","release":"KB1","until":18446744073709551615})"),
         Errc::malformed},
    };
    for (const auto& c : cases) {
        INFO(c.what);
        FakeTarget target;
        const json answer = handle(target, c.request);
        CHECK(answer["ok"] == false);
        CHECK(answer["error"] == std::string(to_string(c.expected)));
        CHECK_FALSE(answer["message"].get<std::string>().empty());
        CHECK(target.status_calls == 0);
        CHECK(target.defer_calls.empty());
        // The client reads the same error back.
        auto decoded = daemon::decode_control_response(answer.dump());
        REQUIRE_FALSE(decoded);
        CHECK(decoded.error().code == c.expected);
    }
}

TEST_CASE("the control handler answers status and defer from the agent", "[core]") {
    FakeTarget target;
    target.status_answer = json{{"format", 1}, {"feed_sequence", 17}};

    const json status = handle(target, std::string(R"({"op":"status"})"));
    CHECK(status == json{{"ok", true}, {"status", {{"format", 1}, {"feed_sequence", 17}}}});
    CHECK(target.status_calls == 1);

    target.defer_answer = 1'900'000'000;  // the release's deadline
    const json clamped =
        handle(target, std::string(R"({"op":"defer","release":"MS08-067","until":2000000000})"));
    CHECK(clamped == json{{"ok", true}, {"release", "MS08-067"}, {"deferred_until", 1900000000}});
    const json cleared =
        handle(target, std::string(R"({"op":"defer","until":null,"release":"MS08-067"})"));
    CHECK(cleared == json{{"ok", true}, {"release", "MS08-067"}, {"deferred_until", nullptr}});
    const json bounds =
        handle(target, std::string(R"({"op":"defer","release":"KB.1_x-2","until":253402300799})"));
    CHECK(bounds["ok"] == true);
    REQUIRE(target.defer_calls.size() == 3);
    CHECK(target.defer_calls[0].id == "MS08-067");
    CHECK(target.defer_calls[0].until == 2'000'000'000);
    CHECK_FALSE(target.defer_calls[1].until);
    CHECK(target.defer_calls[2].id == "KB.1_x-2");

    // The agent's refusals come back as they are.
    target.defer_answer = fail(Errc::not_found, "no release KB9 on this endpoint");
    const json unknown = handle(target, std::string(R"({"op":"defer","release":"KB9","until":9})"));
    CHECK(unknown == json{{"ok", false},
                          {"error", "not_found"},
                          {"message", "no release KB9 on this endpoint"}});
    target.status_answer = fail(Errc::database, "database is locked");
    CHECK(handle(target, std::string(R"({"op":"status"})"))["error"] == "database");
}

TEST_CASE("the client refuses answers that are not control responses", "[core]") {
    for (const char* line : {"", "ok", "[]", R"({"status":{}})", R"({"ok":"yes"})",
                             R"({"ok":false})", R"({"ok":false,"error":1,"message":"m"})"}) {
        INFO(line);
        auto decoded = daemon::decode_control_response(line);
        REQUIRE_FALSE(decoded);
        CHECK(decoded.error().code == Errc::malformed);
    }
    // An error code from a newer daemon is still an error.
    auto future = daemon::decode_control_response(R"({"ok":false,"error":"new","message":"m"})");
    REQUIRE_FALSE(future);
    CHECK(future.error().code == Errc::internal);
    CHECK(future.error().message == "m");
}

TEST_CASE("the CLI's calls reach a ControlServer in the state folder, or report no daemon",
          "[io]") {
    test::TempDir dir("ps-control");
    CHECK(daemon::control_socket_path(dir.path()) == dir / "control.sock");
    // No socket file: no daemon.
    CHECK_FALSE(daemon::ask_daemon_status(dir.path()).has_value());
    CHECK_FALSE(daemon::ask_daemon_defer(dir.path(), "KB1", 5).has_value());

    FakeTarget target;
    target.status_answer = json{{"format", 1}, {"device_id", "feed"}};
    target.defer_answer = 1'900'000'000;
    {
        Served served(target, dir.path());
        auto status = daemon::ask_daemon_status(dir.path());
        REQUIRE(status.has_value());
        REQUIRE(*status);
        CHECK(**status == json{{"format", 1}, {"device_id", "feed"}});

        auto deferred = daemon::ask_daemon_defer(dir.path(), "KB1", 2'000'000'000);
        REQUIRE(deferred.has_value());
        REQUIRE(*deferred);
        CHECK(**deferred == 1'900'000'000);
        auto cleared = daemon::ask_daemon_defer(dir.path(), "KB1", std::nullopt);
        REQUIRE(cleared.has_value());
        REQUIRE(*cleared);
        CHECK_FALSE(**cleared);

        target.defer_answer = fail(Errc::invalid_argument, "--until must lie in the future");
        auto refused = daemon::ask_daemon_defer(dir.path(), "KB1", 1);
        REQUIRE(refused.has_value());
        REQUIRE_FALSE(*refused);
        CHECK(refused->error().code == Errc::invalid_argument);
        CHECK(refused->error().message == "--until must lie in the future");
    }
    CHECK(target.defer_calls.size() == 3);
    // The server removed its socket on stop: no daemon again.
    CHECK_FALSE(daemon::ask_daemon_status(dir.path()).has_value());
}

TEST_CASE(
    "patchswarmd status and defer go through a running daemon and print what they did "
    "from state.db",
    "[cli]") {
    test::TempDir dir("ps-control-cli");
    const std::string state = dir.path().string();
    auto store = daemon::EndpointStore::open(dir / "state.db");
    REQUIRE(store);
    daemon::StoredRelease release;
    release.record.id = "KB1";
    release.record.state = core::State::downloading;
    release.manifest_sha256 = std::string(64, 'a');
    release.manifest_envelope = "{}";
    release.sequence = 1;
    REQUIRE((*store)->save_release(release));
    const auto status_json = [&] {
        return test::run({PATCHSWARM_DAEMON_BIN, "status", "--state-dir", state, "--json"});
    };
    const auto direct = status_json();
    REQUIRE(direct.exit_code == 0);

    // What the agent does: answer from its own state.db connection.
    std::atomic<int> defers{0};
    daemon::CallbackControlTarget target(
        [&] { return daemon::endpoint_status(**store, dir.path()); },
        [&](const std::string& id, std::optional<std::int64_t> until) {
            ++defers;
            return daemon::defer_release(**store, id, until, patchswarm::test::wall_now());
        });
    {
        Served served(target, dir.path());
        // The same document, whichever way it came.
        const auto through_daemon = status_json();
        CHECK(through_daemon.exit_code == 0);
        CHECK(through_daemon.output == direct.output);

        const auto defer = test::run(
            {PATCHSWARM_DAEMON_BIN, "defer", "KB1", "--until", "+1h", "--state-dir", state});
        CHECK(defer.exit_code == 0);
        CHECK(defer.output.rfind("KB1: deferred until ", 0) == 0);
        CHECK(defers == 1);  // the daemon did it, not the CLI behind its back

        const auto unknown = test::run(
            {PATCHSWARM_DAEMON_BIN, "defer", "KB2", "--until", "+1h", "--state-dir", state});
        CHECK(unknown.exit_code == 1);
        CHECK(unknown.output.find("no release KB2 on this endpoint") != std::string::npos);
        CHECK(defers == 2);
    }
    // Daemon gone: the CLI reads state.db and sees what the daemon stored.
    const auto after = status_json();
    REQUIRE(after.exit_code == 0);
    CHECK(json::parse(after.output)["releases"][0]["deferred_until"].is_number_integer());
    const auto cleared =
        test::run({PATCHSWARM_DAEMON_BIN, "defer", "KB1", "--clear", "--state-dir", state});
    CHECK(cleared.exit_code == 0);
    CHECK(cleared.output == "KB1: deferral cleared\n");
    CHECK(defers == 2);
    CHECK(status_json().output == direct.output);
}
