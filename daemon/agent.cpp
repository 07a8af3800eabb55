#include "daemon/agent.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/endpoint_controller.hpp"
#include "core/envelope.hpp"
#include "core/manifest.hpp"
#include "core/output_text.hpp"
#include "core/rollout.hpp"
#include "core/trust.hpp"
#include "crypto/crypto.hpp"
#include "daemon/control.hpp"
#include "daemon/endpoint_store.hpp"
#include "daemon/enrol.hpp"
#include "daemon/relay.hpp"
#include "daemon/release_runner.hpp"
#include "daemon/renewal.hpp"
#include "daemon/reporter.hpp"
#include "daemon/seeder_client.hpp"
#include "daemon/status_view.hpp"
#include "daemon/update_cycle.hpp"
#include "io/crash_point.hpp"
#include "io/env.hpp"
#include "io/file_watch.hpp"
#include "io/key_files.hpp"
#include "io/service_notify.hpp"
#include "io/zoneinfo.hpp"

namespace patchswarm::daemon {
namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

// While a release downloads, progress arrives as events (every verified piece, coalesced by the
// release runner). This refresh only keeps the upload and peer counters of seeding releases
// current for the reports; nothing waits for it.
constexpr auto kStatusRefresh = std::chrono::seconds(30);
// Pieces arrive many a second; their counters are asked for at most this often, and only
// while pieces keep arriving (so the dashboard and `status` move, a kill -9 loses little).
constexpr auto kProgressCoalesce = std::chrono::seconds(1);
// At shutdown a running verify or reboot command is stopped (SIGTERM to its process group,
// SIGKILL 2 s later: io/process.hpp) and the pool waits this long for it to end; a running
// install runs on under its supervisor. The record on disk says what was running, and the next
// start resumes from that.
constexpr auto kShutdownWorkBound = std::chrono::seconds(5);

std::string host_of(const std::string& host_port) {
    const auto colon = host_port.rfind(':');
    return colon == std::string::npos ? host_port : host_port.substr(0, colon);
}

std::optional<core::Manifest> manifest_of(const std::string& envelope) {
    auto env = core::parse_envelope(envelope, core::kMaxManifestBytes * 2);
    if (!env) return std::nullopt;
    auto m = core::parse_manifest(
        std::string_view(reinterpret_cast<const char*>(env->payload.data()), env->payload.size()));
    if (!m) return std::nullopt;
    return std::move(*m);
}

void log_transition(const core::ReleaseRecord& from, const core::ReleaseRecord& to) {
    if (to.state == core::State::failed) {
        spdlog::warn("{}: {} -> failed (attempt {}): {}", to.id, core::to_string(from.state),
                     to.attempts, to.reason);
    } else {
        spdlog::info("{}: {} -> {}{}{}", to.id, core::to_string(from.state),
                     core::to_string(to.state), to.reason.empty() ? "" : ": ", to.reason);
    }
}

}  // namespace

struct Agent::Impl : std::enable_shared_from_this<Agent::Impl> {
    asio::io_context& io;
    AgentConfig cfg;
    io::Env& env;
    std::unique_ptr<EndpointStore> store;
    crypto::KeyPair device_key{};
    std::string device_id;
    io::ZoneInfo zones;
    std::unique_ptr<SeederClient> seeders;
    std::unique_ptr<core::EndpointController> controller;
    std::unique_ptr<UpdateCycle> updates;
    std::unique_ptr<ReleaseRunner> runner;
    std::unique_ptr<Renewal> renewal;
    std::unique_ptr<Reporter> reporter;
    std::unique_ptr<Relay> relay;
    std::optional<TlsIdentity> tls;  // as renewal last stored it (runner reads it)
    // Admitted manifests whose row is not saved yet (core::Action::new_row).
    std::map<std::string, RunnerRelease> pending_rows;
    std::string boot_id;
    std::string service_status;  // the last STATUS= line sent to systemd
    bool stopping = false;
    bool started = false;
    asio::steady_timer wake_timer;      // one-shot: the controller's next_wakeup()
    asio::steady_timer status_timer;    // request_progress every kStatusRefresh
    asio::steady_timer progress_timer;  // one-shot, armed by a piece: kProgressCoalesce
    bool progress_armed = false;
    // `patchswarmd status` and `defer` while the agent runs (daemon/control.hpp).
    std::unique_ptr<CallbackControlTarget> control_target;
    std::unique_ptr<ControlServer> control;
    // The boot id file's folder: a reboot restarts the agent on a real machine, but the demos
    // and tests simulate one by rewriting --boot-id-file under a running agent.
    std::unique_ptr<io::FileWatch> boot_watch;

