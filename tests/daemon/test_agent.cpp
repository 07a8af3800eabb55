// The endpoint agent in-process, with a FakeEnv (processes held by the test) and a loopback
// FakeSeeder serving signed roots, feeds, manifests and torrents: the feed state transaction,
// persist-before-replace, shutdown with a running install, and the root walk through
// core::update_root. Faults in state.db are injected with SQLite triggers, so a write fails
// exactly where a full disk or a crash would stop it.
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <catch2/catch.hpp>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "core/envelope.hpp"
#include "core/feed.hpp"
#include "core/manifest.hpp"
#include "core/root.hpp"
#include "daemon/agent.hpp"
#include "daemon/endpoint_store.hpp"
#include "io/fs.hpp"
#include "io/key_files.hpp"
#include "io/sqlite.hpp"
#include "io/swarm/torrent_file.hpp"
#include "support/fake_env.hpp"
#include "support/fake_seeder.hpp"
#include "support/process.hpp"
#include "support/signing.hpp"

using namespace patchswarm;
using namespace std::chrono_literals;
using patchswarm::test::FakeEnv;
using patchswarm::test::FakeSeeder;
using patchswarm::test::TempDir;
using patchswarm::test::wait_until;
namespace fs = std::filesystem;

using patchswarm::test::seal;
using patchswarm::test::wall_now;
namespace {

// Everything the agent logs, for waiting on what it decided.
class LogCapture {
  public:
    LogCapture() {
        sink_ = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
        previous_ = spdlog::default_logger();
        spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", sink_));
        spdlog::set_level(spdlog::level::debug);
    }
    ~LogCapture() { spdlog::set_default_logger(previous_); }
    // wait_until with the whole log in the failure message.
    bool eventually(const std::function<bool()>& pred, std::chrono::seconds timeout = 30s) {
        const bool ok = wait_until(pred, timeout);
        if (!ok) UNSCOPED_INFO("agent log:\n" << text());
        return ok;
    }
    bool contains(const std::string& text) {
        sink_->flush();
        std::lock_guard lock(mu_);
        return text_of().find(text) != std::string::npos;
    }
    std::string text() {
        std::lock_guard lock(mu_);
        return text_of();
    }

  private:
    // ostream_sink_mt writes under its own mutex; str() copies, so a racing write is not torn.
    std::string text_of() { return out_.str(); }
    std::ostringstream out_;
    std::mutex mu_;
    std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
    std::shared_ptr<spdlog::logger> previous_;
};

// The repository's keys and the pinned root (version 1) naming them.
struct Keys {
    crypto::KeyPair root = crypto::generate_keypair();
    crypto::KeyPair release = crypto::generate_keypair();
    crypto::KeyPair feed = crypto::generate_keypair();

