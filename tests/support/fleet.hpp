// Test support: a real seeder and real endpoints (the built binaries) on loopback. Each fleet
// uses its own 127.N.0.x addresses so tests can run in parallel without port clashes.
#pragma once

#include <algorithm>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/manifest.hpp"
#include "crypto/crypto.hpp"
#include "io/key_files.hpp"
#include "support/process.hpp"

namespace patchswarm::test {

class Fleet {
  public:
    // `net` is the first three octets, e.g. "127.10.0".
    //
    // The repository gets root version 1 with 2 of 3 root keys (keys/root1..3) and 2 of 3
    // release keys (keys/release1..3); publish() signs with release1 and release2. Endpoints pin
    // root/1.json as installed (dir/root.json).
    explicit Fleet(std::string net) : dir_("ps-fleet"), net_(std::move(net)) {
        for (const char* name : {"root1", "root2", "root3", "release1", "release2", "release3"}) {
            const auto r = run({PATCHSWARM_SEEDER_BIN, "keygen", "--out", key_base(name)});
            if (r.exit_code != 0) throw std::runtime_error("keygen failed: " + r.output);
        }
        const auto r = run({PATCHSWARM_SEEDER_BIN,
                            "root",
                            "init",
                            "--repo",
                            (dir_ / "repo").string(),
                            "--root-pub",
                            key_base("root1") + ".pub",
                            "--root-pub",
                            key_base("root2") + ".pub",
                            "--root-pub",
                            key_base("root3") + ".pub",
                            "--root-threshold",
                            "2",
                            "--release-pub",
                            key_base("release1") + ".pub",
                            "--release-pub",
                            key_base("release2") + ".pub",
                            "--release-pub",
                            key_base("release3") + ".pub",
                            "--release-threshold",
                            "2",
                            "--key",
                            key_base("root1") + ".key",
                            "--key",
                            key_base("root2") + ".key"});
        if (r.exit_code != 0) throw std::runtime_error("root init failed: " + r.output);
        fs::copy_file(dir_ / "repo/root/1.json", pinned_root());
    }

    std::string key_base(const std::string& name) const { return (dir_ / "keys" / name).string(); }
    fs::path pinned_root() const { return dir_ / "root.json"; }
    // `root rotate` (signed by root1 and root3) with extra options, e.g. --new-feed-key.
    RunResult rotate_root(std::vector<std::string> extra = {}) {
        std::vector<std::string> argv = {PATCHSWARM_SEEDER_BIN,
                                         "root",
                                         "rotate",
                                         "--repo",
                                         (dir_ / "repo").string(),
                                         "--key",
                                         key_base("root1") + ".key",
                                         "--key",
                                         key_base("root3") + ".key"};
        argv.insert(argv.end(), extra.begin(), extra.end());
        return run(argv);
    }
    ~Fleet() {
        endpoints_.clear();
        seeder_.reset();
    }

    const TempDir& dir() const { return dir_; }
    std::string seeder_address() const { return net_ + ".1"; }
    std::string seeder_url() const { return "http://" + seeder_address() + ":18080"; }
    std::string endpoint_address(int i) const { return net_ + "." + std::to_string(10 + i); }
    std::string relay_url(int i) const { return "http://" + endpoint_address(i) + ":18090"; }
    fs::path state_dir(int i) const { return dir_ / ("ep" + std::to_string(i)); }
    fs::path boot_id_file(int i) const { return dir_ / ("boot" + std::to_string(i)); }

    // A payload folder with `bytes` of random data and an install script that appends one line
    // to $PATCHSWARM_STATE_DIR/installed-<id>, so a test can count how often it ran.
    fs::path make_payload(const std::string& name, std::size_t bytes, unsigned seed,
                          int exit_code = 0) {
        const fs::path p = dir_ / "payloads" / name;
        write_random(p / "data/patch.bin", bytes, seed);
        write_text(p / "install.sh",
                   "#!/bin/sh\n"
                   "echo \"installed $PATCHSWARM_RELEASE_ID\" >> "
                   "\"$PATCHSWARM_STATE_DIR/installed-$PATCHSWARM_RELEASE_ID\"\n"
                   "exit " +
                       std::to_string(exit_code) + "\n");
        return p;
    }

