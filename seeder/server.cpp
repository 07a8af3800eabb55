#include "seeder/server.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <stdexcept>
#include <string>

#include "core/rate_limit.hpp"
#include "core/sites.hpp"
#include "io/fd_limit.hpp"
#include "io/file_watch.hpp"
#include "io/http/server.hpp"
#include "io/service_notify.hpp"
#include "io/swarm/session.hpp"
#include "seeder/catalog.hpp"
#include "seeder/enrol_intake.hpp"
#include "seeder/enrolment.hpp"
#include "seeder/feed_service.hpp"
#include "seeder/fleet_db.hpp"
#include "seeder/report_intake.hpp"
#include "seeder/rollout_controller.hpp"
#include "seeder/routes.hpp"
#include "seeder/seeding.hpp"
#include "seeder/serve_setup.hpp"
#include "seeder/status_model.hpp"
#include "seeder/status_render.hpp"

namespace patchswarm::seeder {

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;

constexpr std::chrono::seconds kShutdownResumeWait{5};

// The routes' view of the catalog.
class CatalogView final : public ReleaseView {
  public:
    explicit CatalogView(const Catalog& catalog) : catalog_(catalog) {}
    bool is_listed(std::string_view id) const override { return catalog_.is_listed(id); }
    bool is_ssl_torrent(std::string_view hash) const override {
        return catalog_.is_ssl_torrent(hash);
    }

  private:
    const Catalog& catalog_;
};

// GET /v1/status and /metrics: read on request (an admin's, or the dashboard's poll).
class ServeFleetView final : public FleetView {
  public:
    ServeFleetView(const RepoPaths& paths, FleetDb& db, io::Env& env, const core::SiteMap& sites,
                   std::int64_t stale_after)
        : paths_(paths), db_(db), env_(env), sites_(sites), stale_after_(stale_after) {}

    Result<std::string> status_json() override {
        auto status = collect();
        if (!status) return std::unexpected(status.error());
        return seeder::status_json(*status);
    }

    Result<std::string> metrics(const ServeCounters& counters) override {
        auto status = collect();
        if (!status) return std::unexpected(status.error());
        auto snapshot = db_.snapshot();
        if (!snapshot) return std::unexpected(snapshot.error());
        std::vector<std::int64_t> last_seen;
        for (const auto& e : snapshot->endpoints) last_seen.push_back(e.last_seen);
        return render_metrics(*status, counters, last_seen);
    }

  private:
    Result<FleetStatus> collect() {
        return collect_status(paths_, &db_, env_.now_unix(), &sites_, stale_after_);
    }

    const RepoPaths& paths_;
    FleetDb& db_;
    io::Env& env_;
    const core::SiteMap& sites_;
    std::int64_t stale_after_;
};

// The running seeder: wires the parts together and turns events into their calls.
//   index.json replaced (file watch) -> catalog reload -> tracker, seeding, rollout controller
//   report with new facts, fleet.db written by `halt`/`resume` -> rollout evaluation
//   rollout verdicts changed, root rotation, feed half-life -> feed re-signed
// Timers: maintenance_ (kMaintenance, the fallback re-check and housekeeping), feed_refresh_
// (one-shot at the feed's half-life) and the rollout controller's one-shot time-rule timer.
//
// Lives on serve()'s stack for the whole io_context::run(), so the handlers it hands to its
// timers, the file watch and the HTTP server may capture `this`: none of them runs after it is
// gone (the HTTP server is stopped and destroyed first, pending timer handlers are discarded
// with the io_context without running).
class Seeder {
  public:
    Seeder(asio::io_context& io, io::Env& env, const ServeOptions& options, RepoForServe repo,
           std::unique_ptr<FleetDb> db, core::SiteMap sites, std::string admin_token,
           std::optional<io::x509::KeyAndCert> ca, std::unique_ptr<EnrolmentDb> enrolment)
        : io_(io),
          env_(env),
          options_(options),
          paths_(options.repo),
          info_(std::move(repo.info)),
          sites_(std::move(sites)),
          db_(std::move(db)),
          feed_(io, *db_, repo.feed_key, FeedOptions{info_.name, options.feed_expiry}),
          catalog_(paths_),
          catalog_view_(catalog_),
          rollouts_(io, env, *db_, paths_.fleet_db(), options.stale_after.count(),
                    [this] { sign_feed(); }),
          root_version_(repo.root_version),
          ca_(std::move(ca)),
          enrolment_(std::move(enrolment)),
          reports_(*db_, enrolment_.get(), env, counters_, options.stale_after.count(),
                   [this] { rollouts_.request_evaluation("report"); }),
          fleet_view_(paths_, *db_, env, sites_, options.stale_after.count()),
          admin_token_(std::move(admin_token)),
          limiter_(core::RateLimit{options.rate_limit, options.rate_burst}),
          maintenance_(io),
          feed_refresh_(io) {
        if (ca_ && enrolment_) {
            enrol_intake_.emplace(*enrolment_, *ca_, env, options.cert_lifetime);
        }
    }

