// Sites: the pure parsing and classification of core/sites.hpp ([core]), and two sites of
// real endpoints on loopback behind one seeder ([integration]).
#include <catch2/catch.hpp>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "core/sites.hpp"
#include "io/http/client.hpp"
#include "support/fleet.hpp"
#include "support/root_init.hpp"

using namespace patchswarm;
using patchswarm::test::Fleet;
using patchswarm::test::wait_until;

// ---- core ------------------------------------------------------------------------------------

TEST_CASE("CIDRs parse strictly, IPv4 and IPv6", "[core]") {
    struct Case {
        std::string text;
        std::string want;  // canonical form; empty: refused
    };
    const std::vector<Case> cases = {
        {"10.77.1.0/24", "10.77.1.0/24"},
        {"10.0.0.0/8", "10.0.0.0/8"},
        {"0.0.0.0/0", "0.0.0.0/0"},
        {"192.168.1.7", "192.168.1.7/32"},
        {"192.168.1.7/32", "192.168.1.7/32"},
        {"2001:db8::/32", "2001:db8::/32"},
        {"2001:DB8:0:0::/64", "2001:db8::/64"},
        {"::/0", "::/0"},
        {"::1", "::1/128"},
        {"fd00:1:2:3::/64", "fd00:1:2:3::/64"},
        {"::ffff:10.1.0.0/16", "10.1.0.0/16"},  // IPv4-mapped is IPv4
        // refused
        {"10.77.1.1/24", ""},  // host bits set: a typo must not become another network
        {"10.77.1.0/33", ""},
        {"10.77.1.0/-1", ""},
        {"10.77.1.0/", ""},
        {"10.77.1.0/2x", ""},
        {"2001:db8::/129", ""},
        {"2001:db8::1/64", ""},
        {"10.77.1/24", ""},
        {"host.example/24", ""},
        {"", ""},
        {"/24", ""},
        {" 10.0.0.0/8", ""},
    };
    for (const auto& c : cases) {
        INFO(c.text);
        auto cidr = core::parse_cidr(c.text);
        if (c.want.empty()) {
            CHECK_FALSE(cidr);
            if (!cidr) CHECK(cidr.error().code == Errc::invalid_argument);
        } else {
            REQUIRE(cidr);
            CHECK(cidr->to_string() == c.want);
        }
    }
    auto typo = core::parse_cidr("10.77.1.1/16");
    REQUIRE_FALSE(typo);
    CHECK(typo.error().message.find("did you mean 10.77.0.0/16") != std::string::npos);
}

TEST_CASE("a CIDR holds exactly its addresses", "[core]") {
    struct Case {
        std::string cidr;
        std::string ip;
        bool inside;
    };
    const std::vector<Case> cases = {
        {"10.77.1.0/24", "10.77.1.0", true},
        {"10.77.1.0/24", "10.77.1.255", true},
        {"10.77.1.0/24", "10.77.2.0", false},
        {"10.77.1.0/24", "10.77.0.255", false},
        {"10.64.0.0/10", "10.127.255.255", true},
        {"10.64.0.0/10", "10.128.0.0", false},
        {"0.0.0.0/0", "203.0.113.9", true},
        {"0.0.0.0/0", "::1", false},
        {"::/0", "10.0.0.1", false},
        {"::/0", "2001:db8::1", true},
        {"2001:db8::/32", "2001:db8:ffff::1", true},
        {"2001:db8::/32", "2001:db9::", false},
        {"10.1.0.0/16", "::ffff:10.1.2.3", true},
        {"192.168.1.7/32", "192.168.1.7", true},
        {"192.168.1.7/32", "192.168.1.8", false},
    };
    for (const auto& c : cases) {
        INFO(c.cidr << " " << c.ip);
        auto cidr = core::parse_cidr(c.cidr);
        auto ip = core::parse_ip(c.ip);
        REQUIRE(cidr);
        REQUIRE(ip);
        CHECK(cidr->contains(*ip) == c.inside);
    }
    auto wide = core::parse_cidr("10.64.0.0/10");
    REQUIRE(wide);
    CHECK(core::to_string(wide->first()) == "10.64.0.0");
    CHECK(core::to_string(wide->last()) == "10.127.255.255");
    auto v6 = core::parse_cidr("2001:db8:1:2::/64");
    REQUIRE(v6);
    CHECK(core::to_string(v6->last()) == "2001:db8:1:2:ffff:ffff:ffff:ffff");
}