    Impl(asio::io_context& io_, AgentConfig c, io::Env& env_)
        : io(io_),
          cfg(std::move(c)),
          env(env_),
          zones(cfg.zoneinfo_dir),
          wake_timer(io_),
          status_timer(io_),
          progress_timer(io_) {}

    // ---- start-up ----------------------------------------------------------------------------
    void open() {
        std::error_code ec;
        // Absolute, because installs run with the release folder as working directory.
        cfg.state_dir = fs::absolute(cfg.state_dir);
        fs::create_directories(cfg.state_dir / "releases", ec);
        if (ec) throw std::runtime_error("cannot create state dir " + cfg.state_dir.string());
        fs::permissions(cfg.state_dir, fs::perms::owner_all, ec);
        load_device_key();
        auto st = EndpointStore::open(cfg.state_dir / "state.db");
        if (!st) throw std::runtime_error("state.db: " + st.error().message);
        store = std::move(*st);
        if (cfg.name.empty()) cfg.name = env.hostname();
        std::string bind_address;
        const std::string host = host_of(cfg.bt_listen);
        if (host != "0.0.0.0" && host != "::" && !host.empty()) bind_address = host;
        seeders = std::make_unique<SeederClient>(cfg.seeders, bind_address);
        open_controller();
        open_updates();
        open_tls(bind_address);
        open_runner();
        open_reporter();
        load_releases();
        if (!cfg.relay_listen.empty()) start_relay();
    }

    void load_device_key() {
        auto kp = load_or_create_device_key(cfg.state_dir);
        if (!kp) throw std::runtime_error(kp.error().message);
        device_key = *kp;
        device_id = core::device_id_for(device_key.public_key);
    }

    void open_controller() {
        core::ControllerConfig c;
        c.retry.max_attempts = static_cast<std::uint32_t>(cfg.max_attempts);
        c.retry.backoff_base_s = cfg.backoff_base_s;
        c.webseed_after_s = cfg.webseed_after_s;
        c.reboot_command = !cfg.reboot_command.empty();
        c.device_id = device_id;
        c.groups = cfg.groups;
        controller = std::make_unique<core::EndpointController>(std::move(c), zones.offset_fn());
    }

    void open_updates() {
        UpdateCycle::Hooks h;
        h.wants_manifest = [this](const core::FeedEntry& e) {
            return controller->wants_manifest(e.id, e.manifest_sha256);
        };
        h.sequence_of = [this](const std::string& id) { return controller->sequence_of(id); };
        h.on_feed = [this](const core::Feed& feed, bool is_new) {
            if (is_new) set_feed_policy(feed);
        };
        h.on_manifest = [this](const core::FeedEntry& e, const std::string& body,
                               core::Manifest m) { on_manifest(e, body, std::move(m)); };
        h.on_rejected = [this] { reporter->schedule(); };
        updates =
            std::make_unique<UpdateCycle>(io, env, *store, *seeders, cfg.poll_wait_s, std::move(h));
        updates->load(cfg.trust_root);
        // The feed was verified when it was stored; its halts and open rings hold across a
        // restart even while the seeder is unreachable.
        if (auto feed = updates->stored_feed()) set_feed_policy(*feed);
    }

