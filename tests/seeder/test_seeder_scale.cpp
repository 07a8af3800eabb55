// The seeder under many endpoints (issue 12): the connection cap sized from the open-file limit
// and set with --max-connections, and report intake through the single batching writer
// (a 200 means the report is in fleet.db; a full queue answers 503 with Retry-After).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/envelope.hpp"
#include "crypto/crypto.hpp"
#include "io/fd_limit.hpp"
#include "io/http/client.hpp"
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