    core::RootDocument root_doc(std::uint64_t version) const {
        core::RootDocument doc;
        doc.version = version;
        doc.expires = wall_now() + 86400;
        const crypto::PublicKey root_pub[] = {root.public_key};
        const crypto::PublicKey release_pub[] = {release.public_key};
        const crypto::PublicKey feed_pub[] = {feed.public_key};
        doc.root = core::add_role_keys(doc, root_pub, 1);
        doc.release = core::add_role_keys(doc, release_pub, 1);
        doc.feed = core::add_role_keys(doc, feed_pub, 1);
        return doc;
    }
    std::string root_envelope(std::uint64_t version) const {
        return seal(core::payload_type::root, core::serialize_root(root_doc(version)), root);
    }
};

// A payload with a real torrent and the manifest that matches it.
struct Release {
    core::Manifest manifest;
    std::vector<std::uint8_t> torrent;
};

Release make_release(const fs::path& dir, const std::string& id, std::uint64_t sequence) {
    const fs::path payload = dir / (id + "-" + std::to_string(sequence)) / "KB";
    // Two files: a folder with one file would make a single-file torrent named after the file.
    test::write_text(payload / "README", "release " + std::to_string(sequence) + "\n");
    test::write_text(payload / "install.sh", "#!/bin/sh\necho " + std::to_string(sequence) + "\n");
    auto t = io::swarm::create_torrent(payload);
    REQUIRE(t.has_value());
    Release r;
    auto& m = r.manifest;
    m.repository = "repo";
    m.id = id;
    m.sequence = sequence;
    m.created = wall_now() - 10;
    m.expires = wall_now() + 86400;
    m.name = "KB";
    for (const char* name : {"README", "install.sh"}) {
        auto h = io::sha256_file(payload / name, 1 << 20);
        REQUIRE(h.has_value());
        m.files.push_back({name, fs::file_size(payload / name), crypto::to_hex(*h)});
    }
    m.infohash_v2 = t->infohash_v2;
    m.install.argv = {"./install.sh"};
    m.install.timeout_s = 60;
    r.torrent = t->bytes;
    return r;
}

// The seeder's routes for a feed of `sequence` announcing these releases.
void serve(FakeSeeder& seeder, const Keys& keys, std::uint64_t sequence,
           const std::vector<Release>& releases, bool running) {
    core::Feed feed;
    feed.repository = "repo";
    feed.sequence = sequence;
    feed.issued = wall_now() - 10;
    feed.expires = wall_now() + 3600;
    for (const auto& r : releases) {
        const auto manifest =
            seal(core::payload_type::manifest, core::serialize_manifest(r.manifest), keys.release);
        const std::string torrent(r.torrent.begin(), r.torrent.end());
        const std::string base = "/v1/releases/" + r.manifest.id;
        if (running) {
            seeder.set_route(base + "/manifest", manifest);
            seeder.set_route(base + "/torrent", torrent);
        } else {
            seeder.routes_[base + "/manifest"] = manifest;
            seeder.routes_[base + "/torrent"] = torrent;
        }
        feed.releases.push_back({r.manifest.id, r.manifest.sequence,
                                 crypto::sha256_hex(crypto::as_bytes(manifest)), std::nullopt});
    }
    const auto body = seal(core::payload_type::feed, core::serialize_feed(feed), keys.feed);
    if (running) {
        seeder.set_route("/v1/feed", body);
    } else {
        seeder.routes_["/v1/feed"] = body;
    }
}

// One agent on its own io_context thread.
class RunningAgent {
  public:
    RunningAgent(daemon::AgentConfig cfg, io::Env& env)
        : agent_(std::make_unique<daemon::Agent>(io_, std::move(cfg), env)) {
        agent_->start();
        thread_ = std::thread([this] { io_.run(); });
    }
    ~RunningAgent() { stop(); }
    // Agent::shutdown on its thread (as the signal handler does), then the Agent is destroyed.
    void stop() {
        if (!agent_) return;
        boost::asio::post(io_, [this] { agent_->shutdown(); });
        thread_.join();
        agent_.reset();
    }
    std::string status_json() {
        std::promise<std::string> p;
        boost::asio::post(io_, [&] { p.set_value(agent_->status_json()); });
        return p.get_future().get();
    }

  private:
    boost::asio::io_context io_;
    std::unique_ptr<daemon::Agent> agent_;
    std::thread thread_;
};

daemon::AgentConfig config_for(const fs::path& dir, const FakeSeeder& seeder,
                               const std::string& address) {
    daemon::AgentConfig cfg;
    cfg.state_dir = dir / "endpoint";
    cfg.seeders = {seeder.url()};
    cfg.trust_root = dir / "root.json";
    cfg.bt_listen = address + ":0";
    cfg.lsd = false;
    cfg.heartbeat_s = 3600;
    cfg.poll_wait_s = 1;
    cfg.webseed_after_s = 3600;
    return cfg;
}

std::unique_ptr<daemon::EndpointStore> open_store(const fs::path& dir) {
    auto store = daemon::EndpointStore::open(dir / "endpoint" / "state.db");
    REQUIRE(store);
    return std::move(*store);
}

void inject(const fs::path& dir, const std::string& sql) {
    auto db = io::Db::open(dir / "endpoint" / "state.db");
    REQUIRE(db);
    REQUIRE((*db)->exec(sql));
}

}  // namespace