TEST_CASE("site specs parse as NAME=CIDR[,CIDR...]", "[core]") {
    struct Case {
        std::string spec;
        std::string want;  // to_spec of the result; empty: refused
    };
    const std::vector<Case> cases = {
        {"site1=10.77.1.0/24", "site1=10.77.1.0/24"},
        {"branch.paris-2=10.1.0.0/16, 10.2.0.0/16", "branch.paris-2=10.1.0.0/16,10.2.0.0/16"},
        {"v6=2001:db8:1::/48,10.9.0.0/16", "v6=2001:db8:1::/48,10.9.0.0/16"},
        {"host=10.0.0.5", "host=10.0.0.5/32"},
        {"=10.0.0.0/8", ""},
        {"site1", ""},
        {"site1=", ""},
        {"site1=10.0.0.0/8,", ""},
        {"site1=10.0.0.0/8,,10.1.0.0/16", ""},
        {"auto:x=10.0.0.0/8", ""},  // the automatic sites' prefix cannot be configured
        {"a b=10.0.0.0/8", ""},
        {"s\x1b[31m=10.0.0.0/8", ""},
        {std::string(65, 'a') + "=10.0.0.0/8", ""},
        {"site1=10.77.1.1/24", ""},
    };
    for (const auto& c : cases) {
        INFO(c.spec);
        auto site = core::parse_site(c.spec);
        if (c.want.empty()) {
            CHECK_FALSE(site);
        } else {
            REQUIRE(site);
            CHECK(core::to_spec(*site) == c.want);
        }
    }
}

TEST_CASE("a site map refuses a name or a range given twice", "[core]") {
    CHECK(core::SiteMap::parse({"a=10.1.0.0/16", "b=10.2.0.0/16"}));
    CHECK_FALSE(core::SiteMap::parse({"a=10.1.0.0/16", "a=10.2.0.0/16"}));
    CHECK_FALSE(core::SiteMap::parse({"a=10.1.0.0/16", "b=10.1.0.0/16"}));
    CHECK_FALSE(core::SiteMap::parse({"a=10.1.0.0/16", "b=nonsense"}));
    // Nested ranges are allowed: the most specific one decides.
    CHECK(core::SiteMap::parse({"campus=10.0.0.0/8", "lab=10.9.0.0/16"}));
    auto empty = core::SiteMap::parse({});
    REQUIRE(empty);
    CHECK(empty->empty());
}

TEST_CASE("addresses classify into configured sites, else their /24 or /64", "[core]") {
    auto map = core::SiteMap::parse({"campus=10.0.0.0/8", "lab=10.9.0.0/16,10.10.1.0/24",
                                     "paris=2001:db8:1::/48", "host=10.9.5.5"});
    REQUIRE(map);
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"10.1.2.3", "campus"},
        {"10.9.0.1", "lab"},
        {"10.10.1.200", "lab"},
        {"10.10.2.1", "campus"},
        {"10.9.5.5", "host"},  // /32 beats /16 beats /8
        {"::ffff:10.9.0.1", "lab"},
        {"2001:db8:1:ffff::9", "paris"},
        {"192.168.7.19", "auto:192.168.7.0/24"},
        {"127.40.1.10", "auto:127.40.1.0/24"},
        {"2001:db8:2:3:4:5:6:7", "auto:2001:db8:2:3::/64"},
        {"::1", "auto:::/64"},
        {"not-an-ip", "auto:?not-an-ip"},
    };
    for (const auto& [ip, want] : cases) {
        INFO(ip);
        CHECK(map->classify(std::string_view(ip)) == want);
    }
    const core::SiteMap none;
    CHECK(none.classify(std::string_view("10.1.2.3")) == "auto:10.1.2.0/24");
    CHECK(core::is_auto_site("auto:10.1.2.0/24"));
    CHECK_FALSE(core::is_auto_site("campus"));
}

// ---- command line ----------------------------------------------------------------------------

