// End-to-end tests with the real binaries on loopback: a seeder, several endpoints, real
// libtorrent swarms, real HTTP and SQLite. Each test case uses its own 127.N.0.x addresses.
#include <catch2/catch.hpp>
#include <sstream>

#include "crypto/crypto.hpp"
#include "io/key_files.hpp"
#include "support/fleet.hpp"

using patchswarm::test::Fleet;
using patchswarm::test::wait_until;
namespace fs = std::filesystem;

namespace {

constexpr auto kConverge = std::chrono::seconds(120);

std::string file_sha256(const fs::path& p) {
    auto h = patchswarm::io::sha256_file(p, 1ull << 32);
    return h ? patchswarm::crypto::to_hex(*h) : "";
}

std::string dump_logs(const Fleet& f, std::initializer_list<int> eps) {
    std::string out = "--- seeder.log (tail)\n";
    auto tail = [](const std::string& s) {
        return s.size() > 3000 ? s.substr(s.size() - 3000) : s;
    };
    out += tail(patchswarm::test::read_text(f.dir() / "seeder.log"));
    for (int i : eps)
        out += "\n--- ep" + std::to_string(i) + ".log (tail)\n" + tail(f.log_of_endpoint(i));
    return out;
}

}  // namespace

TEST_CASE("a seeder and five endpoints converge to effective, once each, after a reboot",
          "[integration]") {
    Fleet f("127.10.0");
    const auto payload = f.make_payload("KB958644", 8 << 20, 1);
    const auto pub =
        f.publish("MS08-067", payload, {"--severity", "emergency", "--reboot", "required"});
    REQUIRE(pub.exit_code == 0);
    f.start_seeder();
    for (int i = 0; i < 5; ++i) f.start_endpoint(i);

    for (int i = 0; i < 5; ++i) {
        INFO(dump_logs(f, {i}));
        REQUIRE(f.wait_state(i, "MS08-067", "reboot_pending", kConverge));
    }
    // Installed is not in effect: nothing is effective until the machine has rebooted.
    for (int i = 0; i < 5; ++i) CHECK(f.install_count(i, "MS08-067") == 1);
    for (int i = 0; i < 5; ++i) f.reboot(i);
    for (int i = 0; i < 5; ++i) {
        INFO(dump_logs(f, {i}));
        REQUIRE(f.wait_state(i, "MS08-067", "effective", std::chrono::seconds(30)));
    }

    std::uint64_t from_peers = 0;
    for (int i = 0; i < 5; ++i) {
        const auto r = f.release(i, "MS08-067");
        CHECK(f.install_count(i, "MS08-067") == 1);
        CHECK(file_sha256(f.state_dir(i) / "releases/MS08-067/install/data/patch.bin") ==
              file_sha256(payload / "data/patch.bin"));
        CHECK(r["bytes_from_peers"].get<std::uint64_t>() +
                  r["bytes_from_seeder"].get<std::uint64_t>() >=
              (8u << 20));
        from_peers += r["bytes_from_peers"].get<std::uint64_t>();
    }
    CHECK(from_peers > 0);  // the swarm shared, not only the seeder

    // The fleet view at the seeder agrees: five endpoints, all effective.
    REQUIRE(wait_until(
        [&] {
            const auto s = f.seeder_status();
            if (!s.is_object()) return false;
            for (const auto& rel : s["releases"]) {
                if (rel["id"] == "MS08-067") return rel["counts"].value("effective", 0) == 5;
            }
            return false;
        },
        std::chrono::seconds(30)));
}

TEST_CASE("an endpoint killed with SIGKILL mid-download resumes and installs once",
          "[integration]") {
    Fleet f("127.11.0");
    const std::size_t size = 24 << 20;
    const auto payload = f.make_payload("KB1", size, 2);
    REQUIRE(f.publish("KB1", payload).exit_code == 0);
    f.start_seeder();
    // 3 MB/s: the download takes ~8 s, so there is time to kill it in the middle.
    f.start_endpoint(0, {"--download-limit", "3000000"});
    const bool midway = wait_until(
        [&] {
            const auto r = f.release(0, "KB1");
            if (!r.is_object()) return false;
            const double p = r["progress"].get<double>();
            return p > 0.3 && p < 0.8;
        },
        kConverge);
    INFO(dump_logs(f, {0}));
    REQUIRE(midway);
    f.endpoint(0).kill(SIGKILL);
    const auto before = f.release(0, "KB1");
    CHECK(before["state"] == "downloading");
    auto received = [](const nlohmann::json& r) {
        return r["bytes_from_peers"].get<std::uint64_t>() +
               r["bytes_from_seeder"].get<std::uint64_t>();
    };
    const auto done_before =
        static_cast<std::uint64_t>(before["progress"].get<double>() * static_cast<double>(size));

    f.start_endpoint(0);
    REQUIRE(f.wait_state(0, "KB1", "effective", kConverge));
    const auto after = f.release(0, "KB1");
    // Verified pieces were not fetched again: the restarted agent received about what was
    // missing, not the whole payload (a few in-flight pieces may be repeated).
    const auto fetched_after_restart = received(after) - received(before);
    CHECK(fetched_after_restart <= size - done_before + size / 10);
    CHECK(fetched_after_restart < size * 9 / 10);
    CHECK(f.install_count(0, "KB1") == 1);
}