    // Start-up; throws std::runtime_error.
    void start() {
        start_swarm();
        reload_catalog(/*starting=*/true);
        if (feed_.sequence() == 0) throw std::runtime_error("cannot sign the first feed");
        if (auto v = db_->data_version()) fleet_version_ = *v;
        roots_stamp_ = stamp_of(paths_.roots_dir());
        start_http();
        start_watch();
        schedule_maintenance();
    }

    // One line for `systemctl status` (sd_notify STATUS=).
    std::string status_line() const {
        return "serving " + std::to_string(feed_.releases().size()) + " release(s), feed " +
               std::to_string(feed_.sequence()) + ", on http " + options_.http;
    }

    void shutdown() {
        if (stopping_) return;
        stopping_ = true;
        spdlog::info("stopping: saving resume data");
        maintenance_.cancel();
        feed_refresh_.cancel();
        rollouts_.stop();
        watch_.reset();
        feed_.release_waiters();
        if (http_) http_->stop();
        if (session_) session_->save_resume_data_and_wait(kShutdownResumeWait);
        session_.reset();
        io_.stop();
    }

  private:
    // ---- start-up ----------------------------------------------------------------------------

    void start_swarm() {
        io::swarm::Settings settings;
        settings.listen = options_.bt;
        settings.resume_dir = paths_.resume_dir();
        // HQ is reached through the tracker; announcing itself on every LAN would defeat the
        // site-local swarm. Peer exchange too (off by default, and it must stay off here): the
        // seeder is connected to every site's gateways and would tell each about the others.
        settings.enable_lsd = false;
        settings.peer_exchange = false;
        if (ca_) {
            const auto own = seeder_certificate(*ca_);
            if (!own) throw std::runtime_error(own.error().message);
            settings.ssl_listen = ssl_listen_for(options_);
            settings.ssl_certificate = own->cert_pem;
            settings.ssl_private_key = own->key_pem;
            own_cert_renew_at_ = env_.now_unix() + kSeederCertLifetime / 2;
        }
        if (options_.site_upload_limit > 0) {
            for (const auto& site : sites_.sites()) {
                io::swarm::PeerClassSpec spec;
                spec.name = "site:" + site.name;
                for (const auto& r : site.ranges) spec.cidrs.push_back(r.to_string());
                spec.upload_limit = options_.site_upload_limit;
                // As libtorrent's "local" class did for these (private) ranges: whoever the
                // tracker lets in is served, within the site's cap.
                spec.always_unchoke = true;
                settings.peer_classes.push_back(std::move(spec));
            }
        }
        io::swarm::Callbacks callbacks;
        callbacks.on_finished = [this](const std::string& id) {
            spdlog::info("release {} checked on disk: seeding", id);
            if (auto ok = db_->clear_seed_problem(id); !ok) {
                spdlog::warn("release {}: fleet.db: {}", id, ok.error().message);
            }
        };
        callbacks.on_error = [this](const std::string& id, const std::string& message) {
            spdlog::error("release {}: swarm error: {}", id, message);
            record_seed_problem(id, message);
        };
        auto session = io::swarm::Session::create(io_, settings, callbacks);
        if (!session)
            throw std::runtime_error("--bt " + options_.bt + ": " + session.error().message);
        session_ = std::move(*session);
        seeding_.emplace(*session_, paths_, ca_.has_value());
        tracker::TableOptions table;
        table.gateways = options_.gateways;
        table.site_stall = options_.site_stall;
        tracker_.emplace(seeder_bt_address(options_, session_->listen_port()), table, sites_);
        ssl_port_ = session_->ssl_listen_port();
        if (ca_) {
            spdlog::info("enrolment required (fleet CA {}): SSL torrents on port {}",
                         fleet_ca_cert(paths_).string(), ssl_port_);
        } else {
            spdlog::warn(
                "enrolment is OFF (no fleet CA): any machine that reaches this seeder can join "
                "the swarm, download payloads and post reports. Turn it on with "
                "`patchswarm-seeder ca init --repo {}` before publishing, and give endpoints "
                "tokens from `token create`",
                paths_.root().string());
        }
    }