TEST_CASE("site options come from flags or the TOML file, and bad ones are usage errors", "[cli]") {
    using patchswarm::test::Child;
    using patchswarm::test::read_text;
    using patchswarm::test::run;
    using patchswarm::test::TempDir;
    using patchswarm::test::write_text;
    TempDir dir("ps-sites-cli");
    const auto keys = patchswarm::test::init_repo_root(dir.path(), dir / "repo");
    write_text(dir / "payload/install.sh", "#!/bin/sh\n");
    const std::string repo = (dir / "repo").string();
    REQUIRE(run({PATCHSWARM_SEEDER_BIN, "publish", "--repo", repo, "--key",
                 (dir / "release.key").string(), "--id", "KB1", "--payload",
                 (dir / "payload").string(), "--install", "./install.sh"})
                .exit_code == 0);

    for (const std::vector<std::string>& bad : {
             std::vector<std::string>{"--site", "site1"},
             {"--site", "site1=10.77.1.1/24"},
             {"--site", "a=10.1.0.0/16", "--site", "a=10.2.0.0/16"},
             {"--gateways", "-1"},
             {"--site-stall", "0"},
             {"--site-upload-limit", "-5"},
         }) {
        std::vector<std::string> argv = {
            PATCHSWARM_SEEDER_BIN, "serve", "--repo",          repo, "--http",
            "127.41.0.1:18080",    "--bt",  "127.41.0.1:16881"};
        argv.insert(argv.end(), bad.begin(), bad.end());
        const auto r = run(argv);
        INFO(r.output);
        CHECK(r.exit_code == 2);
    }
    CHECK(run({PATCHSWARM_SEEDER_BIN, "status", "--repo", repo, "--site", "x"}).exit_code == 2);
    CHECK(run({PATCHSWARM_DAEMON_BIN, "run", "--state-dir", (dir / "ep").string(), "--seeder",
               "http://127.41.0.1:1", "--trust", keys.root_json.string(), "--site-ranges",
               "10.77.1.0/24,10.77.2.1/24"})
              .exit_code == 2);

    write_text(dir / "serve.toml", "repo = \"" + repo +
                                       "\"\n"
                                       "http = \"127.41.0.1:18080\"\n"
                                       "bt = \"127.41.0.1:16881\"\n"
                                       "site = [\"site1=127.41.1.0/24\", \"site2=127.41.2.0/24\"]\n"
                                       "gateways = 1\n"
                                       "site-stall = 10\n"
                                       "site-upload-limit = 1000000\n");
    {
        Child serve({PATCHSWARM_SEEDER_BIN, "serve", "--config", (dir / "serve.toml").string()},
                    dir / "serve.log");
        REQUIRE(wait_until(
            [&] {
                return read_text(dir / "serve.log").find("serving repository") != std::string::npos;
            },
            std::chrono::seconds(30)));
        const std::string log = read_text(dir / "serve.log");
        CHECK(log.find("site site2=127.41.2.0/24") != std::string::npos);
        CHECK(log.find("1 gateway(s) per site, whole site after 10s") != std::string::npos);
        CHECK(log.find("upload cap per site 1000000 B/s") != std::string::npos);
        CHECK(serve.stop() == 0);
    }
    // status groups by the sites serve ran with, or by its own --site.
    auto status = run({PATCHSWARM_SEEDER_BIN, "status", "--repo", repo, "--json"});
    REQUIRE(status.exit_code == 0);
    auto doc = nlohmann::json::parse(status.output);
    const auto& sites = doc["releases"][0]["sites"];
    REQUIRE(sites.size() == 2);
    CHECK(sites[0]["name"] == "site1");
    CHECK(sites[1]["name"] == "site2");
    status = run(
        {PATCHSWARM_SEEDER_BIN, "status", "--repo", repo, "--json", "--site", "hq=127.41.0.0/24"});
    REQUIRE(status.exit_code == 0);
    doc = nlohmann::json::parse(status.output);
    REQUIRE(doc["releases"][0]["sites"].size() == 1);
    CHECK(doc["releases"][0]["sites"][0]["name"] == "hq");
}

// ---- integration -----------------------------------------------------------------------------

namespace {

// "tracker: answered 127.40.1.10:16881 site site1 gateway release KB: peers [a:p b:p]"
struct Answer {
    std::string asker;
    std::vector<std::string> peers;  // addresses without ports
};

std::vector<Answer> tracker_answers(const std::string& log) {
    static const std::regex line(R"(tracker: answered ([0-9.]+):\d+ .*peers \[([^\]]*)\])");
    std::vector<Answer> out;
    for (std::sregex_iterator it(log.begin(), log.end(), line), end; it != end; ++it) {
        Answer a;
        a.asker = (*it)[1];
        std::istringstream peers((*it)[2].str());
        for (std::string p; peers >> p;) a.peers.push_back(p.substr(0, p.rfind(':')));
        out.push_back(std::move(a));
    }
    return out;
}

std::string net_of(const std::string& ip) {
    return ip.substr(0, ip.rfind('.'));
}

}  // namespace