TEST_CASE("an endpoint started after the seeder stopped completes from its peers",
          "[integration]") {
    Fleet f("127.12.0");
    const auto payload = f.make_payload("KB2", 4 << 20, 3);
    REQUIRE(f.publish("KB2", payload).exit_code == 0);
    f.start_seeder();
    f.start_endpoint(0, {"--relay", f.endpoint_address(0) + ":18090"});
    f.start_endpoint(1);
    REQUIRE(f.wait_state(0, "KB2", "effective", kConverge));
    REQUIRE(f.wait_state(1, "KB2", "effective", kConverge));
    f.enroll(2);  // it starts while HQ is away: enrolled (once) before
    f.stop_seeder();

    // HQ is gone: endpoint 2 learns the release from endpoint 0's relay and finds its peers
    // through local service discovery.
    f.start_endpoint(2, {}, f.seeder_url() + "," + f.relay_url(0));
    INFO(dump_logs(f, {0, 2}));
    REQUIRE(f.wait_state(2, "KB2", "effective", kConverge));
    const auto r = f.release(2, "KB2");
    CHECK(r["bytes_from_seeder"].get<std::uint64_t>() == 0);
    CHECK(r["bytes_from_peers"].get<std::uint64_t>() >= (4u << 20));
    CHECK(file_sha256(f.state_dir(2) / "releases/KB2/install/data/patch.bin") ==
          file_sha256(payload / "data/patch.bin"));
}

TEST_CASE("a tampered payload on one peer is never installed anywhere", "[integration]") {
    Fleet f("127.13.0");
    const auto payload = f.make_payload("KB3", 4 << 20, 4);
    REQUIRE(f.publish("KB3", payload).exit_code == 0);
    f.start_seeder();
    f.start_endpoint(0, {"--relay", f.endpoint_address(0) + ":18090"});
    REQUIRE(f.wait_state(0, "KB3", "effective", kConverge));

    // Endpoint 0 turns hostile: its seeded copy is corrupted in the middle, and HQ goes away, so
    // it is the only source.
    f.enroll(1);  // it starts while HQ is away: enrolled (once) before
    f.stop_seeder();
    {
        const fs::path bin = f.state_dir(0) / "releases/KB3/download/KB3/data/patch.bin";
        std::fstream io(bin, std::ios::in | std::ios::out | std::ios::binary);
        REQUIRE(io.good());
        io.seekp(1 << 20);
        const std::string junk(256 * 1024, 'X');
        io.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    }
    f.start_endpoint(1, {"--webseed-after", "10"}, f.seeder_url() + "," + f.relay_url(0));
    INFO(dump_logs(f, {0, 1}));
    // The corrupt pieces fail their hash check at endpoint 1, which never gets to verified.
    REQUIRE(wait_until(
        [&] { return f.log_of_endpoint(1).find("failed its hash check") != std::string::npos; },
        kConverge));
    CHECK(f.state(1, "KB3") == "downloading");
    CHECK(f.install_count(1, "KB3") == 0);
    // ... and the peer that sent them is banned (libtorrent's peer_ban_alert, logged by address).
    REQUIRE(wait_until(
        [&] {
            std::istringstream log(f.log_of_endpoint(1));
            for (std::string line; std::getline(log, line);) {
                if (line.find("banned peer") != std::string::npos &&
                    line.find(f.endpoint_address(0) + ":") != std::string::npos) {
                    return true;
                }
            }
            return false;
        },
        kConverge));

    // HQ comes back: the honest source fills the rest and only correct bytes are installed.
    f.start_seeder();
    REQUIRE(f.wait_state(1, "KB3", "effective", kConverge));
    CHECK(f.install_count(1, "KB3") == 1);
    CHECK(file_sha256(f.state_dir(1) / "releases/KB3/install/data/patch.bin") ==
          file_sha256(payload / "data/patch.bin"));
}
