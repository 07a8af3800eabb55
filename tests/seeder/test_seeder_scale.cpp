// The seeder under many endpoints (issue 12): the connection cap sized from the open-file limit
// and set with --max-connections, and report intake through the single batching writer
// (a 200 means the report is in fleet.db; a full queue answers 503 with Retry-After).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/envelope.hpp"
#include "crypto/crypto.hpp"
#include "io/fd_limit.hpp"
#include "io/http/client.hpp"
#include "io/sqlite.hpp"
#include "seeder/report.hpp"
#include "seeder/serve_fixture.hpp"
#include "seeder/serve_setup.hpp"

using namespace patchswarm;
using namespace patchswarm::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// A TCP connection that sends one request and holds on, as a long-polling endpoint does.
class HeldConnection {
  public:
    HeldConnection(const std::string& host, std::uint16_t port, const std::string& request) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        REQUIRE(::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) == 1);
        REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) ==
                static_cast<ssize_t>(request.size()));
    }
    ~HeldConnection() { ::close(fd_); }
    HeldConnection(const HeldConnection&) = delete;
    HeldConnection& operator=(const HeldConnection&) = delete;

  private:
    int fd_ = -1;
};

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

crypto::KeyPair device_key(int n) {
    std::array<std::uint8_t, 32> seed{};
    seed[0] = static_cast<std::uint8_t>(n & 0xff);
    seed[1] = static_cast<std::uint8_t>(n >> 8);
    seed[2] = 0x5a;
    return crypto::keypair_from_seed(seed);
}

Result<io::http::ClientResponse> post_report(const std::string& body) {
    io::http::ClientRequest req;
    req.method = "POST";
    req.url = base_url() + "/v1/report";
    req.body = body;
    req.timeout = 30s;
    return io::http::request_sync(std::move(req));
}

// The devices fleet.db holds, read as `status` would, beside the running seeder.
std::set<std::string> stored_devices(const std::filesystem::path& fleet_db) {
    auto db = io::Db::open(fleet_db);
    REQUIRE(db);
    auto stmt = (*db)->prepare("SELECT device_id FROM endpoints");
    REQUIRE(stmt);
    std::set<std::string> ids;
    for (;;) {
        auto row = stmt->step();
        REQUIRE(row);
        if (!*row) break;
        ids.insert(stmt->column_text(0));
    }
    return ids;
}

}  // namespace