TEST_CASE("two sites converge, each seeing only its own peers and HQ", "[integration]") {
    // Site S is 127.40.S.0/24, endpoints 127.40.S.10-12; the seeder is 127.40.0.1.
    Fleet f("127.40.0");
    const std::size_t size = 6 << 20;
    const auto payload = f.make_payload("KB-SITES", size, 40);
    REQUIRE(f.publish("KB-SITES", payload).exit_code == 0);
    f.start_seeder({"--site", "site1=127.40.1.0/24", "--site", "site2=127.40.2.0/24", "--gateways",
                    "1", "--site-stall", "30", "--site-upload-limit", "20000000", "--log-level",
                    "debug"});
    auto ep = [](int site, int k) { return 10 * site + k; };  // endpoint numbers 10-12, 20-22
    auto address = [](int site, int k) {
        return "127.40." + std::to_string(site) + "." + std::to_string(10 + k);
    };
    for (int site = 1; site <= 2; ++site) {
        for (int k = 0; k < 3; ++k) {
            // No LSD: on loopback the two sites would find each other by multicast; here the
            // tracker is the only way peers meet.
            f.start_endpoint(ep(site, k),
                             {"--site-ranges", "127.40." + std::to_string(site) + ".0/24",
                              "--wan-limit", "50000000", "--no-lsd"},
                             "", address(site, k));
        }
    }
    for (int site = 1; site <= 2; ++site) {
        for (int k = 0; k < 3; ++k) {
            const bool effective =
                f.wait_state(ep(site, k), "KB-SITES", "effective", std::chrono::seconds(120));
            // The logs as they are after the wait (read before it they would still be empty).
            const std::string seeder_log = patchswarm::test::read_text(f.dir() / "seeder.log");
            INFO("endpoint " << address(site, k) << "\n"
                             << f.log_of_endpoint(ep(site, k)) << "\n--- seeder.log (tail)\n"
                             << seeder_log.substr(
                                    seeder_log.size() > 6000 ? seeder_log.size() - 6000 : 0));
            REQUIRE(effective);
        }
    }

    for (int site = 1; site <= 2; ++site) {
        for (int k = 0; k < 3; ++k) {
            const auto r = f.release(ep(site, k), "KB-SITES");
            INFO(address(site, k) << ": " << r.dump());
            const auto lan = r["bytes_from_lan"].get<std::uint64_t>();
            const auto wan = r["bytes_from_wan"].get<std::uint64_t>();
            CHECK(lan + wan >= size);
            // Nothing came from the other site: the only WAN source is HQ.
            CHECK(wan == r["bytes_from_seeder"].get<std::uint64_t>());
        }
    }

    // The tracker never handed a peer an address outside its own site, HQ aside.
    const std::string log = patchswarm::test::read_text(f.dir() / "seeder.log");
    const auto answers = tracker_answers(log);
    INFO(log.substr(log.size() > 4000 ? log.size() - 4000 : 0));
    CHECK(answers.size() >= 6);
    std::set<std::string> askers;
    for (const auto& a : answers) {
        askers.insert(a.asker);
        for (const auto& p : a.peers) {
            INFO(a.asker << " was given " << p);
            CHECK((p == f.seeder_address() || net_of(p) == net_of(a.asker)));
        }
    }
    CHECK(askers.size() == 6);
    // HQ's address went only to gateways (one per site) or to a stalled site.
    const std::regex given_hq(
        "tracker: answered [0-9.:]+ site \\S+( gateway| stalled)*.*peers \\[" + f.seeder_address() +
        ":");
    for (std::sregex_iterator it(log.begin(), log.end(), given_hq), end; it != end; ++it) {
        INFO(it->str());
        CHECK((*it)[1].matched);
    }

    // The fleet view groups the endpoints by site, with their WAN bytes.
    REQUIRE(wait_until(
        [&] {
            const auto s = f.seeder_status();
            if (!s.is_object() || s["releases"].empty()) return false;
            const auto& sites = s["releases"][0]["sites"];
            return sites.size() == 2 && sites[0]["effective"] == 3 && sites[1]["effective"] == 3;
        },
        std::chrono::seconds(30)));
    const auto status = f.seeder_status();
    const auto& sites = status["releases"][0]["sites"];
    INFO(status.dump());
    CHECK(sites[0]["name"] == "site1");
    CHECK(sites[1]["name"] == "site2");
    for (const auto& s : sites) {
        CHECK(s["endpoints"] == 3);
        CHECK(s["bytes_from_wan"].get<std::uint64_t>() >= size);
        // About one copy per site crossed the WAN: the gateway's (the other endpoints get HQ
        // only if their site stalls for 30 s).
        CHECK(s["bytes_from_wan"].get<std::uint64_t>() <= size * 3 / 2);
        CHECK(s["bytes_from_wan"].get<std::uint64_t>() + s["bytes_from_lan"].get<std::uint64_t>() >=
              3 * size);
    }

    // The web seed decides the same way: in site1 only its gateway is served.
    // (Each endpoint presents its own web seed credentials, as the agent does.)
    auto web_seed = [&](const std::string& from, int as_endpoint) {
        io::http::ClientRequest req;
        req.url = f.seeder_url() + "/v1/payload/KB-SITES/KB-SITES/install.sh";
        req.local_address = from;
        if (as_endpoint >= 0) req.headers["Authorization"] = f.web_seed_authorization(as_endpoint);
        auto r = io::http::request_sync(std::move(req));
        return r ? r->status : -1;
    };
    int served = 0;
    for (int k = 0; k < 3; ++k) {
        const int status = web_seed(address(1, k), ep(1, k));
        CHECK((status == 200 || status == 403));
        served += status == 200 ? 1 : 0;
    }
    CHECK(served == 1);
    CHECK(web_seed("127.40.1.99", ep(1, 0)) == 403);  // not a gateway
    // Without credentials nothing, whatever the site (enrolment is on).
    CHECK(web_seed("127.40.3.5", -1) == 403);
    CHECK(web_seed(address(1, 0), -1) == 403);
}