TEST_CASE("a feed whose state cannot be saved is not acted on, and the old sequence stays",
          "[net]") {
    TempDir dir("ps-agent");
    LogCapture log;
    const Keys keys;
    test::write_text(dir / "root.json", keys.root_envelope(1));
    FakeSeeder seeder("127.31.0.1:18080");
    serve(seeder, keys, 7, {make_release(dir.path(), "KB-FEED", 1)}, false);
    seeder.start();
    FakeEnv env(wall_now());
    // A state.db made beforehand, whose feed row cannot be written.
    fs::create_directories(dir / "endpoint");
    {
        auto store = open_store(dir.path());
        REQUIRE(store->save_feed_state({3, std::string(64, 'a'), "feed three"}));
    }
    inject(dir.path(),
           "CREATE TRIGGER no_feed BEFORE INSERT ON meta WHEN NEW.key = 'feed' "
           "BEGIN SELECT RAISE(ABORT, 'injected'); END");
    {
        RunningAgent agent(config_for(dir.path(), seeder, "127.31.0.11"), env);
        REQUIRE(log.eventually([&] { return log.contains("cannot persist feed state"); }, 30s));
        // Not acted on: the release it announces was never fetched.
        CHECK(nlohmann::json::parse(agent.status_json())["releases"].empty());
        CHECK_FALSE(log.contains("KB-FEED: release announced"));
        agent.stop();
    }
    auto store = open_store(dir.path());
    auto feed = store->load_feed_state();
    REQUIRE(feed);
    CHECK(feed->sequence == 3);
    CHECK(feed->envelope == "feed three");
    auto rows = store->load_releases();
    REQUIRE(rows);
    CHECK(rows->empty());
}

TEST_CASE(
    "a replacing manifest whose row cannot be saved leaves the old release's folder and "
    "record, and once it can the new row is saved before the folder goes",
    "[net]") {
    TempDir dir("ps-agent");
    LogCapture log;
    const Keys keys;
    test::write_text(dir / "root.json", keys.root_envelope(1));
    FakeSeeder seeder("127.31.0.2:18080");
    serve(seeder, keys, 10, {make_release(dir.path(), "KB-REPL", 1)}, false);
    seeder.start();
    FakeEnv env(wall_now());
    const fs::path folder = dir / "endpoint" / "releases" / "KB-REPL";
    RunningAgent agent(config_for(dir.path(), seeder, "127.31.0.12"), env);
    // Sequence 1 joins the swarm (nobody seeds it here): its folder exists.
    REQUIRE(log.eventually([&] { return fs::exists(folder / "download"); }, 30s));
    REQUIRE(log.eventually(
        [&] {
            auto rel = open_store(dir.path())->load_release("KB-REPL");
            return rel && *rel && (*rel)->record.state == core::State::downloading;
        },
        30s));
    test::write_text(folder / "download" / "marker", "old");

    inject(dir.path(),
           "CREATE TRIGGER no_seq2 BEFORE INSERT ON releases WHEN NEW.sequence = 2 "
           "BEGIN SELECT RAISE(ABORT, 'injected'); END");
    serve(seeder, keys, 11, {make_release(dir.path(), "KB-REPL", 2)}, true);
    REQUIRE(log.eventually([&] { return log.contains("KB-REPL: cannot persist state"); }, 30s));
    {
        auto rel = open_store(dir.path())->load_release("KB-REPL");
        REQUIRE(rel);
        REQUIRE(*rel);
        CHECK((*rel)->sequence == 1);
        CHECK((*rel)->record.state == core::State::downloading);
        CHECK(fs::exists(folder / "download" / "marker"));
    }

    // The fault goes away: the next feed answer admits sequence 2, and the old files go.
    inject(dir.path(), "DROP TRIGGER no_seq2");
    REQUIRE(log.eventually(
        [&] {
            auto rel = open_store(dir.path())->load_release("KB-REPL");
            return rel && *rel && (*rel)->sequence == 2;
        },
        30s));
    REQUIRE(log.eventually([&] { return !fs::exists(folder / "download" / "marker"); }, 30s));
    agent.stop();
}