    // HQ's copy failed its check: every status view names it at the release level
    // (seeder/status_model.hpp, ReleaseStatus::seed_problem), not as endpoints stuck downloading.
    void record_seed_problem(const std::string& id, const std::string& message) {
        SeedProblem p;
        p.release_id = id;
        p.message = message;
        p.at = env_.now_unix();
        if (seeding_) {
            if (const auto it = seeding_->seeding().find(id); it != seeding_->seeding().end()) {
                p.manifest_sha256 = it->second;
            }
        }
        p.present = seed_present_of(message);
        if (auto ok = db_->set_seed_problem(p); !ok) {
            spdlog::warn("release {}: fleet.db: {}", id, ok.error().message);
        }
    }

    void start_http() {
        routes_.emplace(RouteContext{paths_, catalog_view_, *tracker_, reports_,
                                     enrol_intake_ ? &*enrol_intake_ : nullptr, fleet_view_,
                                     limiter_, counters_, env_, admin_token_, options_.admin_auth,
                                     options_.site_stall, ssl_port_});
        io::http::ServerLimits limits;
        limits.max_body_bytes = kMaxReportBytes;
        limits.max_connections_per_client = options_.max_connections_per_client;
        limits.max_connections = options_.max_connections;
        http_ = std::make_unique<io::http::Server>(
            io_,
            [this](io::http::Request&& req, io::http::Respond respond) {
                auto result = route(req, *routes_);
                if (const auto* wait = std::get_if<FeedWait>(&result)) {
                    return feed_.get(wait->after, wait->wait, std::move(respond));
                }
                respond(std::move(std::get<io::http::Response>(result)));
            },
            limits);
        auto port = http_->listen(options_.http);
        if (!port)
            throw std::runtime_error("--http " + options_.http + ": " + port.error().message);
        spdlog::info(
            "serving repository {} on http {} (port {}), bittorrent {}, tracker gives {}:{}",
            info_.name, options_.http, *port, options_.bt,
            tracker::ip_to_string(tracker_->seeder()), tracker_->seeder().port);
        for (const auto& site : sites_.sites()) spdlog::info("site {}", core::to_spec(site));
        spdlog::info(
            "sites: {} configured, other addresses grouped per /24 (IPv6 /64); {} gateway(s) per "
            "site, whole site after {}s without progress, upload cap per site {}",
            sites_.sites().size(), options_.gateways, options_.site_stall.count(),
            options_.site_upload_limit > 0 ? std::to_string(options_.site_upload_limit) + " B/s"
                                           : std::string("none"));
    }

