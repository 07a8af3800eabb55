// The dashboard (GET / on `serve`) in a real headless Chromium against a real loopback fleet:
// a seeder, two endpoints that install a release and one, named like an HTML injection, whose
// install fails. The page must show the release, the counts, a site, the time-to-protection
// curve, and the failing endpoint's name as text. Addresses 127.70.0.x only.
//
// Needs `chromium` (scripts/setup.sh installs it); without it the test says SKIPPED and passes,
// except when PATCHSWARM_REQUIRE_BROWSER=1 (scripts/test.sh), which fails it instead.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <regex>

#include "io/http/client.hpp"
#include "support/fleet.hpp"

using nlohmann::json;
using patchswarm::test::Fleet;
using patchswarm::test::read_text;
using patchswarm::test::wait_until;
using patchswarm::test::write_random;
using patchswarm::test::write_text;
namespace fs = std::filesystem;
namespace http = patchswarm::io::http;
using namespace std::chrono_literals;

namespace {

constexpr const char* kHostile = "<img src=x onerror=alert(1)>";
constexpr const char* kRelease = "MS70-001";

std::string tail_of(const fs::path& p) {
    const std::string s = read_text(p);
    return s.size() > 3000 ? s.substr(s.size() - 3000) : s;
}

// $PATCHSWARM_CHROMIUM, else chromium or chromium-browser on PATH; empty if none.
std::string find_chromium() {
    if (const char* env = std::getenv("PATCHSWARM_CHROMIUM"); env && *env) return env;
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/bin:/bin";
    for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
        std::size_t start = 0;
        while (start <= dirs.size()) {
            const std::size_t end = std::min(dirs.find(':', start), dirs.size());
            const fs::path candidate = fs::path(dirs.substr(start, end - start)) / name;
            if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
            start = end + 1;
        }
    }
    return {};
}

struct BrowserRun {
    bool finished = false;  // exited before the deadline
    int exit_code = -1;
    std::string out;  // stdout
    std::string err;  // stderr
};

// Runs the browser in its own process group with stdout and stderr to files; on the deadline
// (or after it exits, for helpers left behind) the whole group is killed and reaped.
BrowserRun run_browser(std::vector<std::string> argv, const fs::path& dir, const std::string& tag,
                       std::chrono::seconds timeout) {
    const fs::path out = dir / (tag + ".out"), err = dir / (tag + ".err");
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        ::setpgid(0, 0);
        const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o >= 0) ::dup2(o, 1);
        if (e >= 0) ::dup2(e, 2);
        std::vector<char*> args;
        for (auto& a : argv) args.push_back(a.data());
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    ::setpgid(pid, pid);  // also from here, so the kill below cannot race the child's own call
    BrowserRun r;
    int status = 0;
    r.finished = wait_until([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, timeout);
    ::kill(-pid, SIGKILL);
    if (!r.finished) ::waitpid(pid, &status, 0);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = read_text(out);
    r.err = read_text(err);
    return r;
}

std::vector<std::string> browser_argv(const std::string& chromium, const fs::path& profile) {
    // Root needs --no-sandbox; a private profile keeps runs (and parallel tests) apart.
    return {chromium,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--user-data-dir=" + profile.string()};
}

// The text of the element carrying data-testid="id" (the first one), as Chromium serialises it.
std::string testid_text(const std::string& dom, const std::string& id) {
    const std::regex re("data-testid=\"" + id + "\"[^>]*>([^<]*)<");
    std::smatch m;
    return std::regex_search(dom, m, re) ? m[1].str() : std::string("<missing " + id + ">");
}

std::size_t occurrences(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
    return n;
}

fs::path test_binary_dir() {
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    return ec ? fs::current_path() : exe.parent_path();
}

// scripts/test.sh installs chromium and sets PATCHSWARM_REQUIRE_BROWSER=1: there a skip would
// hide a broken dashboard, so a missing or broken browser fails the test.
bool browser_required() {
    const char* v = std::getenv("PATCHSWARM_REQUIRE_BROWSER");
    return v && std::string(v) == "1";
}

// The browser to test with; empty (after a warning) when the test is to be skipped.
std::string chromium_or_skip() {
    const std::string chromium = find_chromium();
    if (chromium.empty()) {
        if (browser_required())
            FAIL("PATCHSWARM_REQUIRE_BROWSER=1 but no chromium: scripts/setup.sh installs it");
        WARN("SKIPPED: no chromium on PATH (apt-get install chromium, or set PATCHSWARM_CHROMIUM)");
    }
    return chromium;
}

}  // namespace