TEST_CASE("a web seed refused to a non-gateway is tried again and served once its site stalls",
          "[integration]") {
    // One site, 127.41.1.0/24. Endpoint 10 becomes the gateway but can download nothing (a 1
    // byte/s cap), so the site stalls 4 s after it started. Endpoint 11 is no gateway: its web
    // seed is refused (403) at first, and only a re-added web seed gets the payload before its
    // next tracker announce (30 s) would hand it HQ.
    Fleet f("127.41.0");
    const std::size_t size = 1 << 20;
    const auto payload = f.make_payload("KB-STALL", size, 41);
    REQUIRE(f.publish("KB-STALL", payload).exit_code == 0);
    f.start_seeder({"--site", "site1=127.41.1.0/24", "--gateways", "1", "--site-stall", "4",
                    "--log-level", "debug"});
    f.start_endpoint(10,
                     {"--site-ranges", "127.41.1.0/24", "--no-lsd", "--download-limit", "1",
                      "--webseed-after", "3600"},
                     "", "127.41.1.10");
    const auto seeder_log = f.dir() / "seeder.log";
    REQUIRE(wait_until(
        [&] {
            return patchswarm::test::read_text(seeder_log).find("answered 127.41.1.10") !=
                   std::string::npos;
        },
        std::chrono::seconds(30)));
    const auto started = std::chrono::steady_clock::now();
    f.start_endpoint(11, {"--site-ranges", "127.41.1.0/24", "--no-lsd", "--webseed-after", "2"}, "",
                     "127.41.1.11");
    INFO(f.log_of_endpoint(11));
    REQUIRE(f.wait_state(11, "KB-STALL", "effective", std::chrono::seconds(25)));
    const auto took = std::chrono::steady_clock::now() - started;
    INFO("took " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
    // Refused first (a non-gateway of a site still inside its stall window), then served.
    const std::string log = patchswarm::test::read_text(seeder_log);
    INFO(log.substr(log.size() > 4000 ? log.size() - 4000 : 0));
    CHECK(log.find("refused to 127.41.1.11") != std::string::npos);
    const auto r = f.release(11, "KB-STALL");
    CHECK(r["bytes_from_seeder"].get<std::uint64_t>() >= size);
    CHECK(f.state(10, "KB-STALL") == "downloading");
}