namespace {

// A verified release row (as a crash after staging leaves it) in `state`.
void store_release(const fs::path& dir, const Keys& keys, const Release& rel, core::State state,
                   std::uint32_t attempts = 0) {
    auto store = open_store(dir);
    daemon::StoredRelease row;
    row.record.id = rel.manifest.id;
    row.record.state = state;
    row.record.entered_at = wall_now();
    row.record.attempts = attempts;
    row.manifest_envelope =
        seal(core::payload_type::manifest, core::serialize_manifest(rel.manifest), keys.release);
    row.manifest_sha256 = crypto::sha256_hex(crypto::as_bytes(row.manifest_envelope));
    row.sequence = rel.manifest.sequence;
    REQUIRE(store->save_release(row));
}

std::optional<core::ReleaseRecord> stored_record(const fs::path& dir, const std::string& id) {
    auto row = open_store(dir)->load_release(id);
    if (!row || !*row) return std::nullopt;
    return (*row)->record;
}

}  // namespace

TEST_CASE(
    "an install outlives the agent under its supervisor: shutdown leaves it running, and the "
    "next start waits for it and adopts its result without a second run or a lost attempt",
    "[net]") {
    TempDir dir("ps-agent");
    LogCapture log;
    const Keys keys;
    test::write_text(dir / "root.json", keys.root_envelope(1));
    FakeSeeder seeder("127.31.0.3:18080");
    serve(seeder, keys, 20, {}, false);
    seeder.start();
    const auto rel = make_release(dir.path(), "KB-HOLD", 1);
    // The staged install records its pid and start, then runs until the test lets it finish.
    const fs::path install = dir / "endpoint" / "releases" / "KB-HOLD" / "install" / "install.sh";
    const fs::path pid_file = dir / "install.pid";
    const fs::path go = dir / "go";
    const fs::path runs = dir / "runs";
    test::write_text(install, "#!/bin/sh\necho start >> " + runs.string() + "\necho $$ > " +
                                  pid_file.string() + ".tmp && mv " + pid_file.string() + ".tmp " +
                                  pid_file.string() + "\nwhile [ ! -e " + go.string() +
                                  " ]; do sleep 0.05; done\necho end >> " + runs.string() + "\n");
    fs::permissions(install, fs::perms::owner_all);
    store_release(dir.path(), keys, rel, core::State::verified);
    FakeEnv env(wall_now());
    env.use_supervisor(PATCHSWARM_DAEMON_BIN);
    pid_t installer = 0;
    {
        RunningAgent agent(config_for(dir.path(), seeder, "127.31.0.13"), env);
        REQUIRE(log.eventually([&] { return fs::exists(pid_file); }, 30s));
        std::ifstream{pid_file} >> installer;
        REQUIRE(installer > 0);
        agent.stop();  // returns although the install has not finished
    }
    // Not stopped with the agent: the installer runs on.
    CHECK(test::process_group_alive(installer));
    CHECK(stored_record(dir.path(), "KB-HOLD")->state == core::State::installing);

    RunningAgent again(config_for(dir.path(), seeder, "127.31.0.13"), env);
    REQUIRE(log.eventually([&] { return log.contains("waiting for the install"); }, 30s));
    CHECK(stored_record(dir.path(), "KB-HOLD")->state == core::State::installing);
    test::write_text(go, "");
    REQUIRE(log.eventually(
        [&] { return stored_record(dir.path(), "KB-HOLD")->state == core::State::effective; },
        30s));
    const auto rec = stored_record(dir.path(), "KB-HOLD");
    CHECK(rec->attempts == 0);
    CHECK(env.supervised_starts() == 1);
    CHECK(test::read_text(runs) == "start\nend\n");
    again.stop();
}