    void open_tls(const std::string& bind_address) {
        // An expired or damaged certificate must not stop the agent: it keeps reporting and
        // following the feed, and says why it cannot join SSL swarms (re-enrol to fix).
        if (auto identity = load_tls_identity(cfg.state_dir); identity) {
            tls = std::move(*identity);
        } else {
            spdlog::error("enrolment unusable, re-enrol: {}", identity.error().message);
        }
        if (!tls) spdlog::info("not enrolled: SSL torrents of an enrolled fleet get no peers");
        if (tls && tls->not_after <= env.now_unix()) {
            spdlog::warn("TLS certificate expired {}: renewing it with the device key",
                         core::format_utc(tls->not_after));
        }
        EnrolOptions o;
        o.state_dir = cfg.state_dir;
        o.seeder = seeders->hq();
        o.hostname = cfg.name;
        o.local_address = bind_address;
        renewal = std::make_unique<Renewal>(io, env, o, tls, [this](const TlsIdentity& id) {
            tls = id;
            runner->renewed(id);
        });
    }

    // Command output becomes a failure reason that travels in reports to every status view:
    // one line, bounded, and without the state folder's path (core::sanitize_output).
    core::Event without_private_text(core::Event e) const {
        const std::vector<std::string> paths{cfg.state_dir.string()};
        if (auto* install = std::get_if<core::ev::InstallFinished>(&e)) {
            install->output_tail = core::sanitize_output(install->output_tail, paths);
        } else if (auto* observed = std::get_if<core::ev::InstallObserved>(&e)) {
            // A supervised install reports its result as an observation of its record.
            observed->seen.output_tail = core::sanitize_output(observed->seen.output_tail, paths);
        } else if (auto* verify = std::get_if<core::ev::VerifyFinished>(&e)) {
            verify->reason = core::sanitize_output(verify->reason, paths);
        }
        return e;
    }

    void open_runner() {
        ReleaseRunner::Hooks h;
        h.on_event = [this](const std::string& id, const core::Event& e) {
            apply(controller->handle(id, without_private_text(e), env.now_unix()));
        };
        h.on_joined_swarm = [this](const std::string& id) {
            controller->joined_swarm(id, env.now_unix());
            arm_wake();
        };
        h.on_left_swarm = [this](const std::string& id) { controller->left_swarm(id); };
        h.on_progress = [this](const std::string& id) {
            controller->progressed(id, env.now_unix());
            arm_wake();  // the web seed fallback and the next resume save move with progress
        };
        h.on_piece = [this](const std::string&) { progress_soon(); };
        h.on_torrent_stored = [this](const std::string& id) { controller->torrent_stored(id); };
        h.on_reboot_finished = [this] { read_boot_id(); };
        h.send_report = [this] { reporter->schedule(); };
        runner = std::make_unique<ReleaseRunner>(io, env, *store, *seeders, cfg, device_id, &tls,
                                                 std::move(h));
    }

    void open_reporter() {
        ReporterIdentity id{device_key, device_id, cfg.name, cfg.groups};
        reporter = std::make_unique<Reporter>(
            io, env, *store, *seeders, std::move(id), [this] { return release_reports(); },
            [this] { return boot_id; });
    }

    void load_releases() {
        auto rows = store->load_releases();
        if (!rows) throw std::runtime_error("state.db: " + rows.error().message);
        for (auto& row : *rows) {
            auto m = manifest_of(row.manifest_envelope);
            if (!m) {
                spdlog::error("{}: stored manifest unreadable", row.record.id);
                continue;
            }
            const std::string id = row.record.id;
            std::optional<std::int64_t> deferred;
            if (auto d = store->deferral(id); d) deferred = *d;
            controller->load(core::release_info(*m, row.manifest_sha256, !row.torrent.empty()),
                             row.record, deferred);
            RunnerRelease r;
            r.manifest = std::move(*m);
            r.base_from_peers = row.bytes_from_peers;
            r.base_from_seeder = row.bytes_from_seeder;
            r.base_from_lan = row.bytes_from_lan;
            r.base_from_wan = row.bytes_from_wan;
            r.stored = std::move(row);
            runner->install(std::move(r));
        }
    }

