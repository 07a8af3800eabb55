// Enrolment end to end with the real binaries on loopback (127.80.0.x only): a repository with a
// fleet CA publishes SSL torrents; enrolled endpoints converge; strangers (no certificate, a
// certificate from another CA, an endpoint that never enrolled) get no payload byte from the
// seeder, its web seed or the enrolled peers; refused enrolments change nothing.
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include "common/http.hpp"
#include "common/swarm.hpp"
#include "common/x509.hpp"
#include "crypto/crypto.hpp"
#include "support/fleet.hpp"

using patchswarm::test::Fleet;
using patchswarm::test::run;
using patchswarm::test::wait_until;
namespace fs = std::filesystem;
namespace swarm = patchswarm::swarm;
namespace x509 = patchswarm::x509;

namespace {

constexpr auto kConverge = std::chrono::seconds(120);

std::string dump_logs(const Fleet& f, std::initializer_list<int> eps) {
    auto tail = [](const std::string& s) {
        return s.size() > 4000 ? s.substr(s.size() - 4000) : s;
    };
    std::string out =
        "--- seeder.log (tail)\n" + tail(patchswarm::test::read_text(f.dir() / "seeder.log"));
    for (int i : eps)
        out += "\n--- ep" + std::to_string(i) + ".log (tail)\n" + tail(f.log_of_endpoint(i));
    return out;
}

std::string repo(const Fleet& f) {
    return (f.dir() / "repo").string();
}

std::string token_list(const Fleet& f) {
    return run({PATCHSWARM_SEEDER_BIN, "token", "list", "--repo", repo(f)}).output;
}

// A libtorrent session in this process that has the torrent but no enrolment.
struct Stranger {
    boost::asio::io_context io;
    std::unique_ptr<swarm::Session> session;

    Stranger(const std::string& address, const fs::path& dir, const std::string& cert,
             const std::string& key) {
        swarm::Settings s;
        s.listen = address + ":16881";
        s.ssl_listen = address + ":16882";
        s.resume_dir = dir / "resume";
        s.enable_lsd = true;
        s.ssl_certificate = cert;
        s.ssl_private_key = key;
        auto created = swarm::Session::create(io, s, {});
        REQUIRE(created);
        session = std::move(*created);
    }
    std::uint64_t done() {
        io.poll();
        const auto st = session->status("r1");
        return st ? st->total_done : 0;
    }
};

}  // namespace