TEST_CASE(
    "an installer that died without an exit status is not re-run unless the release is "
    "idempotent",
    "[net]") {
    const bool idempotent = GENERATE(false, true);
    TempDir dir("ps-agent");
    LogCapture log;
    const Keys keys;
    test::write_text(dir / "root.json", keys.root_envelope(1));
    FakeSeeder seeder("127.31.0.6:18080");
    serve(seeder, keys, 20, {}, false);
    seeder.start();
    auto rel = make_release(dir.path(), "KB-DEAD", 1);
    rel.manifest.idempotent = idempotent;
    fs::create_directories(dir / "endpoint" / "releases" / "KB-DEAD" / "install");
    store_release(dir.path(), keys, rel, core::State::installing, 1);
    FakeEnv env(wall_now());
    // What a power cut leaves: the record names an installer that is gone, no exit status.
    env.on_probe_supervised(
        [](const fs::path&, const std::string& key) -> std::optional<core::InstallObservation> {
            core::InstallObservation seen;
            seen.recorded = seen.installer_started = true;
            seen.detail = "installer pid 31337";
            if (key.ends_with(".1")) return seen;  // attempt 1's install
            return std::nullopt;
        });
    std::atomic<int> runs{0};
    env.on_run_process([&](const io::ProcessSpec&) -> Result<io::ProcessResult> {
        ++runs;
        return io::ProcessResult{0, false, ""};
    });
    auto cfg = config_for(dir.path(), seeder, "127.31.0.16");
    cfg.backoff_base_s = 1;
    RunningAgent agent(std::move(cfg), env);
    REQUIRE(log.eventually(
        [&] { return stored_record(dir.path(), "KB-DEAD")->state == core::State::failed; }, 30s));
    const auto failed = stored_record(dir.path(), "KB-DEAD");
    CHECK(failed->attempts == 2);
    CHECK(failed->reason.find("installer died") != std::string::npos);
    CHECK(failed->reason.find("31337") != std::string::npos);
    if (!idempotent) {
        CHECK(failed->next_attempt_at == 0);
        CHECK(env.supervised_starts() == 0);
        CHECK(runs == 0);
    } else {
        CHECK(failed->next_attempt_at > 0);
        // The backoff passes on the fake clock; the next attempt (key .2) runs it again.
        env.advance(5);
        REQUIRE(log.eventually(
            [&] { return stored_record(dir.path(), "KB-DEAD")->state == core::State::effective; },
            30s));
        CHECK(env.supervised_starts() == 1);
        CHECK(runs == 1);
    }
    agent.stop();
}

TEST_CASE(
    "the agent walks newer roots with core::update_root and keeps the last one that "
    "verified when a later one is refused",
    "[net]") {
    TempDir dir("ps-agent");
    LogCapture log;
    const Keys keys;
    test::write_text(dir / "root.json", keys.root_envelope(1));
    FakeSeeder seeder("127.31.0.4:18080");
    seeder.routes_[core::root_route(2)] = keys.root_envelope(2);
    // Version 3 is signed by a stranger: refused.
    const auto stranger = crypto::generate_keypair();
    seeder.routes_[core::root_route(3)] =
        seal(core::payload_type::root, core::serialize_root(keys.root_doc(3)), stranger);
    serve(seeder, keys, 30, {}, false);
    seeder.start();
    FakeEnv env(wall_now());
    RunningAgent agent(config_for(dir.path(), seeder, "127.31.0.14"), env);
    REQUIRE(log.eventually([&] { return log.contains("root version 3 refused"); }, 30s));
    REQUIRE(log.eventually(
        [&] {
            auto roots = open_store(dir.path())->load_roots();
            return roots && !roots->empty() && roots->back().version == 2;
        },
        30s));
    agent.stop();
    auto roots = open_store(dir.path())->load_roots();
    REQUIRE(roots);
    CHECK(roots->back().version == 2);
    CHECK(log.contains("root version 2 accepted"));
    CHECK_FALSE(log.contains("root version 3 accepted"));
}