TEST_CASE("the dashboard shows a converged fleet in a real browser, endpoint names as text",
          "[browser][integration]") {
    const std::string chromium = chromium_or_skip();
    if (chromium.empty()) return;

    Fleet f("127.70.0");
    const fs::path payload = f.dir() / "payloads" / "p1";
    write_random(payload / "data/patch.bin", 256 << 10, 70);
    // Installs fail on an endpoint whose state folder holds "fail-install".
    write_text(payload / "install.sh",
               "#!/bin/sh\n"
               "if [ -e \"$PATCHSWARM_STATE_DIR/fail-install\" ]; then echo 'disk full'; exit 5; "
               "fi\n"
               "exit 0\n");
    const auto pub = f.publish(kRelease, payload, {"--severity", "critical"});
    REQUIRE(pub.exit_code == 0);
    f.start_seeder({"--site", "hq-lan=127.70.0.0/24"});
    f.start_endpoint(1);
    f.start_endpoint(2);
    const bool converged = f.wait_state(1, kRelease, "effective", 120s) &&
                           f.wait_state(2, kRelease, "effective", 120s);
    INFO(tail_of(f.dir() / "seeder.log") << "\n--- ep1\n" << f.log_of_endpoint(1));
    REQUIRE(converged);

    // The third endpoint carries a name that is HTML; its install fails.
    write_text(f.state_dir(3) / "fail-install", "");
    write_text(f.boot_id_file(3), "boot-1\n");
    patchswarm::test::Child hostile({PATCHSWARM_DAEMON_BIN,
                                     "run",
                                     "--state-dir",
                                     f.state_dir(3).string(),
                                     "--seeder",
                                     f.seeder_url(),
                                     "--trust",
                                     f.pinned_root().string(),
                                     "--bt",
                                     f.endpoint_address(3) + ":16881",
                                     "--boot-id-file",
                                     f.boot_id_file(3).string(),
                                     "--heartbeat",
                                     "1",
                                     "--poll-wait",
                                     "5",
                                     "--name",
                                     kHostile,
                                     "--enroll-token",
                                     f.fleet_token()},
                                    f.dir() / "ep3.log");
    // The seeder's view: two effective, the hostile one listed as needing attention.
    json release;
    const bool reported = wait_until(
        [&] {
            const json s = f.seeder_status();
            if (!s.is_object() || s["releases"].empty()) return false;
            release = s["releases"][0];
            if (release["effective"] != 2) return false;
            for (const auto& e : release["not_effective"]) {
                if (e["hostname"] == kHostile && e["state"] != "unreported") return true;
            }
            return false;
        },
        120s);
    INFO(release.dump() << "\n--- ep3\n" << tail_of(f.dir() / "ep3.log"));
    REQUIRE(reported);
    REQUIRE(release["effective_times"].size() == 2);

    // The page itself: served as HTML with a CSP that keeps it to its own origin.
    http::ClientRequest req;
    req.url = f.seeder_url() + "/";
    req.timeout = 10s;
    auto page = http::request_sync(std::move(req));
    REQUIRE(page);
    CHECK(page->status == 200);
    CHECK(page->body.find("<!doctype html>") == 0);
    CHECK(page->body.find("/v1/status") != std::string::npos);
    CHECK(page->body.find("innerHTML") == std::string::npos);
    // Nothing loaded from elsewhere: the only absolute URL is the SVG namespace name.
    std::string body = page->body;
    for (const std::string ns = "http://www.w3.org/2000/svg";;) {
        const auto at = body.find(ns);
        if (at == std::string::npos) break;
        body.erase(at, ns.size());
    }
    CHECK(body.find("http://") == std::string::npos);
    CHECK(body.find("https://") == std::string::npos);

    const fs::path scratch = f.dir() / "browser";
    fs::create_directories(scratch);

    // A quick start-up probe: a browser that cannot run here is a skip, not a failure.
    {
        auto argv = browser_argv(chromium, scratch / "profile-probe");
        argv.push_back("--dump-dom");
        argv.push_back("about:blank");
        const auto probe = run_browser(argv, scratch, "probe", 60s);
        if (!probe.finished || probe.out.find("<body") == std::string::npos) {
            if (browser_required()) FAIL("chromium could not start: " << probe.err.substr(0, 2000));
            WARN("SKIPPED: " << chromium << " could not start (exit " << probe.exit_code
                             << "): " << probe.err.substr(0, 2000));
            return;
        }
    }

    auto argv = browser_argv(chromium, scratch / "profile-dom");
    argv.push_back("--virtual-time-budget=8000");
    argv.push_back("--dump-dom");
    argv.push_back(f.seeder_url() + "/dashboard");
    const auto dom_run = run_browser(argv, scratch, "dom", 90s);
    INFO("chromium stderr: " << dom_run.err.substr(0, 3000));
    REQUIRE(dom_run.finished);
    const std::string& dom = dom_run.out;
    INFO("DOM: " << dom.substr(0, 20000));

    CHECK(dom.find("data-loaded=\"1\"") != std::string::npos);  // /v1/status was fetched
    CHECK(testid_text(dom, "error").empty());
    CHECK(testid_text(dom, "endpoints-known") == "3");
    CHECK(testid_text(dom, "release-id") == kRelease);
    CHECK(dom.find("data-release=\"MS70-001\"") != std::string::npos);
    CHECK(testid_text(dom, "release-effective") == "2");
    CHECK(testid_text(dom, "release-endpoints") == "3");
    CHECK(testid_text(dom, "count-effective") == "2");
    CHECK(testid_text(dom, "count-offline_not_patched") == "0");
    CHECK(testid_text(dom, "count-offline_effective") == "0");
    CHECK(dom.find("data-testid=\"count-stale\"") == std::string::npos);  // shown split
    if (release["halt"].is_null()) {
        CHECK(testid_text(dom, "halt") == "not halted");
    } else {  // an auto-halt on the failed install: the page must say so, with the reason
        CHECK(testid_text(dom, "halt-reason") == release["halt"]["reason"].get<std::string>());
    }
    CHECK(testid_text(dom, "rings-none") != "");
    // One site, as configured, with all three endpoints.
    CHECK(occurrences(dom, "data-testid=\"site-row\"") == 1);
    CHECK(testid_text(dom, "site-name") == "hq-lan");
    CHECK(testid_text(dom, "site-endpoints") == "3");
    CHECK(testid_text(dom, "site-effective") == "2");
    CHECK(
        std::regex_search(testid_text(dom, "site-wan-copies"), std::regex("^[0-9]+\\.[0-9]{2}$")));
    // Time to protection: figures and a curve with two steps.
    CHECK(testid_text(dom, "ttp-effective") == "2 / 3");
    CHECK(testid_text(dom, "ttp-first") != "–");
    CHECK(testid_text(dom, "ttp-last") != "–");
    CHECK(dom.find("data-testid=\"ttp-curve\"") != std::string::npos);
    std::smatch path;
    REQUIRE(std::regex_search(dom, path,
                              std::regex("<path [^>]*d=\"(M[^\"]+)\"[^>]*data-testid=\"ttp-path\""
                                         "[^>]*data-points=\"2\"")));
    CHECK(occurrences(path[1].str(), " V") == 2);
    // The hostile endpoint: a row needing attention whose name is text, not an element.
    CHECK(testid_text(dom, "attention-count") == "1");
    // The group needing attention comes with the command that re-arms it.
    CHECK(dom.find("data-testid=\"attention-command\">patchswarm-seeder retry MS70-001 --repo ") !=
          std::string::npos);
    CHECK(occurrences(dom, "data-testid=\"attention-row\"") == 1);
    CHECK(testid_text(dom, "attention-host") == "&lt;img src=x onerror=alert(1)&gt;");
    CHECK(dom.find("<img") == std::string::npos);
    CHECK_FALSE(testid_text(dom, "attention-why").empty());

    // A screenshot for people: in the temp dir, then copied next to the test binary.
    auto shot_argv = browser_argv(chromium, scratch / "profile-shot");
    const fs::path shot = scratch / "dashboard.png";
    shot_argv.push_back("--virtual-time-budget=8000");
    shot_argv.push_back("--hide-scrollbars");
    shot_argv.push_back("--window-size=1280,900");
    shot_argv.push_back("--screenshot=" + shot.string());
    shot_argv.push_back(f.seeder_url() + "/");
    const auto shot_run = run_browser(shot_argv, scratch, "shot", 90s);
    INFO("chromium stderr: " << shot_run.err.substr(0, 3000));
    REQUIRE(shot_run.finished);
    REQUIRE(fs::exists(shot));
    const std::string png = read_text(shot);
    CHECK(png.size() > 10000);
    CHECK(png.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0);
    const fs::path stable = test_binary_dir() / "dashboard.png";
    std::error_code ec;
    fs::copy_file(shot, stable, fs::copy_options::overwrite_existing, ec);
    CHECK_FALSE(ec);
    std::cout << "dashboard screenshot: " << stable.string() << "\n";
}