    // The repository folder holds index.json and fleet.db (whose WAL `halt` and `resume`
    // write); root/ gets a file per committed rotation; keys/ the feed key that goes with it.
    void start_watch() {
        auto watch = io::FileWatch::create(
            io_, [this](const std::set<fs::path>& changed) { on_files_changed(changed); });
        if (!watch) {
            spdlog::warn("{}; noticing changes within {}s instead", watch.error().message,
                         kMaintenance.count());
            return;
        }
        watch_ = std::move(*watch);
        for (const auto& folder : {paths_.root(), paths_.roots_dir(), paths_.keys_dir()}) {
            if (auto ok = watch_->add(folder); !ok) {
                spdlog::warn("{}; noticing changes there within {}s instead", ok.error().message,
                             kMaintenance.count());
            }
        }
    }

    // ---- events ------------------------------------------------------------------------------

    void on_files_changed(const std::set<fs::path>& changed) {
        if (stopping_) return;
        const fs::path db = paths_.fleet_db();
        bool index = false, fleet = false, root = false;
        for (const auto& p : changed) {
            const fs::path parent = p.parent_path();
            if (p == paths_.index_json() || p == paths_.root()) index = fleet = true;
            if (p == db || p == fs::path(db.string() + "-wal")) fleet = true;
            if (parent == paths_.roots_dir() || parent == paths_.keys_dir() ||
                p == paths_.roots_dir() || p == paths_.keys_dir()) {
                root = true;
            }
        }
        if (root) reload_root();
        if (index) reload_catalog(/*starting=*/false);
        if (fleet) check_fleet_db();
    }

    // The catalog decides from index.json's stamp whether anything is new.
    void reload_catalog(bool starting) {
        auto changed = catalog_.reload(starting);
        if (!changed) {
            if (starting) throw std::runtime_error(changed.error().message);
            spdlog::error("index.json: {}", changed.error().message);
            return;
        }
        if (!*changed) return;
        tracker_->set_torrents(catalog_.torrents());
        seeding_->reconcile(catalog_);
        std::map<std::string, ReleasePolicy> policies;
        for (const auto& [id, release] : catalog_.served()) policies.emplace(id, release.policy);
        // At start-up the first feed must carry the latched halts and rings: evaluated at once.
        rollouts_.set_releases(catalog_.listed(), policies, /*now_on_this_thread=*/starting);
    }

    // Our own writes never change fleet.db's data_version, so only another process's do (a
    // halt or resume by hand, a token or device command): evaluate then.
    void check_fleet_db() {
        auto version = db_->data_version();
        if (!version) {
            spdlog::error("fleet.db: {}", version.error().message);
            return;
        }
        if (*version == fleet_version_) return;
        fleet_version_ = *version;
        rollouts_.request_evaluation("fleet.db written by another process");
    }

    // A committed root rotation may name a new feed key (`root rotate --new-feed-key` installs it
    // as keys/feed.key in the same step): switch to it and re-sign the feed at once, so endpoints
    // that followed the rotation get a feed they can verify.
    void reload_root() {
        // A commit adds a file to root/, which changes the folder's stamp.
        const FileStamp stamp = stamp_of(paths_.roots_dir());
        if (stamp == roots_stamp_) return;
        auto current = load_current_root(paths_);
        if (!current || current->version == root_version_) {
            if (!current) spdlog::error("root: {}", current.error().message);
            roots_stamp_ = stamp;
            return;
        }
        auto key = feed_key_for(paths_, current->doc);
        if (!key) {
            // Keep serving the old key's feed (endpoints still on the old root can use it) and
            // look again when keys/ changes: the key may be installed a moment after the root.
            if (refused_root_ != current->version) {
                spdlog::error("root version {}: {}", current->version, key.error().message);
                refused_root_ = current->version;
            }
            return;
        }
        roots_stamp_ = stamp;
        spdlog::info("root version {} committed; feed key {}", current->version,
                     crypto::key_id(key->public_key).substr(0, 16));
        root_version_ = current->version;
        warn_if_root_expires_soon(current->doc, env_.now_unix());
        feed_.set_key(*key);
        sign_feed();
    }

    void sign_feed() {
        if (stopping_) return;
        if (auto seq = feed_.publish(rollouts_.feed_entries(), rollouts_.halted(), env_.now_unix());
            !seq) {
            spdlog::error("cannot sign the feed: {}", seq.error().message);
        } else {
            ++counters_.feeds_signed;
            io::service::notify_status(status_line());
        }
        schedule_feed_refresh();
    }