TEST_CASE(
    "Agent::defer persists the deferral, clamped to the deadline, and the release waits "
    "at once",
    "[net]") {
    TempDir dir("ps-agent");
    LogCapture log;
    const Keys keys;
    test::write_text(dir / "root.json", keys.root_envelope(1));
    FakeSeeder seeder("127.31.0.5:18080");
    serve(seeder, keys, 40, {}, false);
    seeder.start();
    auto rel = make_release(dir.path(), "KB-DEFER", 1);
    // A window that is never open now (12 hours away), and a deadline in a day.
    const std::int64_t now = wall_now();
    core::Rollout rollout;
    const auto hour = static_cast<std::uint16_t>((now / 3600 + 12) % 24);
    rollout.windows.push_back({"*", core::kAllDays, static_cast<std::uint16_t>(hour * 60),
                               static_cast<std::uint16_t>(hour * 60 + 60), "UTC"});
    rollout.deadline = now + 86400;
    rel.manifest.rollout = rollout;
    fs::create_directories(dir / "endpoint" / "releases" / "KB-DEFER" / "install");
    {
        auto store = open_store(dir.path());
        daemon::StoredRelease row;
        row.record.id = "KB-DEFER";
        row.record.state = core::State::verified;
        row.record.entered_at = now;
        row.manifest_envelope = seal(core::payload_type::manifest,
                                     core::serialize_manifest(rel.manifest), keys.release);
        row.manifest_sha256 = crypto::sha256_hex(crypto::as_bytes(row.manifest_envelope));
        row.sequence = 1;
        REQUIRE(store->save_release(row));
    }
    FakeEnv env(now);
    std::atomic<int> runs{0};
    env.on_run_process([&](const io::ProcessSpec&) -> Result<io::ProcessResult> {
        ++runs;
        return io::ProcessResult{0, false, ""};
    });
    boost::asio::io_context io;
    auto cfg = config_for(dir.path(), seeder, "127.31.0.15");
    cfg.zoneinfo_dir = "/usr/share/zoneinfo";
    daemon::Agent agent(io, std::move(cfg), env);
    agent.start();
    io.run_for(200ms);
    // Outside its window: waiting.
    auto waiting = open_store(dir.path())->load_release("KB-DEFER");
    REQUIRE(waiting);
    REQUIRE(*waiting);
    CHECK((*waiting)->record.state == core::State::waiting);

    auto unknown = agent.defer("KB-NOPE", now + 3600);
    CHECK_FALSE(unknown);
    auto stored = agent.defer("KB-DEFER", now + 10 * 86400);
    REQUIRE(stored);
    REQUIRE(*stored);
    CHECK(**stored == now + 86400);  // clamped to the deadline
    auto deferral = open_store(dir.path())->deferral("KB-DEFER");
    REQUIRE(deferral);
    CHECK(*deferral == now + 86400);
    auto row = open_store(dir.path())->load_release("KB-DEFER");
    REQUIRE(row);
    REQUIRE(*row);
    CHECK((*row)->record.reason.rfind("install deferred until ", 0) == 0);
    const auto status = nlohmann::json::parse(agent.status_json());
    REQUIRE(status["releases"].is_array());
    REQUIRE(status["releases"].size() == 1);
    CHECK(status["releases"][0]["id"] == "KB-DEFER");
    CHECK(status["releases"][0]["deferred_until"] == now + 86400);
    CHECK(runs == 0);
    agent.shutdown();
}