    void start_relay() {
        relay = std::make_unique<Relay>(io);
        auto port = relay->listen(cfg.relay_listen);
        if (!port) throw std::runtime_error("relay: " + port.error().message);
        if (auto roots = store->load_roots()) {
            for (auto& r : *roots) relay->set_root(r.version, std::move(r.envelope));
        }
        for (const auto& [id, r] : runner->releases()) {
            relay->set_manifest(id, r.stored.manifest_envelope);
            if (!r.stored.torrent.empty()) relay->set_torrent(id, r.stored.torrent);
        }
        updates->set_relay(relay.get());
        runner->set_relay(relay.get());
        spdlog::info("relay serving signed metadata on {}", cfg.relay_listen);
    }

    void start() {
        for (const auto& [id, r] : runner->releases()) {
            const auto state = r.stored.record.state;
            spdlog::info("{}: resuming in state {}", id, core::to_string(state));
            // Every release with a torrent keeps seeding for its site, whatever its state.
            if (!r.stored.torrent.empty() && state != core::State::rejected &&
                state != core::State::announced && state != core::State::downloading) {
                runner->rejoin(id);
            }
        }
        apply(controller->resume(env.now_unix()));
        watch_boot_id();  // before the first read, so that no change falls between the two
        read_boot_id();
        updates->start();
        reporter->start(cfg.heartbeat_s);
        renewal->start();
        started = true;
        arm_status();
        start_control();
        spdlog::info("patchswarmd {} started: device {}, seeder {}, swarm on {}", cfg.name,
                     device_id, seeders->hq(), cfg.bt_listen);
        service_status = status_line();
        io::service::notify_ready(service_status);
    }

    // One line for `systemctl status` (sd_notify STATUS=): the releases per state.
    std::string status_line() const {
        std::map<std::string, int> per_state;
        for (const auto& [id, r] : runner->releases()) {
            ++per_state[std::string(core::to_string(r.stored.record.state))];
        }
        std::string line = "feed from " + seeders->hq() + "; " +
                           std::to_string(runner->releases().size()) + " release(s)";
        const char* sep = ": ";
        for (const auto& [state, n] : per_state) {
            line += sep + std::to_string(n) + " " + state;
            sep = ", ";
        }
        return line;
    }

    void update_service_status() {
        if (!started || stopping) return;
        auto line = status_line();
        if (line == service_status) return;
        service_status = std::move(line);
        io::service::notify_status(service_status);
    }

    // ---- facts into the controller -----------------------------------------------------------
    void set_feed_policy(const core::Feed& feed) {
        auto p = core::policy_of(feed);
        for (const auto& id : p.halted) {
            if (controller->record(id)) spdlog::warn("{}: release halted by HQ", id);
        }
        apply(controller->set_feed_policy(std::move(p), env.now_unix()));
    }

    // The boot id changes only across a reboot: read at start and when a reboot command ends.
    void read_boot_id() {
        std::string now_id = env.boot_id();
        if (now_id == boot_id && !boot_id.empty()) return;
        boot_id = std::move(now_id);
        apply(controller->set_boot_id(boot_id, env.now_unix()));
    }