    // ---- timers ------------------------------------------------------------------------------

    // One-shot at the feed's half-life (at least a second away, also after a failed signing).
    void schedule_feed_refresh() {
        const auto at = feed_.refresh_at();
        const std::int64_t delay = std::max<std::int64_t>(at ? *at - env_.now_unix() : 0, 1);
        feed_refresh_.expires_after(std::chrono::seconds(delay));
        feed_refresh_.async_wait([this](const boost::system::error_code& ec) {
            if (ec || stopping_) return;
            if (feed_.needs_refresh(env_.now_unix())) {
                sign_feed();
            } else {
                schedule_feed_refresh();
            }
        });
    }

    // The fallback for events the watch missed (or where there is no watch), and housekeeping
    // that no event announces: the tracker's expired peers, the seeder's own certificate, a feed
    // whose signing failed.
    void schedule_maintenance() {
        maintenance_.expires_after(kMaintenance);
        maintenance_.async_wait([this](const boost::system::error_code& ec) {
            if (ec || stopping_) return;
            on_maintenance();
            schedule_maintenance();
        });
    }

    void on_maintenance() {
        reload_root();
        reload_catalog(/*starting=*/false);
        check_fleet_db();
        if (rollouts_.feed_entries() != feed_.releases() || rollouts_.halted() != feed_.halted()) {
            sign_feed();
        }
        tracker_->expire(env_.now_steady());
        if (ca_ && env_.now_unix() >= own_cert_renew_at_) renew_own_certificate();
    }

    // Peers refuse an expired certificate: a seeder that runs for months renews its own.
    void renew_own_certificate() {
        auto own = seeder_certificate(*ca_);
        if (!own) {
            spdlog::error("{}; retrying in an hour", own.error().message);
            own_cert_renew_at_ = env_.now_unix() + 3600;
            return;
        }
        session_->set_ssl_identity(own->cert_pem, own->key_pem);
        own_cert_renew_at_ = env_.now_unix() + kSeederCertLifetime / 2;
        spdlog::info("renewed the seeder's own TLS certificate");
    }

    asio::io_context& io_;
    io::Env& env_;
    ServeOptions options_;
    RepoPaths paths_;
    RepoInfo info_;
    core::SiteMap sites_;
    std::unique_ptr<FleetDb> db_;
    FeedService feed_;
    Catalog catalog_;
    CatalogView catalog_view_;
    RolloutController rollouts_;
    std::optional<tracker::PeerTable> tracker_;  // needs the bound BitTorrent port
    std::unique_ptr<io::swarm::Session> session_;
    std::optional<Seeding> seeding_;  // needs the session
    std::uint64_t root_version_ = 0;
    std::optional<io::x509::KeyAndCert> ca_;  // set: enrolment required
    std::int64_t own_cert_renew_at_ = 0;
    std::unique_ptr<EnrolmentDb> enrolment_;  // set iff ca_
    std::optional<EnrolIntake> enrol_intake_;
    ServeCounters counters_;
    ReportIntake reports_;
    ServeFleetView fleet_view_;
    std::uint16_t ssl_port_ = 0;
    std::uint64_t refused_root_ = 0;  // last root version whose feed key is missing (logged once)
    FileStamp roots_stamp_;
    std::int64_t fleet_version_ = 0;  // fleet.db's data_version when last looked at
    bool stopping_ = false;
    const std::string admin_token_;
    core::RateLimiter limiter_;
    asio::steady_timer maintenance_;
    asio::steady_timer feed_refresh_;
    std::unique_ptr<io::FileWatch> watch_;
    std::optional<RouteContext> routes_;      // refers to the members above
    std::unique_ptr<io::http::Server> http_;  // last: stopped and destroyed first
};

}  // namespace