TEST_CASE("only enrolled endpoints take part: strangers get no payload byte", "[integration]") {
    patchswarm::crypto::init();
    Fleet f("127.80.0");
    f.auto_enrol = false;  // who enrols, and how, is what this test is about
    f.init_ca();
    CHECK((fs::status(f.dir() / "repo/keys/fleet-ca.key").permissions() & fs::perms::group_all) ==
          fs::perms::none);
    const auto payload = f.make_payload("r1", 3 * 1024 * 1024, 7);
    const auto pub = f.publish("r1", payload);
    REQUIRE(pub.exit_code == 0);
    const std::string token = f.create_token({"--uses", "2", "--label", "two desks"});

    f.start_seeder({"--log-level", "debug", "--gateways", "1", "--site-stall", "300"});
    // No web seed fallback for the enrolled ones: they must finish over the SSL swarm. With one
    // gateway per site, one of them has to fetch from the other.
    f.start_endpoint(1, {"--enroll-token", token, "--webseed-after", "3600"});
    f.start_endpoint(2, {"--enroll-token", token, "--webseed-after", "3600"});

    // The torrent is public (anyone can GET it); the SSL swarm is not.
    const auto get_torrent = [&] {
        patchswarm::http::ClientRequest req;
        req.url = f.seeder_url() + "/v1/releases/r1/torrent";
        return patchswarm::http::request_sync(std::move(req));
    };
    REQUIRE(wait_until(
        [&] {
            const auto t = get_torrent();
            return t && t->status == 200;
        },
        std::chrono::seconds(30)));
    const auto t = get_torrent();
    REQUIRE(t);
    const std::vector<std::uint8_t> bytes(t->body.begin(), t->body.end());
    const auto summary = swarm::inspect_torrent(bytes);
    REQUIRE(summary);
    REQUIRE_FALSE(summary->ssl_root_cert.empty());

    // Stranger A: no certificate. Stranger B: a valid certificate from another CA.
    const auto other_ca = x509::make_ca("other CA", 30);
    REQUIRE(other_ca);
    const auto b_key = x509::generate_key();
    REQUIRE(b_key);
    const auto b_cert = x509::issue(*other_ca, *x509::public_key_of(*b_key), "stranger", 30);
    REQUIRE(b_cert);
    Stranger a("127.80.0.98", f.dir() / "stranger-a", "", "");
    Stranger b("127.80.0.99", f.dir() / "stranger-b", *b_cert, *b_key);
    for (auto* s : {&a, &b}) {
        swarm::AddParams p;
        p.id = "r1";
        p.torrent = bytes;
        p.save_path = f.dir() / ("stranger-" + std::to_string(s == &a ? 0 : 1));
        // No tracker: a stranger must not take the site's gateway slot; it is given every
        // address directly instead.
        p.web_seeds = {f.seeder_url() + "/v1/payload/r1/"};
        // Every plain and SSL port of the seeder and of the enrolled endpoints.
        p.peers = {f.seeder_address() + ":16881", f.seeder_address() + ":16882"};
        for (int i : {1, 2}) {
            p.peers.push_back(f.endpoint_address(i) + ":16881");
            p.peers.push_back(f.endpoint_address(i) + ":16882");
        }
        REQUIRE(s->session->add(std::move(p)));
    }

    const bool converged = f.wait_state(1, "r1", "effective", kConverge) &&
                           f.wait_state(2, "r1", "effective", kConverge);
    INFO(dump_logs(f, {1, 2, 3}));
    REQUIRE(converged);
    CHECK(fs::exists(f.state_dir(1) / "tls.crt"));
    CHECK((fs::status(f.state_dir(1) / "tls.key").permissions() & fs::perms::group_all) ==
          fs::perms::none);
    // Bytes came over the SSL swarm (from the seeder or each other), not only the web seed.
    const auto r1 = f.release(1, "r1");
    const auto r2 = f.release(2, "r1");
    INFO(r1.dump() << "\n" << r2.dump());
    CHECK(r1.value("bytes_from_peers", std::uint64_t{0}) +
              r2.value("bytes_from_peers", std::uint64_t{0}) >
          0);

    // Never enrolled: it has the feed and the torrent, like any stranger who can reach HTTP.
    f.start_endpoint(3, {"--webseed-after", "1"});
    REQUIRE(
        wait_until([&] { return f.state(3, "r1") == "downloading"; }, std::chrono::seconds(30)));

    // Connect the strangers again now that everyone seeds, and give them a while: nothing.
    for (auto* s : {&a, &b}) {
        s->session->connect_peer("r1", f.seeder_address() + ":16882");
        s->session->connect_peer("r1", f.endpoint_address(1) + ":16882");
        s->session->connect_peer("r1", f.endpoint_address(2) + ":16882");
    }
    // Waiting for something that must not happen: the deadline is the test.
    const bool leaked = wait_until(
        [&] {
            const auto r = f.release(3, "r1");
            return a.done() > 0 || b.done() > 0 ||
                   (r.is_object() && r.value("progress", 0.0) > 0.0);
        },
        std::chrono::seconds(10));
    CHECK_FALSE(leaked);
    CHECK(a.done() == 0);
    CHECK(b.done() == 0);
    const auto r3 = f.release(3, "r1");
    INFO(r3.dump());
    CHECK(r3.is_object());
    if (r3.is_object()) CHECK(r3.value("progress", 0.0) == 0.0);
    // The unenrolled endpoint's reports and web seed requests were refused.
    const std::string seeder_log = patchswarm::test::read_text(f.dir() / "seeder.log");
    CHECK(seeder_log.find("device not enrolled") != std::string::npos);
    CHECK(seeder_log.find("not an enrolled endpoint's address") != std::string::npos);
    CHECK(f.log_of_endpoint(3).find("report refused: HTTP 403") != std::string::npos);

    // Enrolment refusals change nothing: the token is used up, another is unknown, one expired.
    const std::string before = token_list(f);
    const std::string expired = f.create_token({"--expires", "1000000000"});
    const std::string after_create = token_list(f);
    for (const std::string& tok : {token, std::string("pst_0000"), expired}) {
        const auto r =
            run({PATCHSWARM_DAEMON_BIN, "enroll", "--state-dir", (f.dir() / "ep9").string(),
                 "--seeder", f.seeder_url(), "--token", tok, "--bt", "127.80.0.19:16881"});
        INFO(r.output);
        CHECK(r.exit_code == 1);
        CHECK(r.output.find("refused: HTTP 403") != std::string::npos);
        CHECK_FALSE(fs::exists(f.dir() / "ep9/tls.crt"));
    }
    CHECK(token_list(f) == after_create);
    CHECK(before.find("used-up  used 2, left 0") != std::string::npos);

    // A fresh token enrols that device.
    const std::string fresh = f.create_token();
    const auto ok =
        run({PATCHSWARM_DAEMON_BIN, "enroll", "--state-dir", (f.dir() / "ep9").string(), "--seeder",
             f.seeder_url(), "--token", fresh, "--bt", "127.80.0.19:16881"});
    INFO(ok.output);
    CHECK(ok.exit_code == 0);
    CHECK(fs::exists(f.dir() / "ep9/tls.crt"));

    // The web seed tells an enrolled address from a stranger's (an enrolled one may still be
    // refused as "not a gateway" of its site, never as "not enrolled").
    const std::string file_url =
        f.seeder_url() + "/v1/payload/r1/" + summary->name + "/data/patch.bin";
    const auto from = [&](const std::string& address) {
        patchswarm::http::ClientRequest req;
        req.url = file_url;
        req.max_response_bytes = 8 << 20;
        req.local_address = address;
        return patchswarm::http::request_sync(std::move(req));
    };
    const auto stranger_get = from("127.80.0.98");
    REQUIRE(stranger_get);
    CHECK(stranger_get->status == 403);
    CHECK(stranger_get->body.find("not_enrolled") != std::string::npos);
    const auto enrolled_get = from("127.80.0.19");
    REQUIRE(enrolled_get);
    INFO(enrolled_get->status << " " << enrolled_get->body.substr(0, 200));
    CHECK(enrolled_get->body.find("not_enrolled") == std::string::npos);
    CHECK((enrolled_get->status == 200 ||
           enrolled_get->body.find("not_a_gateway") != std::string::npos));

    // The device enrolled with `patchswarmd enroll` runs like the others (state dir ep9,
    // address 127.80.0.19) and completes over the SSL swarm.
    f.start_endpoint(9, {"--webseed-after", "3600"});
    const bool nine = f.wait_state(9, "r1", "effective", kConverge);
    INFO(dump_logs(f, {9}));
    CHECK(nine);
}