    void on_manifest(const core::FeedEntry& entry, const std::string& body, core::Manifest m) {
        const std::int64_t now = env.now_unix();
        RunnerRelease r;
        r.stored.record.id = entry.id;
        r.stored.manifest_sha256 = entry.manifest_sha256;
        r.stored.manifest_envelope = body;
        r.stored.sequence = m.sequence;
        r.stored.bytes_total = m.total_size();
        auto info = core::release_info(m, entry.manifest_sha256, false);
        r.manifest = std::move(m);
        auto actions = controller->admit(std::move(info), now);
        if (actions.empty()) return;
        if (controller->record(entry.id)) {
            spdlog::info("{}: replaced by sequence {}", entry.id, r.manifest.sequence);
        }
        spdlog::info("{}: release announced (sequence {}, {} file(s), {} bytes, severity {})",
                     entry.id, r.manifest.sequence, r.manifest.files.size(),
                     r.manifest.total_size(), core::to_string(r.manifest.severity));
        pending_rows.insert_or_assign(entry.id, std::move(r));
        apply(std::move(actions));
    }

    // ---- carrying out the controller's actions -----------------------------------------------
    // Persist, then commit, then act (core/endpoint_controller.hpp).
    void apply(std::vector<core::Action> actions) {
        std::set<std::string> refused;
        for (auto& a : actions) {
            if (refused.contains(a.id)) continue;
            if (a.save && !persist(a)) {
                refused.insert(a.id);
                continue;
            }
            controller->committed(a);
            if (a.new_row) {
                auto p = pending_rows.find(a.id);
                runner->install(std::move(p->second));
                pending_rows.erase(p);
            } else if (a.save) {
                if (auto* r = runner->find(a.id)) r->stored.record = *a.save;
            }
            if (a.transition && a.save) log_transition(*a.transition, *a.save);
            // Results handed back during shutdown are persisted, but start nothing new: the
            // next start resumes from the saved record.
            if (stopping) continue;
            for (const auto& c : a.commands) runner->execute(a.id, c);
            if (a.reevaluate) {
                asio::post(io, [w = weak_from_this(), id = a.id] {
                    auto self = w.lock();
                    if (!self || self->stopping) return;
                    self->apply(self->controller->evaluate(id, self->env.now_unix()));
                });
            }
        }
        arm_wake();
        update_service_status();
    }

    bool persist(const core::Action& a) {
        Result<void> ok;
        if (a.new_row) {
            auto p = pending_rows.find(a.id);
            if (p == pending_rows.end()) return false;
            p->second.stored.record = *a.save;
            ok = store->save_release(p->second.stored);
        } else {
            ok = store->save_record(*a.save);
        }
        if (ok) {
            // The fault matrix kills the agent right after a state is durable and before
            // anything it allows has happened (docs/RELIABILITY.md).
            io::crash_point("saved");
            io::crash_point("saved." + std::string(core::to_string(a.save->state)));
            return true;
        }
        spdlog::error("{}: cannot persist state: {}; not acting", a.id, ok.error().message);
        if (a.new_row) pending_rows.erase(a.id);
        return false;
    }

    std::vector<ReleaseReport> release_reports() const {
        std::vector<ReleaseReport> out;
        for (const auto& [id, r] : runner->releases()) {
            const auto* rec = controller->record(id);
            if (!rec) continue;
            out.push_back({rec, &r.stored, r.manifest.total_size(), controller->deferred_until(id),
                           static_cast<std::uint32_t>(cfg.max_attempts), ""});
        }
        return out;
    }

    // ---- timers ------------------------------------------------------------------------------
    void arm_wake() {
        if (stopping) return;
        const std::int64_t now = env.now_unix();
        auto at = controller->next_wakeup(now);
        if (!at) {
            wake_timer.cancel();
            return;
        }
        // Whole seconds: the core's instants are unix seconds.
        const auto delay = std::chrono::seconds(std::max<std::int64_t>(1, *at - now));
        wake_timer.expires_after(delay);
        wake_timer.async_wait([this](const boost::system::error_code& ec) {
            if (ec || stopping) return;
            apply(controller->on_timer(env.now_unix()));
        });
    }