void serve(const ServeOptions& options, io::Env& env) {
    check_serve_options(options);
    auto sites = core::SiteMap::parse(options.sites);
    if (!sites) throw std::invalid_argument("--site: " + sites.error().message);
    if (options.site_upload_limit > 0 && sites->sites().size() > io::swarm::kMaxPeerClasses) {
        // One libtorrent peer class per site, and a peer-class filter has only so many bits.
        throw std::invalid_argument("--site-upload-limit supports at most " +
                                    std::to_string(io::swarm::kMaxPeerClasses) + " sites");
    }
    const RepoPaths paths(options.repo);
    auto repo = open_repo(paths, env.now_unix());
    auto db = FleetDb::open(paths.fleet_db());
    if (!db) throw std::runtime_error("fleet.db: " + db.error().message);
    std::vector<std::string> specs;
    for (const auto& site : sites->sites()) specs.push_back(core::to_spec(site));
    if (auto ok = (*db)->save_sites(specs); !ok) {
        throw std::runtime_error("fleet.db: " + ok.error().message);
    }
    if (auto ok = (*db)->set_meta("stale_after", std::to_string(options.stale_after.count()));
        !ok) {
        throw std::runtime_error("fleet.db: " + ok.error().message);
    }

    if (options.rate_limit < 0 || options.rate_burst < 1) {
        throw std::invalid_argument("--rate-limit must be >= 0 and --rate-burst >= 1");
    }
    if (options.max_connections_per_client < 1) {
        throw std::invalid_argument("--max-connections-per-client must be >= 1");
    }
    // Sized before anything opens descriptors: every held long-poll is one.
    ServeOptions sized = options;
    {
        auto fds = io::raise_fd_limit();
        if (!fds) throw std::runtime_error(fds.error().message);
        const auto cap = connection_cap(options.max_connections, fds->soft);
        if (!cap.warning.empty()) spdlog::warn("{}", cap.warning);
        sized.max_connections = cap.max_connections;
        spdlog::info("open-file limit {} (hard {}): up to {} HTTP connections", fds->soft,
                     fds->hard, cap.max_connections);
    }
    const auto token_file =
        options.admin_token_file.empty() ? paths.admin_token() : options.admin_token_file;
    auto admin_token = load_or_create_admin_token(token_file);
    if (!admin_token) throw std::runtime_error("admin token: " + admin_token.error().message);
    auto ca = load_fleet_ca(paths);
    if (!ca) throw std::runtime_error(ca.error().message);
    std::unique_ptr<EnrolmentDb> enrolment;
    if (*ca) {
        // Certificates end with the CA that signs them: near its end every renewal is short,
        // and past it no endpoint can join the swarm.
        if (auto info = io::x509::inspect((*ca)->cert_pem);
            info && info->not_after - env.now_unix() < kRootExpiryWarning) {
            spdlog::warn("the fleet CA ({}) expires {}: endpoint certificates cannot outlive it",
                         fleet_ca_cert(paths).string(), core::format_utc(info->not_after));
        }
        auto edb = EnrolmentDb::open(paths.fleet_db());
        if (!edb) throw std::runtime_error("fleet.db: " + edb.error().message);
        enrolment = std::move(*edb);
    }

    asio::io_context io;
    Seeder seeder(io, env, sized, std::move(repo), std::move(*db), std::move(*sites),
                  std::move(*admin_token), std::move(*ca), std::move(enrolment));
    seeder.start();
    // SIGHUP must not end the seeder: systemd counts a death by SIGHUP as clean, and
    // Restart=on-failure would leave it dead. Options are read at start only.
    asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
    std::function<void()> wait_signal = [&] {
        signals.async_wait([&](const boost::system::error_code& ec, int sig) {
            if (ec) return;
            if (sig == SIGHUP) {
                spdlog::info(
                    "SIGHUP: options are read at start only; restart the service to "
                    "apply a changed configuration");
                wait_signal();
                return;
            }
            io::service::notify_stopping("stopping");
            seeder.shutdown();
        });
    };
    wait_signal();
    const io::service::Watchdog watchdog(io);
    io::service::notify_ready(seeder.status_line());
    io.run();
    spdlog::info("stopped");
}

}  // namespace patchswarm::seeder