    RunResult publish(const std::string& id, const fs::path& payload,
                      std::vector<std::string> extra = {}) {
        std::vector<std::string> argv = {PATCHSWARM_SEEDER_BIN,
                                         "publish",
                                         "--repo",
                                         (dir_ / "repo").string(),
                                         "--key",
                                         key_base("release1") + ".key",
                                         "--key",
                                         key_base("release2") + ".key",
                                         "--id",
                                         id,
                                         "--payload",
                                         payload.string(),
                                         "--install",
                                         "./install.sh"};
        argv.insert(argv.end(), extra.begin(), extra.end());
        return run(argv);
    }

    // Enrolment: `ca init` makes releases published from then on SSL torrents that only
    // enrolled endpoints can join; start those with {"--enroll-token", create_token()}.
    void init_ca() {
        const auto r =
            run({PATCHSWARM_SEEDER_BIN, "ca", "init", "--repo", (dir_ / "repo").string()});
        if (r.exit_code != 0) throw std::runtime_error("ca init failed: " + r.output);
    }
    // `token create` with extra options (e.g. --uses 2); returns the token.
    std::string create_token(std::vector<std::string> extra = {}) const {
        std::vector<std::string> argv = {PATCHSWARM_SEEDER_BIN, "token", "create", "--repo",
                                         (dir_ / "repo").string()};
        argv.insert(argv.end(), extra.begin(), extra.end());
        const auto r = run(argv);
        if (r.exit_code != 0) throw std::runtime_error("token create failed: " + r.output);
        // The token is printed on stdout, a note on stderr; both are captured.
        std::istringstream lines(r.output);
        for (std::string line; std::getline(lines, line);) {
            if (line.starts_with("pst_")) return line;
        }
        throw std::runtime_error("no token in: " + r.output);
    }

    // start_endpoint() passes every endpoint the fleet token (see there); false for tests of
    // endpoints that never enrolled.
    bool auto_enrol = true;
    // One token for the whole test fleet, created on first use.
    const std::string& fleet_token() {
        if (fleet_token_.empty()) fleet_token_ = create_token({"--uses", "1000"});
        return fleet_token_;
    }

    // Endpoint i's device id (from its device.pub), "" before it made its key.
    std::string device_id(int i) const {
        const auto key = patchswarm::io::load_public_key(state_dir(i) / "device.pub");
        return key ? patchswarm::core::device_id_for(*key) : std::string();
    }
    // The Authorization header an enrolled endpoint i sends to the web seed (HTTP Basic: device
    // id and web secret, as the agent puts them in the web seed URL).
    std::string web_seed_authorization(int i) const {
        const std::string secret = read_text(state_dir(i) / "web.secret");
        return "Basic " + patchswarm::crypto::to_base64(
                              patchswarm::crypto::as_bytes(device_id(i) + ":" + secret));
    }

    // Enrols endpoint i now (`patchswarmd enroll`), for one that starts while HQ is away.
    void enroll(int i) {
        const auto r =
            run({PATCHSWARM_DAEMON_BIN, "enroll", "--state-dir", state_dir(i).string(), "--seeder",
                 seeder_url(), "--token", fleet_token(), "--bt", endpoint_address(i) + ":16881"});
        if (r.exit_code != 0) throw std::runtime_error("enroll failed: " + r.output);
    }

    void start_seeder(std::vector<std::string> extra = {}) {
        std::vector<std::string> argv = {PATCHSWARM_SEEDER_BIN,
                                         "serve",
                                         "--repo",
                                         (dir_ / "repo").string(),
                                         "--http",
                                         seeder_address() + ":18080",
                                         "--bt",
                                         seeder_address() + ":16881"};
        argv.insert(argv.end(), extra.begin(), extra.end());
        seeder_ = std::make_unique<Child>(argv, dir_ / "seeder.log");
    }
    void stop_seeder() {
        if (seeder_) seeder_->stop();
        seeder_.reset();
    }

