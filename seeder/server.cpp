#include "seeder/server.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "core/envelope.hpp"
#include "core/manifest.hpp"
#include "core/rate_limit.hpp"
#include "core/rollout.hpp"
#include "core/sites.hpp"
#include "crypto/crypto.hpp"
#include "io/fs.hpp"
#include "io/http/server.hpp"
#include "io/key_files.hpp"
#include "io/swarm/session.hpp"
#include "io/x509.hpp"
#include "seeder/dashboard.hpp"
#include "seeder/enrolment.hpp"
#include "seeder/feed_service.hpp"
#include "seeder/fleet_db.hpp"
#include "seeder/metrics.hpp"
#include "seeder/repo.hpp"
#include "seeder/report.hpp"
#include "seeder/rollout_eval.hpp"
#include "seeder/status.hpp"
#include "seeder/tracker.hpp"

namespace patchswarm::seeder {

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;

constexpr std::chrono::milliseconds kTick{500};
constexpr std::chrono::seconds kShutdownResumeWait{5};

std::int64_t now_unix() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

io::http::Response error_response(int status, std::string_view code, std::string_view message) {
    const nlohmann::json body = {{"error", code}, {"message", message}};
    return io::http::json_response(
        status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

io::http::Response error_response(const Error& e, int status) {
    return error_response(status, to_string(e.code), e.message);
}

int report_status_for(Errc code) {
    switch (code) {
        case Errc::too_large:
            return 413;
        case Errc::rollback:
            return 409;
        case Errc::permission:
            return 403;
        case Errc::database:
            return 503;
        case Errc::internal:
            return 500;
        default:
            return 400;
    }
}

std::optional<std::uint64_t> parse_u64(const std::string& text) {
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return v;
}

// What identifies a version of index.json without reading it: publish replaces it by rename,
// so the inode changes even when mtime and size happen to match.
struct FileStamp {
    std::int64_t mtime_ns = -1;
    std::int64_t size = -1;
    std::uint64_t inode = 0;
    bool operator==(const FileStamp&) const = default;
};

FileStamp stamp_of(const fs::path& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return {};
    return {static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
            static_cast<std::int64_t>(st.st_size), static_cast<std::uint64_t>(st.st_ino)};
}

// A release as the seeder serves it: checked once when index.json names it.
struct LoadedRelease {
    std::string announce_hash;  // first 20 bytes of the v2 info-hash
    bool ssl = false;           // an SSL torrent: peers meet on the SSL listen port
    std::vector<std::uint8_t> torrent;
    std::int64_t created = 0;  // the manifest's: ring 0 opens then
    std::optional<core::Rollout> rollout;
};

Result<LoadedRelease> load_release(const RepoPaths& paths, const core::FeedEntry& entry) {
    auto manifest = io::read_file(paths.manifest(entry.id), 2 * core::kMaxManifestBytes);
    if (!manifest) return std::unexpected(manifest.error());
    if (crypto::sha256_hex(crypto::as_bytes(*manifest)) != entry.manifest_sha256) {
        return fail(Errc::hash_mismatch, "manifest.json does not match index.json");
    }
    auto torrent = io::read_file(paths.torrent(entry.id), kMaxTorrentBytes);
    if (!torrent) return std::unexpected(torrent.error());
    LoadedRelease release;
    // Our own repository's manifest: parsed for its rollout policy, which serve enforces.
    auto env = core::parse_envelope(*manifest, 2 * core::kMaxManifestBytes);
    if (!env) return std::unexpected(env.error());
    auto m = core::parse_manifest(
        std::string_view(reinterpret_cast<const char*>(env->payload.data()), env->payload.size()));
    if (!m) return std::unexpected(m.error());
    release.created = m->created;
    release.rollout = m->rollout;
    release.torrent.assign(torrent->begin(), torrent->end());
    auto summary = io::swarm::inspect_torrent(release.torrent);
    if (!summary) return std::unexpected(summary.error());
    auto hash = tracker::announce_hash(summary->infohash_v2);
    if (!hash) return std::unexpected(hash.error());
    release.announce_hash = std::move(*hash);
    release.ssl = !summary->ssl_root_cert.empty();
    return release;
}

tracker::PeerAddress seeder_bt_address(const ServeOptions& options, std::uint16_t bound_port) {
    const bool explicit_public = !options.bt_public.empty();
    const auto parsed =
        tracker::parse_host_port(explicit_public ? options.bt_public : options.bt, true);
    if (!parsed) {
        throw std::runtime_error(explicit_public ? "--bt-public is not ip:port"
                                                 : "--bt is not ip:port");
    }
    tracker::PeerAddress address = *parsed;
    if (!explicit_public) address.port = bound_port;
    if (address.port == 0 || tracker::is_unspecified(address)) {
        throw std::runtime_error(
            "--bt listens on all addresses; give --bt-public with the address peers should use");
    }
    return address;
}

// --bt-ssl, or --bt's host with the next port (any free port when --bt's port is 0).
std::string ssl_listen_for(const ServeOptions& options) {
    if (!options.bt_ssl.empty()) return options.bt_ssl;
    const auto parsed = tracker::parse_host_port(options.bt, true);
    if (!parsed) throw std::runtime_error("--bt is not ip:port");
    const std::string host =
        parsed->v6 ? "[" + tracker::ip_to_string(*parsed) + "]" : tracker::ip_to_string(*parsed);
    return host + ":" +
           std::to_string(parsed->port == 0 || parsed->port == 65535 ? 0 : parsed->port + 1);
}

// The seeder's own certificate: a fresh key each start and at half its life, issued by the
// fleet CA.
Result<io::x509::KeyAndCert> seeder_certificate(const io::x509::KeyAndCert& ca) {
    auto key = io::x509::generate_key();
    if (!key) return fail(key.error().code, "seeder TLS key: " + key.error().message);
    auto pub = io::x509::public_key_of(*key);
    if (!pub) return fail(pub.error().code, "seeder TLS key: " + pub.error().message);
    auto cert = io::x509::issue(ca, *pub, "patchswarm-seeder", kSeederCertLifetime);
    if (!cert) return fail(cert.error().code, "seeder certificate: " + cert.error().message);
    return io::x509::KeyAndCert{std::move(*key), std::move(*cert)};
}

constexpr std::int64_t kRootExpiryWarning = 30 * 86'400;

// Endpoints stop at an expired root (freeze check); say so well before it happens.
void warn_if_root_expires_soon(const core::RootDocument& root) {
    const std::int64_t left = root.expires - now_unix();
    if (left < kRootExpiryWarning) {
        spdlog::warn(
            "root version {} expires in {} day(s): rotate it (root rotate) before endpoints "
            "refuse it",
            root.version, std::max<std::int64_t>(left, 0) / 86'400);
    }
}

// keys/feed.key, which must be a feed key of `root`: a feed signed by any other key would be
// refused by every endpoint.
Result<crypto::KeyPair> feed_key_for(const RepoPaths& paths, const core::RootDocument& root) {
    auto key = io::load_secret_key(paths.feed_secret_key());
    if (!key) return fail(key.error().code, "feed key: " + key.error().message);
    const auto& ids = root.feed.keyids;
    if (std::find(ids.begin(), ids.end(), crypto::key_id(key->public_key)) == ids.end()) {
        return fail(Errc::bad_signature, paths.feed_secret_key().string() +
                                             " is not a feed key of root version " +
                                             std::to_string(root.version));
    }
    return *key;
}

// ---- the running seeder ----------------------------------------------------------------------

// Lives on serve()'s stack for the whole io_context::run(), so the handlers it hands to the
// timer and the HTTP server may capture `this`: none of them runs after it is gone (the HTTP
// server is stopped and destroyed first, pending timer handlers are discarded with the
// io_context without running).
class Seeder {
  public:
    Seeder(asio::io_context& io, const ServeOptions& options, RepoInfo info,
           crypto::KeyPair feed_key, std::uint64_t root_version, std::unique_ptr<FleetDb> db,
           core::SiteMap sites, std::string admin_token, std::optional<io::x509::KeyAndCert> ca,
           std::unique_ptr<EnrolmentDb> enrolment)
        : io_(io),
          options_(options),
          paths_(options.repo),
          info_(std::move(info)),
          sites_(std::move(sites)),
          db_(std::move(db)),
          feed_(io, *db_, feed_key, FeedOptions{info_.name, options.feed_expiry}),
          tick_timer_(io),
          root_version_(root_version),
          ca_(std::move(ca)),
          enrolment_(std::move(enrolment)),
          admin_token_(std::move(admin_token)),
          limiter_(core::RateLimit{options.rate_limit, options.rate_burst}) {}

    // Start-up; throws std::runtime_error.
    void start() {
        start_swarm();
        reload_index(/*force_feed=*/true);
        if (feed_.sequence() == 0) throw std::runtime_error("cannot sign the first feed");
        start_http();
        schedule_tick();
    }

    void shutdown() {
        if (stopping_) return;
        stopping_ = true;
        spdlog::info("stopping: saving resume data");
        tick_timer_.cancel();
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
            own_cert_renew_at_ = now_unix() + kSeederCertLifetime / 2;
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
        callbacks.on_finished = [](const std::string& id) {
            spdlog::info("release {} checked on disk: seeding", id);
        };
        callbacks.on_error = [](const std::string& id, const std::string& message) {
            spdlog::error("release {}: swarm error: {}", id, message);
        };
        auto session = io::swarm::Session::create(io_, settings, callbacks);
        if (!session)
            throw std::runtime_error("--bt " + options_.bt + ": " + session.error().message);
        session_ = std::move(*session);
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

    void start_http() {
        io::http::ServerLimits limits;
        limits.max_body_bytes = kMaxReportBytes;
        limits.max_connections_per_client = options_.max_connections_per_client;
        http_ = std::make_unique<io::http::Server>(
            io_,
            [this](io::http::Request&& req, io::http::Respond respond) {
                handle(std::move(req), std::move(respond));
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

    // ---- index.json and the feed -------------------------------------------------------------

    void schedule_tick() {
        tick_timer_.expires_after(kTick);
        tick_timer_.async_wait([this](const boost::system::error_code& ec) {
            if (ec || stopping_) return;
            on_tick();
            schedule_tick();
        });
    }

    void on_tick() {
        reload_root();
        reload_index(/*force_feed=*/false);
        const bool policy_changed = evaluate_rollouts(now_unix());
        if (policy_changed || feed_.needs_refresh(now_unix())) sign_feed();
        tracker_->expire(tracker::Clock::now());
        if (ca_ && now_unix() >= own_cert_renew_at_) renew_own_certificate();
    }

    // Peers refuse an expired certificate: a seeder that runs for months renews its own.
    void renew_own_certificate() {
        auto own = seeder_certificate(*ca_);
        if (!own) {
            spdlog::error("{}; retrying in an hour", own.error().message);
            own_cert_renew_at_ = now_unix() + 3600;
            return;
        }
        session_->set_ssl_identity(own->cert_pem, own->key_pem);
        own_cert_renew_at_ = now_unix() + kSeederCertLifetime / 2;
        spdlog::info("renewed the seeder's own TLS certificate");
    }

    // Rings to open, halts to latch, halts and resumes made by hand: all land in fleet.db, and
    // the feed lists the result. Returns whether the feed must be re-signed. Database trouble is
    // logged and leaves the feed as it is (the next tick tries again).
    bool evaluate_rollouts(std::int64_t now) {
        auto snapshot = db_->snapshot();
        auto halts = db_->halts();
        if (!snapshot || !halts) {
            spdlog::error("rollout: cannot read fleet.db: {}",
                          !snapshot ? snapshot.error().message : halts.error().message);
            return false;
        }
        std::vector<core::FeedEntry> entries = releases_;
        std::vector<std::string> halted;
        for (auto& entry : entries) {
            const auto it = rollouts_.find(entry.id);
            if (it == rollouts_.end()) continue;  // could not be loaded: not served
            const ReleasePolicy& policy = it->second;
            auto opened = db_->ring_opens(entry.id, entry.manifest_sha256);
            if (!opened) {
                spdlog::error("rollout {}: {}", entry.id, opened.error().message);
                return false;
            }
            const ReleaseRollout ro =
                evaluate_release(policy.rollout ? &*policy.rollout : nullptr, policy.created,
                                 entry.id, entry.manifest_sha256, *snapshot, *opened, *halts, now,
                                 options_.stale_after.count());
            if (ro.progress.halted && !ro.halt) {
                spdlog::warn("release {} halted: {}", entry.id, ro.progress.halt_reason);
                if (auto ok = db_->halt(entry.id, entry.manifest_sha256, ro.progress.halt_reason,
                                        "auto", now);
                    !ok) {
                    spdlog::error("rollout {}: cannot latch the halt: {}", entry.id,
                                  ok.error().message);
                }
                halted.push_back(entry.id);
            } else if (ro.halt) {
                halted.push_back(entry.id);
            }
            if (ro.feed_open_rings) {
                for (std::size_t ring = opened->size(); ring < *ro.feed_open_rings; ++ring) {
                    const auto at = ro.progress.rings[ring].opened_at.value_or(now);
                    spdlog::info("release {}: ring {} open", entry.id,
                                 ro.progress.rings[ring].name);
                    if (auto ok = db_->save_ring_open(entry.id, entry.manifest_sha256, ring, at);
                        !ok) {
                        spdlog::error("rollout {}: {}", entry.id, ok.error().message);
                    }
                }
                entry.open_rings = ro.feed_open_rings;
            }
        }
        const bool changed = entries != feed_.releases() || halted != feed_.halted();
        feed_entries_ = std::move(entries);
        halted_ = std::move(halted);
        return changed;
    }

    void reload_index(bool force_feed) {
        const FileStamp stamp = stamp_of(paths_.index_json());
        if (stamp == index_stamp_ && !force_feed) return;
        auto index = load_index(paths_);
        if (!index) {
            // Keep serving the last good index; say so once per version of the file.
            if (stamp != index_stamp_) spdlog::error("index.json: {}", index.error().message);
            index_stamp_ = stamp;
            if (force_feed) throw std::runtime_error(index.error().message);
            return;
        }
        index_stamp_ = stamp;
        if (index->releases == releases_ && !force_feed) return;
        releases_ = index->releases;
        apply_releases();
        // Until the fleet database says otherwise, a staged release has only its first ring
        // open: a missing open_rings would open every ring.
        feed_entries_ = releases_;
        for (auto& entry : feed_entries_) {
            const auto it = rollouts_.find(entry.id);
            if (it != rollouts_.end() && it->second.rollout && !it->second.rollout->rings.empty()) {
                entry.open_rings = 1;
            }
        }
        evaluate_rollouts(now_unix());
        sign_feed();
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
            // look again next tick: the key may be installed a moment after the root.
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
        warn_if_root_expires_soon(current->doc);
        feed_.set_key(*key);
        sign_feed();
    }

    void sign_feed() {
        if (auto seq = feed_.publish(feed_entries_, halted_, now_unix()); !seq) {
            spdlog::error("cannot sign the feed: {}", seq.error().message);
            return;
        }
        ++counters_.feeds_signed;
    }

    // Brings the tracker and the swarm in line with releases_.
    void apply_releases() {
        std::map<std::string, std::string> torrents;  // announce hash → id
        std::map<std::string, LoadedRelease> loaded;
        std::set<std::string> ssl_torrents;
        for (const auto& entry : releases_) {
            auto release = load_release(paths_, entry);
            if (!release) {
                spdlog::error("release {} cannot be served: {}", entry.id, release.error().message);
                continue;
            }
            torrents.emplace(release->announce_hash, entry.id);
            if (release->ssl) {
                ssl_torrents.insert(release->announce_hash);
                if (!ca_) {
                    spdlog::error(
                        "release {} is an SSL torrent but {} is missing: no peer can "
                        "connect to this seeder for it",
                        entry.id, fleet_ca_cert(paths_).string());
                }
            }
            loaded.emplace(entry.id, std::move(*release));
        }
        tracker_->set_torrents(std::move(torrents));
        ssl_torrents_ = std::move(ssl_torrents);
        rollouts_.clear();
        for (const auto& [id, release] : loaded) {
            rollouts_.emplace(id, ReleasePolicy{release.created, release.rollout});
        }

        std::map<std::string, std::string> wanted;  // id → manifest hash
        for (const auto& entry : releases_) {
            if (loaded.contains(entry.id)) wanted.emplace(entry.id, entry.manifest_sha256);
        }
        for (auto it = seeding_.begin(); it != seeding_.end();) {
            const auto w = wanted.find(it->first);
            if (w != wanted.end() && w->second == it->second) {
                ++it;
                continue;
            }
            session_->remove(it->first);
            spdlog::info("release {} no longer seeded ({})", it->first,
                         w == wanted.end() ? "withdrawn" : "replaced");
            it = seeding_.erase(it);
        }
        for (auto& [id, hash] : wanted) {
            if (seeding_.contains(id)) continue;
            add_to_swarm(id, hash, std::move(loaded.at(id).torrent));
        }
    }

    void add_to_swarm(const std::string& id, const std::string& manifest_sha256,
                      std::vector<std::uint8_t> torrent) {
        io::swarm::AddParams params;
        params.id = id;
        params.torrent = std::move(torrent);
        params.save_path = paths_.payload_dir(id);
        params.seed = true;
        if (auto ok = session_->add(std::move(params)); !ok) {
            spdlog::error("release {} cannot be seeded: {}", id, ok.error().message);
            return;
        }
        seeding_.emplace(id, manifest_sha256);
        spdlog::info("release {} added: checking payload, then seeding", id);
    }

    bool is_published(std::string_view id) const {
        return std::any_of(releases_.begin(), releases_.end(),
                           [&](const auto& e) { return e.id == id; });
    }

    // ---- routes ------------------------------------------------------------------------------

    void handle(io::http::Request&& req, io::http::Respond respond) {
        spdlog::debug("{} {} from {}", req.method, req.target, req.remote_address);
        try {
            if (auto refused = rate_limited(req)) return respond(std::move(*refused));
            if (is_admin_route(req.path) &&
                !admin_authorized(req, admin_token_, options_.admin_auth)) {
                ++counters_.http_unauthorized;
                spdlog::info("{} {} from {}: refused, no admin credential", req.method, req.path,
                             req.remote_address);
                return respond(admin_unauthorized());
            }
            if (req.path == "/v1/feed" && is_read(req)) return get_feed(req, std::move(respond));
            respond(route(req));
        } catch (const std::exception& e) {
            // Nothing may escape into the io_context; a bug answers 500 and is logged.
            spdlog::error("{} {}: {}", req.method, req.path, e.what());
            respond(error_response(500, "internal", "internal error"));
        }
    }

    // The fleet view: which machines are unpatched is worth knowing to an attacker.
    static bool is_admin_route(std::string_view path) {
        return path == "/" || path == "/dashboard" || path == "/v1/status" || path == "/metrics";
    }

    // 429 with Retry-After once a client (req.client, the HTTP server's per-connection key)
    // has used its burst.
    std::optional<io::http::Response> rate_limited(const io::http::Request& req) {
        const std::string& client = req.client;
        const auto decision = limiter_.take(client, core::RateLimiter::Clock::now());
        if (decision.allowed) return std::nullopt;
        ++counters_.http_rate_limited;
        spdlog::debug("{} {} from {}: rate limited", req.method, req.path, req.remote_address);
        auto res = error_response(429, "rate_limited",
                                  "too many requests from " + client + "; retry after " +
                                      std::to_string(decision.retry_after.count()) + " s");
        res.headers["Retry-After"] = std::to_string(decision.retry_after.count());
        return res;
    }

    static bool is_read(const io::http::Request& req) {
        return req.method == "GET" || req.method == "HEAD";
    }

    io::http::Response route(const io::http::Request& req) {
        if (req.path == "/v1/report") {
            if (req.method != "POST") return method_not_allowed();
            return post_report(req);
        }
        if (req.path == "/v1/enroll") {
            if (req.method != "POST") return method_not_allowed();
            return post_enroll(req);
        }
        if (!is_read(req)) return method_not_allowed();
        if (req.path == "/healthz") return io::http::text_response(200, "ok");
        if (req.path == "/announce") return announce(req);
        if (auto version = core::root_route_version(req.path)) {
            return io::http::file_response(paths_.root_version(*version), nullptr,
                                           "application/json");
        }
        if (req.path == "/" || req.path == "/dashboard") return get_dashboard();
        if (req.path == "/v1/status") return get_status();
        if (req.path == "/metrics") return get_metrics();
        if (req.path.starts_with("/v1/releases/")) return get_release_file(req);
        if (req.path.starts_with("/v1/payload/")) return get_payload(req);
        return error_response(404, "not_found", "no such route");
    }

    static io::http::Response method_not_allowed() {
        auto res = error_response(405, "method_not_allowed", "method not allowed");
        return res;
    }

    void get_feed(const io::http::Request& req, io::http::Respond respond) {
        std::optional<std::uint64_t> after;
        std::uint64_t wait = 0;
        if (const auto it = req.query.find("after"); it != req.query.end()) {
            after = parse_u64(it->second);
            if (!after) return respond(error_response(400, "malformed", "after: not a number"));
        }
        if (const auto it = req.query.find("wait"); it != req.query.end()) {
            const auto w = parse_u64(it->second);
            if (!w) return respond(error_response(400, "malformed", "wait: not a number"));
            wait = std::min<std::uint64_t>(*w, kMaxFeedWait.count());
        }
        feed_.get(after, std::chrono::seconds(wait), std::move(respond));
    }

    // /v1/releases/<ID>/manifest and /v1/releases/<ID>/torrent
    io::http::Response get_release_file(const io::http::Request& req) {
        const std::string_view rest = std::string_view(req.path).substr(13);
        const auto slash = rest.find('/');
        if (slash == std::string_view::npos)
            return error_response(404, "not_found", "no such route");
        const std::string id(rest.substr(0, slash));
        const std::string_view what = rest.substr(slash + 1);
        if (auto ok = core::validate_release_id(id); !ok) return error_response(ok.error(), 400);
        if (!is_published(id)) return error_response(404, "not_found", "no release " + id);
        if (what == "manifest") {
            return io::http::file_response(paths_.manifest(id), nullptr, "application/json");
        }
        if (what == "torrent") {
            return io::http::file_response(paths_.torrent(id), nullptr, "application/x-bittorrent");
        }
        return error_response(404, "not_found", "no such route");
    }

    // /v1/payload/<ID>/<path>: the BEP 19 web seed root is /v1/payload/<ID>/, below which the
    // torrent's name and file paths follow.
    io::http::Response get_payload(const io::http::Request& req) {
        const std::string_view rest = std::string_view(req.path).substr(12);
        const auto slash = rest.find('/');
        if (slash == std::string_view::npos) return error_response(404, "not_found", "no file");
        const std::string id(rest.substr(0, slash));
        const std::string path(rest.substr(slash + 1));
        if (auto ok = core::validate_release_id(id); !ok) return error_response(ok.error(), 400);
        if (auto ok = core::validate_relative_path(path); !ok) {
            return error_response(ok.error(), 400);
        }
        if (!is_published(id)) return error_response(404, "not_found", "no release " + id);
        // The web seed is HQ's WAN link like the seeder's BitTorrent address: only a site's
        // gateways, or any peer of a site that has stopped making progress, may use it.
        const auto from = tracker::make_address(req.remote_address, 0);
        const auto access = from ? tracker_->seeder_access(id, *from, tracker::Clock::now())
                                 : tracker::SeederAccess::refused;
        if (enrolment_) {
            // With enrolment on, the web seed serves only enrolled, unrevoked devices, which
            // present their device id and web secret as HTTP Basic credentials: a stranger on the
            // LAN gets neither the swarm (TLS) nor this, even from behind an endpoint's NAT.
            const auto credentials = io::http::basic_credentials(req);
            auto valid = credentials ? enrolment_->web_secret_valid(credentials->first,
                                                                    credentials->second, now_unix())
                                     : Result<bool>(false);
            if (!valid) return error_response(valid.error(), 503);
            if (!*valid) {
                spdlog::warn(
                    "web seed {} refused to {}: {}", id, req.remote_address,
                    credentials ? "not an enrolled device's web secret" : "no device credentials");
                return error_response(403, "not_enrolled",
                                      "the web seed serves enrolled endpoints only");
            }
        }
        if (!tracker::allowed(access)) {
            const std::string site = from ? tracker_->site_of(*from) : "?";
            spdlog::debug("web seed {} refused to {} (site {}): not a gateway, site progressing",
                          id, req.remote_address, site);
            return error_response(403, "not_a_gateway",
                                  "site " + site +
                                      ": the web seed serves only the site's gateway peers, or "
                                      "every peer once the site has made no progress for " +
                                      std::to_string(options_.site_stall.count()) + "s");
        }
        const auto range = req.headers.find("range");
        return io::http::file_response(paths_.payload_dir(id) / path,
                                       range == req.headers.end() ? nullptr : &range->second);
    }

    io::http::Response announce(const io::http::Request& req) {
        // Trackers answer failures with 200 and a bencoded reason (BEP 3).
        io::http::Response res = io::http::text_response(200, "");
        res.content_type = "text/plain";
        auto a = tracker::parse_announce(req.raw_query, req.remote_address);
        if (!a) {
            res.body = tracker::bencode_failure(a.error().message);
            return res;
        }
        ++counters_.tracker_requests;
        auto reply = tracker_->announce(*a, tracker::Clock::now());
        // Peers of an SSL torrent announce their SSL listen port; the seeder's own entry must
        // be its SSL port too (its plain port refuses SSL torrents).
        if (reply && ssl_port_ != 0 && ssl_torrents_.contains(a->info_hash)) {
            for (auto& p : reply->peers) {
                if (p.peer_id.empty() && p.address == tracker_->seeder())
                    p.address.port = ssl_port_;
            }
        }
        res.body = reply ? tracker::bencode_reply(*reply, a->compact)
                         : tracker::bencode_failure(reply.error().message);
        if (reply && spdlog::should_log(spdlog::level::debug)) log_answer(*a, *reply);
        return res;
    }

    // One line per answer, naming every address handed out (tests check that no site ever
    // gets another's).
    void log_answer(const tracker::Announce& a, const tracker::Reply& reply) const {
        std::string peers;
        for (const auto& p : reply.peers) {
            if (!peers.empty()) peers += ' ';
            peers += p.address.v6 ? "[" + tracker::ip_to_string(p.address) + "]"
                                  : tracker::ip_to_string(p.address);
            peers += ':' + std::to_string(p.address.port);
        }
        const std::string* id = tracker_->release_id(a.info_hash);
        spdlog::debug("tracker: answered {}:{} site {}{}{} release {}: peers [{}]",
                      tracker::ip_to_string(a.address), a.address.port, reply.site,
                      reply.gateway ? " gateway" : "", reply.site_stalled ? " stalled" : "",
                      id ? *id : "?", peers);
    }

    // POST /v1/enroll: a first enrolment (signed by a token) or a renewal (device key only).
    io::http::Response post_enroll(const io::http::Request& req) {
        if (!enrolment_ || !ca_) {
            return error_response(404, "not_found",
                                  "enrolment is off: the repository has no fleet CA (ca init)");
        }
        auto request = parse_enrolment(req.body);
        if (!request) {
            spdlog::warn("enrolment from {} refused: {}", req.remote_address,
                         request.error().message);
            return error_response(request.error(), report_status_for(request.error().code));
        }
        const char* what = request->token_key ? "enrolment" : "renewal";
        const std::int64_t now = now_unix();
        if (request->sent_at < now - kEnrolmentClockSkew ||
            request->sent_at > now + kEnrolmentClockSkew) {
            return error_response(400, "expired",
                                  std::string(what) + " sent_at is more than " +
                                      std::to_string(kEnrolmentClockSkew) +
                                      "s from the seeder's clock");
        }
        const auto refuse = [&](const Error& e) {
            spdlog::warn("{} of {} ({}) from {} refused: {}", what, request->device_id.substr(0, 8),
                         request->hostname, req.remote_address, e.message);
            return error_response(e, report_status_for(e.code));
        };
        // Refusals first, before a certificate is signed or fleet.db locked: anyone can sign a
        // "renewal" with a key of their own.
        if (auto ok = enrolment_->check(*request, now); !ok) return refuse(ok.error());
        // Issued before the token is spent, so a bad key costs no use of it.
        auto cert = io::x509::issue(*ca_, request->tls_public_key, request->device_id,
                                    options_.cert_lifetime.count());
        if (!cert) {
            spdlog::warn("{} from {} refused: {}", what, req.remote_address, cert.error().message);
            return error_response(400, "malformed", "tls_public_key: " + cert.error().message);
        }
        auto info = io::x509::inspect(*cert);
        if (!info) return error_response(info.error(), 500);
        // A fresh web seed secret with every certificate: one that leaked stops working at the
        // next renewal, and a revoked device's goes at once.
        const std::string web_secret = crypto::to_hex(crypto::random_bytes(kWebSecretBytes));
        const Grant grant{crypto::sha256_hex(crypto::as_bytes(web_secret)), info->not_after};
        if (auto ok = enrolment_->grant(*request, req.remote_address, grant, now); !ok) {
            return refuse(ok.error());
        }
        spdlog::info("endpoint {} ({}) {} from {}: certificate until {}",
                     request->device_id.substr(0, 8), request->hostname,
                     request->token_key ? "enrolled" : "renewed", req.remote_address,
                     core::format_utc(info->not_after));
        const nlohmann::json body = {
            {"certificate", *cert}, {"ca", ca_->cert_pem}, {"web_secret", web_secret}};
        return io::http::json_response(200, body.dump());
    }

    io::http::Response post_report(const io::http::Request& req) {
        auto report = parse_report(req.body);
        if (!report) ++counters_.reports_refused;
        if (!report) {
            spdlog::warn("report from {} refused: {}", req.remote_address, report.error().message);
            return error_response(report.error(), report_status_for(report.error().code));
        }
        if (enrolment_) {
            auto enrolled = enrolment_->is_enrolled(report->device_id, report->device_key);
            if (!enrolled) return error_response(enrolled.error(), 503);
            if (!*enrolled) {
                ++counters_.reports_refused;
                spdlog::warn("report from {} ({}) refused: device not enrolled",
                             report->device_id.substr(0, 8), req.remote_address);
                return error_response(403, "not_enrolled",
                                      "device " + report->device_id +
                                          " is not enrolled (patchswarmd enroll --token)");
            }
        }
        auto outcome = db_->apply_report(*report, req.remote_address, now_unix());
        if (!outcome) {
            ++counters_.reports_refused;
            spdlog::warn("report from {} ({}) refused: {}", report->device_id.substr(0, 8),
                         req.remote_address, outcome.error().message);
            return error_response(outcome.error(), report_status_for(outcome.error().code));
        }
        ++counters_.reports_accepted;
        log_outcome(*report, *outcome, req.remote_address);
        return io::http::json_response(200, R"({"ok":true})");
    }

    static void log_outcome(const Report& report, const ReportOutcome& outcome,
                            const std::string& remote) {
        const std::string who = report.device_id.substr(0, 8) + " (" + report.hostname + ")";
        if (outcome.new_device) spdlog::info("endpoint {} joined from {}", who, remote);
        for (const auto& c : outcome.changes) {
            spdlog::info("endpoint {} release {}: {} -> {}", who, c.release_id,
                         c.from ? core::to_string(*c.from) : std::string_view("new"),
                         core::to_string(c.to));
        }
    }

    // The page is static: it reads /v1/status itself, so it shows no more than that does.
    static io::http::Response get_dashboard() {
        io::http::Response res = io::http::text_response(200, std::string(dashboard_html()));
        res.content_type = "text/html; charset=utf-8";
        res.headers["Cache-Control"] = "no-store";
        res.headers["Content-Security-Policy"] = std::string(kDashboardCsp);
        res.headers["X-Content-Type-Options"] = "nosniff";
        res.headers["Referrer-Policy"] = "no-referrer";
        return res;
    }

    io::http::Response get_status() {
        auto status =
            collect_status(paths_, db_.get(), now_unix(), &sites_, options_.stale_after.count());
        if (!status) return error_response(status.error(), 500);
        return io::http::json_response(200, status_json(*status));
    }

    io::http::Response get_metrics() {
        auto status =
            collect_status(paths_, db_.get(), now_unix(), &sites_, options_.stale_after.count());
        if (!status) return error_response(status.error(), 500);
        auto snapshot = db_->snapshot();
        if (!snapshot) return error_response(snapshot.error(), 500);
        std::vector<std::int64_t> last_seen;
        for (const auto& e : snapshot->endpoints) last_seen.push_back(e.last_seen);
        io::http::Response res =
            io::http::text_response(200, render_metrics(*status, counters_, last_seen));
        res.content_type = std::string(kMetricsContentType);
        return res;
    }

    asio::io_context& io_;
    ServeOptions options_;
    RepoPaths paths_;
    RepoInfo info_;
    core::SiteMap sites_;
    std::unique_ptr<FleetDb> db_;
    FeedService feed_;
    std::optional<tracker::PeerTable> tracker_;  // needs the bound BitTorrent port
    std::unique_ptr<io::swarm::Session> session_;
    asio::steady_timer tick_timer_;
    std::uint64_t root_version_ = 0;
    std::optional<io::x509::KeyAndCert> ca_;  // set: enrolment required
    std::int64_t own_cert_renew_at_ = 0;
    std::unique_ptr<EnrolmentDb> enrolment_;  // set iff ca_
    std::set<std::string> ssl_torrents_;      // announce hashes of SSL torrents
    std::uint16_t ssl_port_ = 0;
    std::uint64_t refused_root_ = 0;  // last root version whose feed key is missing (logged once)
    FileStamp roots_stamp_;
    FileStamp index_stamp_;
    struct ReleasePolicy {
        std::int64_t created = 0;
        std::optional<core::Rollout> rollout;
    };
    std::vector<core::FeedEntry> releases_;          // as listed in index.json
    std::vector<core::FeedEntry> feed_entries_;      // releases_ with open_rings: the feed
    std::vector<std::string> halted_;                // active halts of listed releases: the feed
    std::map<std::string, ReleasePolicy> rollouts_;  // id -> the served manifest's rollout
    ServeCounters counters_;
    std::map<std::string, std::string> seeding_;  // id → manifest hash added to the swarm
    bool stopping_ = false;
    const std::string admin_token_;
    core::RateLimiter limiter_;
    std::unique_ptr<io::http::Server> http_;  // last: stopped and destroyed first
};

// Everything `serve` needs from the repository, checked before anything is started.
struct RepoForServe {
    RepoInfo info;
    crypto::KeyPair feed_key;
    std::uint64_t root_version = 0;
};

RepoForServe open_repo(const RepoPaths& paths) {
    auto info = load_repo_info(paths);
    if (!info) {
        throw std::runtime_error(info.error().code == Errc::not_found
                                     ? paths.root().string() +
                                           " is not an initialised repository: publish a release "
                                           "into it first"
                                     : info.error().message);
    }
    auto root = load_current_root(paths);
    if (!root) throw std::runtime_error(root.error().message);
    auto key = feed_key_for(paths, root->doc);
    if (!key) throw std::runtime_error(key.error().message);
    warn_if_root_expires_soon(root->doc);
    return {std::move(*info), *key, root->version};
}

}  // namespace

void serve(const ServeOptions& options) {
    if (options.feed_expiry < kMinFeedExpiry || options.feed_expiry > kMaxFeedExpiry) {
        throw std::invalid_argument("--feed-expiry must be 60..604800 seconds");
    }
    if (options.gateways > kMaxGateways) {
        throw std::invalid_argument("--gateways must be 0.." + std::to_string(kMaxGateways));
    }
    if (options.site_stall.count() < 1) throw std::invalid_argument("--site-stall must be >= 1");
    if (options.stale_after.count() < 1) throw std::invalid_argument("--stale-after must be >= 1");
    if (options.cert_lifetime < kMinCertLifetime || options.cert_lifetime > kMaxCertLifetime) {
        throw std::invalid_argument("--cert-lifetime must be 20..31536000 seconds");
    }
    if (options.site_upload_limit < 0) {
        throw std::invalid_argument("--site-upload-limit must not be negative");
    }
    auto sites = core::SiteMap::parse(options.sites);
    if (!sites) throw std::invalid_argument("--site: " + sites.error().message);
    if (options.site_upload_limit > 0 && sites->sites().size() > io::swarm::kMaxPeerClasses) {
        // One libtorrent peer class per site, and a peer-class filter has only so many bits.
        throw std::invalid_argument("--site-upload-limit supports at most " +
                                    std::to_string(io::swarm::kMaxPeerClasses) + " sites");
    }
    const RepoPaths paths(options.repo);
    auto repo = open_repo(paths);
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
            info && info->not_after - now_unix() < kRootExpiryWarning) {
            spdlog::warn("the fleet CA ({}) expires {}: endpoint certificates cannot outlive it",
                         fleet_ca_cert(paths).string(), core::format_utc(info->not_after));
        }
        auto edb = EnrolmentDb::open(paths.fleet_db());
        if (!edb) throw std::runtime_error("fleet.db: " + edb.error().message);
        enrolment = std::move(*edb);
    }

    asio::io_context io;
    Seeder seeder(io, options, std::move(repo.info), repo.feed_key, repo.root_version,
                  std::move(*db), std::move(*sites), std::move(*admin_token), std::move(*ca),
                  std::move(enrolment));
    seeder.start();
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code& ec, int) {
        if (!ec) seeder.shutdown();
    });
    io.run();
    spdlog::info("stopped");
}

}  // namespace patchswarm::seeder