TEST_CASE("behind the admin credential the browser shows the dashboard only with the token",
          "[browser][integration]") {
    const std::string chromium = chromium_or_skip();
    if (chromium.empty()) return;
    Fleet f("127.70.1");
    REQUIRE(f.publish(kRelease, f.make_payload(kRelease, 64 << 10, 71)).exit_code == 0);
    f.start_seeder({"--admin-auth", "always"});
    // serve writes the token file before it listens: once /healthz answers, the file is there.
    REQUIRE(wait_until(
        [&] {
            http::ClientRequest req;
            req.url = f.seeder_url() + "/healthz";
            req.timeout = 2s;
            auto r = http::request_sync(std::move(req));
            return r && r->status == 200;
        },
        30s));
    const std::string token = read_text(f.dir() / "repo/keys/admin.token").substr(0, 64);
    const fs::path scratch = f.dir() / "browser";
    fs::create_directories(scratch);
    const std::string host = f.seeder_url().substr(7);  // without "http://"

    // As an admin opens it: credentials in the URL (or typed into the login prompt).
    auto argv = browser_argv(chromium, scratch / "profile-admin");
    argv.push_back("--virtual-time-budget=8000");
    argv.push_back("--dump-dom");
    argv.push_back("http://admin:" + token + "@" + host + "/");
    const auto admin = run_browser(argv, scratch, "admin", 90s);
    INFO("chromium stderr: " << admin.err.substr(0, 3000));
    REQUIRE(admin.finished);
    INFO("DOM: " << admin.out.substr(0, 5000));
    CHECK(admin.out.find("data-loaded=\"1\"") != std::string::npos);
    CHECK(testid_text(admin.out, "error").empty());
    CHECK(testid_text(admin.out, "release-id") == kRelease);

    // A stranger gets the 401 answer (Chromium shows no page at all), not the page nor its data.
    const auto refusals = [&] {
        return occurrences(read_text(f.dir() / "seeder.log"), "refused, no admin credential");
    };
    const std::size_t refused_before = refusals();
    auto stranger_argv = browser_argv(chromium, scratch / "profile-stranger");
    stranger_argv.push_back("--virtual-time-budget=4000");
    stranger_argv.push_back("--dump-dom");
    stranger_argv.push_back(f.seeder_url() + "/");
    const auto stranger = run_browser(stranger_argv, scratch, "stranger", 90s);
    REQUIRE(stranger.finished);
    CHECK(refusals() > refused_before);
    CHECK(stranger.out.find("data-loaded") == std::string::npos);
    CHECK(stranger.out.find(kRelease) == std::string::npos);
}
