// Enrolment end to end with the real binaries on loopback (127.80.0.x only): a repository with a
// fleet CA publishes SSL torrents; enrolled endpoints converge; strangers (no certificate, a
// certificate from another CA, an endpoint that never enrolled) get no payload byte from the
// seeder, its web seed or the enrolled peers; refused enrolments change nothing.
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include "crypto/crypto.hpp"
#include "io/http/client.hpp"
#include "io/swarm/session.hpp"
#include "io/x509.hpp"
#include "support/fleet.hpp"
#include "support/signing.hpp"

using patchswarm::test::Fleet;
using patchswarm::test::run;
using patchswarm::test::wait_until;
namespace fs = std::filesystem;
namespace swarm = patchswarm::io::swarm;
namespace x509 = patchswarm::io::x509;

using patchswarm::test::wall_now;
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
        patchswarm::io::http::ClientRequest req;
        req.url = f.seeder_url() + "/v1/releases/r1/torrent";
        return patchswarm::io::http::request_sync(std::move(req));
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
    const auto b_cert =
        x509::issue(*other_ca, *x509::public_key_of(*b_key), "stranger", 30 * 86'400);
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
    CHECK(seeder_log.find("refused to 127.80.0.13: no device credentials") != std::string::npos);
    CHECK(f.log_of_endpoint(3).find("report refused: HTTP 403") != std::string::npos);

    // Enrolment refusals change nothing: the token is used up, another is unknown, one expired.
    const std::string before = token_list(f);
    const std::string expired = f.create_token({"--expires", "1000000000"});
    const std::string after_create = token_list(f);
    const std::string unknown = "pst_" + std::string(64, '7');
    for (const std::string& tok : {token, unknown, expired}) {
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
    // A malformed token is refused before anything is sent.
    const auto malformed =
        run({PATCHSWARM_DAEMON_BIN, "enroll", "--state-dir", (f.dir() / "ep9").string(), "--seeder",
             f.seeder_url(), "--token", "pst_0000", "--bt", "127.80.0.19:16881"});
    CHECK(malformed.exit_code == 1);
    CHECK(malformed.output.find("not an enrolment token") != std::string::npos);

    // A fresh token enrols that device; read from a file, it stays out of the process list.
    const fs::path token_file = f.dir() / "ep9.token";
    patchswarm::test::write_text(token_file, f.create_token() + "\n");
    const auto ok =
        run({PATCHSWARM_DAEMON_BIN, "enroll", "--state-dir", (f.dir() / "ep9").string(), "--seeder",
             f.seeder_url(), "--token-file", token_file.string(), "--bt", "127.80.0.19:16881"});
    INFO(ok.output);
    CHECK(ok.exit_code == 0);
    CHECK(fs::exists(f.dir() / "ep9/tls.crt"));
    CHECK((fs::status(f.dir() / "ep9/web.secret").permissions() & fs::perms::group_all) ==
          fs::perms::none);

    // The web seed admits a device by its id and web secret (HTTP Basic), whatever address it
    // comes from (a stranger behind an endpoint's NAT shares its address); an enrolled one may
    // still be refused as "not a gateway" of its site, never as "not enrolled".
    const std::string file_url =
        f.seeder_url() + "/v1/payload/r1/" + summary->name + "/data/patch.bin";
    const std::string nine_id = f.device_id(9);
    const std::string nine_secret = patchswarm::test::read_text(f.state_dir(9) / "web.secret");
    const auto get_as = [&](const std::string& address, const std::string& user,
                            const std::string& password) {
        patchswarm::io::http::ClientRequest req;
        req.url = file_url;
        req.max_response_bytes = 8 << 20;
        req.local_address = address;
        if (!user.empty()) {
            req.headers["Authorization"] =
                "Basic " +
                patchswarm::crypto::to_base64(patchswarm::crypto::as_bytes(user + ":" + password));
        }
        return patchswarm::io::http::request_sync(std::move(req));
    };
    struct Row {
        const char* who;
        std::string address, user, password;
        bool admitted;
    };
    const std::vector<Row> rows = {
        {"a stranger without credentials", "127.80.0.98", "", "", false},
        {"a stranger guessing ep9's secret", "127.80.0.98", nine_id, std::string(64, '0'), false},
        {"ep9's secret under another device id", "127.80.0.98", std::string(32, 'a'), nine_secret,
         false},
        {"the enrolled device ep9", "127.80.0.19", nine_id, nine_secret, true},
        {"ep9's credentials from another address (NAT)", "127.80.0.98", nine_id, nine_secret, true},
    };
    for (const auto& row : rows) {
        INFO(row.who);
        const auto got = get_as(row.address, row.user, row.password);
        REQUIRE(got);
        INFO(got->status << " " << got->body.substr(0, 200));
        if (row.admitted) {
            CHECK(got->body.find("not_enrolled") == std::string::npos);
            CHECK((got->status == 200 || got->body.find("not_a_gateway") != std::string::npos));
        } else {
            CHECK(got->status == 403);
            CHECK(got->body.find("not_enrolled") != std::string::npos);
        }
    }

    // The device enrolled with `patchswarmd enroll` runs like the others (state dir ep9,
    // address 127.80.0.19) and completes over the SSL swarm.
    f.start_endpoint(9, {"--webseed-after", "3600"});
    const bool nine = f.wait_state(9, "r1", "effective", kConverge);
    INFO(dump_logs(f, {9}));
    CHECK(nine);
}

namespace {

std::int64_t cert_not_after(const fs::path& cert_file) {
    const auto info = x509::inspect(patchswarm::test::read_text(cert_file));
    return info ? info->not_after : 0;
}

}  // namespace

TEST_CASE("a revoked device drops out when its short-lived certificate ends, the others renew",
          "[integration]") {
    patchswarm::crypto::init();
    Fleet f("127.82.0");
    REQUIRE(f.publish("r1", f.make_payload("r1", 2 * 1024 * 1024, 3)).exit_code == 0);
    // 20 s certificates: endpoints renew every 10 s, a revoked one is out 20 s later at most.
    // Two gateways: both endpoints get HQ's address from the tracker, so the revoked one cannot
    // hold the site's only gateway slot (the site would then wait for its stall fallback).
    f.start_seeder({"--log-level", "debug", "--cert-lifetime", "20", "--gateways", "2"});
    const fs::path token_file = f.dir() / "fleet.token";
    patchswarm::test::write_text(token_file, f.fleet_token() + "\n");
    // ep1 must use the SSL swarm; ep2 may fall back to the web seed (to show it is shut too).
    f.start_endpoint(1, {"--webseed-after", "3600"});
    f.start_endpoint(2, {"--enroll-token-file", token_file.string(), "--webseed-after", "3"});
    const bool converged = f.wait_state(1, "r1", "effective", kConverge) &&
                           f.wait_state(2, "r1", "effective", kConverge);
    INFO(dump_logs(f, {1, 2}));
    REQUIRE(converged);

    // ep1 renews at half its certificate's life.
    const std::int64_t first_end = cert_not_after(f.state_dir(1) / "tls.crt");
    REQUIRE(wait_until(
        [&] { return f.log_of_endpoint(1).find("renewed TLS certificate") != std::string::npos; },
        std::chrono::seconds(60)));

    // The admin revokes ep2.
    const std::string two_id = f.device_id(2);
    const auto revoked =
        run({PATCHSWARM_SEEDER_BIN, "device", "revoke", two_id.substr(0, 8), "--repo", repo(f)});
    INFO(revoked.output);
    REQUIRE(revoked.exit_code == 0);
    const auto listed = run({PATCHSWARM_SEEDER_BIN, "device", "list", "--repo", repo(f)});
    CHECK(listed.output.find(two_id.substr(0, 16) + "  revoked") != std::string::npos);
    CHECK(listed.output.find("desk-1") != std::string::npos);
    // The fleet view leaves it out: one endpoint, effective for r1, and one revoked.
    const auto fleet = f.seeder_status();
    INFO(fleet.dump());
    CHECK(fleet["endpoints"] == 1);
    CHECK(fleet["revoked_endpoints"] == 1);
    CHECK(fleet["releases"][0]["counts"]["effective"] == 1);

    // Its next renewal is refused; then its last certificate runs out (waiting for the clock
    // is the point here, not synchronisation).
    REQUIRE(wait_until(
        [&] {
            return f.log_of_endpoint(2).find("certificate renewal failed") != std::string::npos;
        },
        std::chrono::seconds(60)));
    const std::int64_t two_end = cert_not_after(f.state_dir(2) / "tls.crt");
    REQUIRE(two_end > 0);
    REQUIRE(wait_until([&] { return wall_now() > two_end + 1; }, std::chrono::seconds(60)));

    // A new release: ep1 gets it over the SSL swarm with its renewed certificate; ep2 gets no
    // byte from the seeder, from ep1 or from the web seed.
    REQUIRE(f.publish("r2", f.make_payload("r2", 2 * 1024 * 1024, 4)).exit_code == 0);
    const bool one = f.wait_state(1, "r2", "effective", kConverge);
    INFO(dump_logs(f, {1, 2}));
    REQUIRE(one);
    CHECK(cert_not_after(f.state_dir(1) / "tls.crt") > first_end);
    CHECK(cert_not_after(f.state_dir(1) / "tls.crt") > wall_now());
    REQUIRE(
        wait_until([&] { return f.state(2, "r2") == "downloading"; }, std::chrono::seconds(30)));
    // Waiting for something that must not happen: the deadline is the test.
    const bool leaked = wait_until(
        [&] {
            const auto r = f.release(2, "r2");
            return r.is_object() && r.value("progress", 0.0) > 0.0;
        },
        std::chrono::seconds(10));
    CHECK_FALSE(leaked);
    const std::string seeder_log = patchswarm::test::read_text(f.dir() / "seeder.log");
    CHECK(seeder_log.find("renewal of " + two_id.substr(0, 8)) != std::string::npos);
    CHECK(seeder_log.find("device is revoked") != std::string::npos);
    CHECK(seeder_log.find("web seed r2 refused to 127.82.0.12: not an enrolled device's web "
                          "secret") != std::string::npos);
    CHECK(f.log_of_endpoint(2).find("report refused: HTTP 403") != std::string::npos);
}