TEST_CASE("the connection cap comes from the open-file limit unless --max-connections sets it",
          "[core]") {
    CHECK(io::connections_for_fd_limit(20'000) == 20'000 - io::kFdReserve);
    CHECK(io::connections_for_fd_limit(1'024) == 512);  // too small for the reserve: half
    CHECK(io::connections_for_fd_limit(1) == 1);

    const auto derived = seeder::connection_cap(0, 20'000);
    CHECK(derived.max_connections == 20'000 - io::kFdReserve);
    CHECK(derived.warning.empty());
    CHECK(seeder::connection_cap(0, 1'048'576).max_connections == seeder::kDefaultMaxConnections);

    const auto asked = seeder::connection_cap(5'000, 20'000);
    CHECK(asked.max_connections == 5'000);
    CHECK(asked.warning.empty());

    // More than the descriptors allow: lowered, and said so with the limit needed.
    const auto too_many = seeder::connection_cap(30'000, 20'000);
    CHECK(too_many.max_connections == 20'000 - io::kFdReserve);
    CHECK_THAT(too_many.warning, Catch::Contains("--max-connections 30000"));
    CHECK_THAT(too_many.warning, Catch::Contains(std::to_string(30'000 + io::kFdReserve)));
    CHECK_THAT(too_many.warning, Catch::Contains("LimitNOFILE"));
}

TEST_CASE("raising the open-file limit leaves the soft limit at the hard one", "[core]") {
    const auto fds = io::raise_fd_limit();
    REQUIRE(fds);
    CHECK(fds->soft == fds->hard);
    CHECK(fds->soft > 0);
}

TEST_CASE("serve holds --max-connections connections and closes the next one at once", "[net]") {
    Seeder s("127.21.1.1");
    REQUIRE(s.publish("KB1", "x").exit_code == 0);
    s.start({"--max-connections", "3"});
    CHECK_THAT(read_file(s.dir / "seeder.log"), Catch::Contains("up to 3 HTTP connections"));
    const std::uint64_t seq = s.feed_sequence();

    const std::string poll =
        "GET /v1/feed?after=" + std::to_string(seq) + "&wait=60 HTTP/1.1\r\nHost: x\r\n\r\n";
    std::vector<std::unique_ptr<HeldConnection>> held;
    for (int i = 0; i < 3; ++i)
        held.push_back(std::make_unique<HeldConnection>(g_host, 18080, poll));
    // The three are accepted on the server's schedule: until then a fourth may still get in.
    REQUIRE(wait_until([] { return !get("/healthz", 2s); }, 10s));
    // Refused quickly (closed at once), not left hanging until the client's timeout.
    const auto start = std::chrono::steady_clock::now();
    CHECK_FALSE(get("/healthz", 8s));
    CHECK(std::chrono::steady_clock::now() - start < 8s);

    held.pop_back();
    CHECK(wait_until(
        [] {
            auto r = get("/healthz", 2s);
            return r && r->status == 200;
        },
        10s));
}

TEST_CASE("a burst of reports all end in fleet.db, each answered 200 only once stored", "[net]") {
    Seeder s("127.21.1.2");
    REQUIRE(s.publish("KB1", "x").exit_code == 0);
    s.start();
    constexpr int kSenders = 20;
    constexpr int kEach = 15;
    std::vector<std::future<std::vector<std::string>>> senders;
    for (int t = 0; t < kSenders; ++t) {
        senders.push_back(std::async(std::launch::async, [t] {
            std::vector<std::string> accepted;
            for (int i = 0; i < kEach; ++i) {
                const auto key = device_key(t * kEach + i);
                auto r = post_report(report_body(key, 1));
                if (r && r->status == 200)
                    accepted.push_back(seeder::device_id_for(key.public_key));
            }
            return accepted;
        }));
    }
    std::set<std::string> accepted;
    for (auto& f : senders) {
        for (auto& id : f.get()) accepted.insert(id);
    }
    CHECK(accepted.size() == kSenders * kEach);
    // Each 200 was sent after its commit: fleet.db has every one of them.
    const auto stored = stored_devices(s.dir / "repo" / "fleet.db");
    for (const auto& id : accepted) CHECK(stored.contains(id));
}

TEST_CASE("a full report queue answers 503 with Retry-After, and nothing answered 200 is lost",
          "[net]") {
    Seeder s("127.21.1.3");
    REQUIRE(s.publish("KB1", "x").exit_code == 0);
    s.start({"--report-queue", "1"});
    const auto fleet_db = s.dir / "repo" / "fleet.db";

    // Another writer holds fleet.db: the seeder's writer waits on it (busy timeout), so at most
    // one batch is in its hands and one report in its queue; the rest must be refused at once.
    auto blocker = io::Db::open(fleet_db);
    REQUIRE(blocker);
    REQUIRE((*blocker)->exec("BEGIN IMMEDIATE"));
    constexpr int kDevices = 8;
    std::vector<std::future<Result<io::http::ClientResponse>>> posts;
    for (int i = 0; i < kDevices; ++i) {
        posts.push_back(std::async(
            std::launch::async, [i] { return post_report(report_body(device_key(500 + i), 1)); }));
    }
    const auto answered = [&] {
        int n = 0;
        for (auto& p : posts) n += p.wait_for(0s) == std::future_status::ready;
        return n;
    };
    CHECK(wait_until([&] { return answered() >= kDevices - 2; }, 4s));
    REQUIRE((*blocker)->exec("ROLLBACK"));

    std::vector<int> refused;
    std::set<std::string> accepted;
    for (int i = 0; i < kDevices; ++i) {
        auto r = posts[i].get();
        REQUIRE(r);
        INFO("report " << i << ": HTTP " << r->status << " " << r->body);
        REQUIRE((r->status == 200 || r->status == 503));
        if (r->status == 200) {
            accepted.insert(seeder::device_id_for(device_key(500 + i).public_key));
        } else {
            refused.push_back(i);
            if (json::parse(r->body)["error"] == "busy") {
                REQUIRE(r->headers.contains("retry-after"));
                CHECK(std::stoi(r->headers.at("retry-after")) >= 1);
            }
        }
    }
    CHECK(refused.size() >= kDevices - 2);
    auto metrics = get("/metrics");
    REQUIRE(metrics);
    CHECK_THAT(metrics->body, Catch::Contains("patchswarm_reports_total{result=\"deferred\"}"));
    CHECK_THAT(metrics->body,
               !Catch::Contains("patchswarm_reports_total{result=\"deferred\"} 0\n"));

    // As the agent does: the refused ones come back and are stored.
    for (int i : refused) {
        bool stored = false;
        CHECK(wait_until(
            [&] {
                auto r = post_report(report_body(device_key(500 + i), 1));
                stored = r && r->status == 200;
                return stored;
            },
            20s));
        if (stored) accepted.insert(seeder::device_id_for(device_key(500 + i).public_key));
    }
    CHECK(accepted.size() == kDevices);
    const auto in_db = stored_devices(fleet_db);
    for (const auto& id : accepted) CHECK(in_db.contains(id));
}