    // `address`: the endpoint's own address instead of endpoint_address(i) (e.g. another /24
    // for a second site).
    void start_endpoint(int i, std::vector<std::string> extra = {}, const std::string& seeders = "",
                        const std::string& address = "") {
        if (!fs::exists(boot_id_file(i))) write_text(boot_id_file(i), "boot-1\n");
        std::vector<std::string> argv = {
            PATCHSWARM_DAEMON_BIN,
            "run",
            "--state-dir",
            state_dir(i).string(),
            "--seeder",
            seeders.empty() ? seeder_url() : seeders,
            "--trust",
            pinned_root().string(),
            "--bt",
            (address.empty() ? endpoint_address(i) : address) + ":16881",
            "--boot-id-file",
            boot_id_file(i).string(),
            "--heartbeat",
            "1",
            "--poll-wait",
            "5",
            "--name",
            "desk-" + std::to_string(i),
            "--log-level",
            "debug"};
        argv.insert(argv.end(), extra.begin(), extra.end());
        // The repository has a fleet CA (root init makes one): an endpoint takes part only once
        // enrolled, so each gets the fleet's test token unless the test says otherwise.
        const bool has_token =
            std::find(extra.begin(), extra.end(), "--enroll-token") != extra.end() ||
            std::find(extra.begin(), extra.end(), "--enroll-token-file") != extra.end();
        if (auto_enrol && !has_token && fs::exists(dir_ / "repo/keys/fleet-ca.pem")) {
            argv.push_back("--enroll-token");
            argv.push_back(fleet_token());
        }
        endpoints_[i] = std::make_unique<Child>(argv, dir_ / ("ep" + std::to_string(i) + ".log"));
    }
    Child& endpoint(int i) { return *endpoints_.at(i); }
    void drop_endpoint(int i) { endpoints_.erase(i); }

    void reboot(int i) {
        write_text(boot_id_file(i), "boot-" + std::to_string(++boots_) + "-after\n");
    }

    nlohmann::json endpoint_status(int i) const {
        const auto r =
            run({PATCHSWARM_DAEMON_BIN, "status", "--state-dir", state_dir(i).string(), "--json"});
        if (r.exit_code != 0) return nullptr;
        return nlohmann::json::parse(r.output, nullptr, false);
    }

    // The endpoint's view of one release, or null.
    nlohmann::json release(int i, const std::string& id) const {
        const auto s = endpoint_status(i);
        if (!s.is_object()) return nullptr;
        for (const auto& r : s["releases"]) {
            if (r["id"] == id) return r;
        }
        return nullptr;
    }

    std::string state(int i, const std::string& id) const {
        const auto r = release(i, id);
        return r.is_object() ? r["state"].get<std::string>() : "";
    }

    bool wait_state(int i, const std::string& id, const std::string& want,
                    std::chrono::seconds timeout = std::chrono::seconds(90)) const {
        return wait_until([&] { return state(i, id) == want; }, timeout);
    }

    nlohmann::json seeder_status() const {
        const auto r =
            run({PATCHSWARM_SEEDER_BIN, "status", "--repo", (dir_ / "repo").string(), "--json"});
        if (r.exit_code != 0) return nullptr;
        return nlohmann::json::parse(r.output, nullptr, false);
    }

    int install_count(int i, const std::string& id) const {
        const std::string text = read_text(state_dir(i) / ("installed-" + id));
        return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
    }

    std::string log_of_endpoint(int i) const {
        return read_text(dir_ / ("ep" + std::to_string(i) + ".log"));
    }

  private:
    TempDir dir_;
    std::string net_;
    std::unique_ptr<Child> seeder_;
    std::map<int, std::unique_ptr<Child>> endpoints_;
    int boots_ = 1;
    std::string fleet_token_;
};

}  // namespace patchswarm::test