    // A piece arrived: ask for the counters once the pieces of the next kProgressCoalesce are in.
    void progress_soon() {
        if (progress_armed || stopping) return;
        progress_armed = true;
        progress_timer.expires_after(kProgressCoalesce);
        progress_timer.async_wait([this](const boost::system::error_code& ec) {
            // Aborted: the timer was cancelled or destroyed with the agent; touch nothing.
            if (ec == asio::error::operation_aborted) return;
            progress_armed = false;
            if (ec || stopping) return;
            runner->request_progress();
        });
    }

    void arm_status() {
        status_timer.expires_after(kStatusRefresh);
        status_timer.async_wait([this](const boost::system::error_code& ec) {
            if (ec || stopping) return;
            runner->request_progress();
            read_boot_id();  // in case the watch on its folder is not there or lost events
            arm_status();
        });
    }

    // ---- control socket ----------------------------------------------------------------------
    void start_control() {
        control_target = std::make_unique<CallbackControlTarget>(
            [this]() -> Result<nlohmann::json> { return endpoint_status(*store, cfg.state_dir); },
            [this](const std::string& id, std::optional<std::int64_t> until) {
                return defer(id, until);
            });
        control = std::make_unique<ControlServer>(io, *control_target);
        // Without it, `status` and `defer` still work on state.db (docs/PROTOCOL.md).
        if (auto ok = control->listen(cfg.state_dir); !ok) {
            spdlog::warn("control socket: {}", ok.error().message);
        }
    }

    void watch_boot_id() {
        const fs::path file = fs::absolute(cfg.boot_id_file);
        auto watch = io::FileWatch::create(io, [this, file](const auto& changed) {
            if (stopping) return;
            if (changed.contains(file) || changed.contains(file.parent_path())) read_boot_id();
        });
        if (!watch) {
            spdlog::debug("no watch on the boot id file: {}", watch.error().message);
            return;
        }
        if (auto ok = (*watch)->add(file.parent_path()); !ok) {
            spdlog::debug("no watch on {}: {}", file.parent_path().string(), ok.error().message);
            return;
        }
        boot_watch = std::move(*watch);
    }

    // The rules (release known and not past deferring, clamped to its deadline) are
    // daemon::defer_release's, the same the CLI applies to a stopped endpoint's state.db.
    Result<std::optional<std::int64_t>> defer(const std::string& id,
                                              std::optional<std::int64_t> until) {
        const std::int64_t now = env.now_unix();
        auto stored = defer_release(*store, id, until, now);
        if (!stored) return stored;
        apply(controller->set_deferral(id, *stored, now));
        reporter->schedule();
        return stored;
    }

    // The state.db document `patchswarmd status --json` prints (docs/STATUS_JSON.md): every
    // record change is persisted before it is acted on, so it is what this agent holds.
    std::string status_json() const {
        auto doc = endpoint_status(*store, cfg.state_dir);
        if (!doc) return nlohmann::json{{"error", doc.error().message}}.dump();
        return doc->dump();
    }

    void shutdown() {
        if (stopping) return;
        stopping = true;
        spdlog::info("stopping: saving resume data");
        wake_timer.cancel();
        status_timer.cancel();
        progress_timer.cancel();
        boot_watch.reset();
        if (control) control->stop();
        updates->stop();
        reporter->stop();
        renewal->stop();
        runner->shutdown(kShutdownWorkBound);
        if (relay) relay->stop();
        io.stop();
    }
};

Agent::Agent(asio::io_context& io, AgentConfig config, io::Env& env) {
    if (config.seeders.empty()) throw std::runtime_error("no --seeder URL given");
    impl_ = std::make_shared<Impl>(io, std::move(config), env);
    impl_->open();
}

Agent::~Agent() = default;

void Agent::start() {
    impl_->start();
}

void Agent::shutdown() {
    impl_->shutdown();
}

Result<std::optional<std::int64_t>> Agent::defer(const std::string& release_id,
                                                 std::optional<std::int64_t> until) {
    return impl_->defer(release_id, until);
}

std::string Agent::status_json() const {
    return impl_->status_json();
}

}  // namespace patchswarm::daemon
