#include "daemon/agent.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <thread>

#include "core/envelope.hpp"
#include "core/feed.hpp"
#include "core/manifest.hpp"
#include "core/rollout.hpp"
#include "core/state_machine.hpp"
#include "core/trust.hpp"
#include "crypto/crypto.hpp"
#include "daemon/endpoint_store.hpp"
#include "daemon/enrol.hpp"
#include "daemon/payload_stager.hpp"
#include "daemon/relay.hpp"
#include "io/fs.hpp"
#include "io/http/client.hpp"
#include "io/key_files.hpp"
#include "io/process.hpp"
#include "io/swarm/session.hpp"
#include "io/x509.hpp"
#include "io/zoneinfo.hpp"

namespace patchswarm::daemon {
namespace asio = boost::asio;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::size_t kMaxTorrentBytes = 64 << 20;
constexpr std::size_t kMaxOutputStored = 8 * 1024;

std::int64_t now_unix() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string host_of(const std::string& host_port) {
    const auto colon = host_port.rfind(':');
    return colon == std::string::npos ? host_port : host_port.substr(0, colon);
}

// bt_ssl_listen, or bt_listen's host with the next port.
std::string ssl_listen_of(const AgentConfig& cfg) {
    if (!cfg.bt_ssl_listen.empty()) return cfg.bt_ssl_listen;
    const auto colon = cfg.bt_listen.rfind(':');
    if (colon == std::string::npos) return {};
    int port = 0;
    try {
        port = std::stoi(cfg.bt_listen.substr(colon + 1));
    } catch (const std::exception&) {
        return {};
    }
    return cfg.bt_listen.substr(0, colon) + ":" +
           std::to_string(port <= 0 || port >= 65535 ? 0 : port + 1);
}

// Host part of "http://host:port/..." for counting bytes from the seeder.
std::string url_host(const std::string& url) {
    std::string rest = url;
    if (auto p = rest.find("://"); p != std::string::npos) rest = rest.substr(p + 3);
    rest = rest.substr(0, rest.find('/'));
    return host_of(rest);
}

std::string tail(const std::string& s, std::size_t n) {
    return s.size() <= n ? s : s.substr(s.size() - n);
}

std::string read_boot_id(const fs::path& file) {
    auto content = io::read_file(file, 4096);
    if (!content) return {};
    std::string id = *content;
    while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
    return id;
}

}  // namespace

// One release as the agent holds it in memory.
struct Live {
    StoredRelease stored;
    core::Manifest manifest;
    core::ReleaseFacts facts;
    bool in_session = false;
    bool fetching_torrent = false;
    bool worker_running = false;         // a hash/install/verify thread is out
    std::int64_t web_seed_added_at = 0;  // 0: never; re-added while there is still no progress
    std::string web_seed_url;            // as added (with credentials)
    std::uint64_t base_from_peers = 0;   // counters from earlier runs of the agent
    std::uint64_t base_from_seeder = 0;
    std::uint64_t base_from_lan = 0;
    std::uint64_t base_from_wan = 0;
    std::uint64_t last_done = 0;
    std::int64_t last_progress_at = 0;
    std::optional<std::int64_t> deferred_until;  // from state.db, refreshed every tick
};

// What the last accepted feed says about staged rollouts: which rings are open, what is halted.
struct FeedPolicy {
    std::map<std::string, std::optional<std::uint32_t>> open_rings;  // release id -> open rings
    std::set<std::string> halted;
};

struct Agent::Impl : std::enable_shared_from_this<Agent::Impl> {
    asio::io_context& io;
    AgentConfig cfg;
    std::unique_ptr<EndpointStore> store;
    std::unique_ptr<io::swarm::Session> session;
    std::unique_ptr<Relay> relay;
    crypto::KeyPair device_key{};
    std::string device_id;
    core::RootDocument root;  // the newest verified root
    core::TrustRoot trust;    // its release and feed keys
    core::FeedMemory feed_memory;
    // The time of the current update cycle, read once when it starts: the root, the feed and the
    // manifests it admits are all judged against the same instant (TUF's "fixed update start
    // time"), so an expiry cannot slip between two checks of one cycle.
    std::int64_t cycle_now = 0;
    core::RetryPolicy retry;
    std::map<std::string, Live> releases;
    FeedPolicy feed_policy;
    io::ZoneInfo zones;
    std::set<std::string> manifests_in_flight;  // manifest sha256 being fetched
    std::size_t seeder_index = 0;
    bool report_scheduled = false;
    bool stopping = false;
    int ticks_since_resume_save = 0;
    std::string bind_address;
    std::optional<TlsIdentity> tls;  // set when enrolled (possibly expired: renewal fixes it)
    bool renewal_in_flight = false;
    std::int64_t next_renewal_try = 0;
    asio::steady_timer tick_timer;
    asio::steady_timer heartbeat_timer;
    asio::steady_timer poll_retry_timer;
    asio::steady_timer report_timer;
    std::chrono::seconds poll_backoff{1};

    Impl(asio::io_context& io_, AgentConfig c)
        : io(io_),
          cfg(std::move(c)),
          zones(cfg.zoneinfo_dir),
          tick_timer(io_),
          heartbeat_timer(io_),
          poll_retry_timer(io_),
          report_timer(io_) {}

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
        load_root();
        if (cfg.name.empty()) {
            char buf[256] = {};
            ::gethostname(buf, sizeof buf - 1);
            cfg.name = buf;
        }
        const std::string host = host_of(cfg.bt_listen);
        if (host != "0.0.0.0" && host != "::" && !host.empty()) bind_address = host;
        retry.max_attempts = static_cast<std::uint32_t>(cfg.max_attempts);
        retry.backoff_base_s = cfg.backoff_base_s;
        load_feed_memory();
        // An expired or damaged certificate must not stop the agent: it keeps reporting and
        // following the feed, and says why it cannot join SSL swarms (re-enrol to fix).
        if (auto identity = load_tls_identity(cfg.state_dir); identity) {
            tls = std::move(*identity);
        } else {
            spdlog::error("enrolment unusable, re-enrol: {}", identity.error().message);
        }
        if (!tls) spdlog::info("not enrolled: SSL torrents of an enrolled fleet get no peers");
        if (tls && tls->not_after <= now_unix()) {
            spdlog::warn("TLS certificate expired {}: renewing it with the device key",
                         core::format_utc(tls->not_after));
        }
        open_session();
        load_releases();
        if (!cfg.relay_listen.empty()) start_relay();
    }

    void load_device_key() {
        const fs::path base = cfg.state_dir / "device";
        if (!fs::exists(base.string() + ".key")) {
            auto ok = io::write_keypair(base, crypto::generate_keypair());
            if (!ok) throw std::runtime_error("cannot create device key: " + ok.error().message);
            spdlog::info("created device key {}.key", base.string());
        }
        auto kp = io::load_secret_key(base.string() + ".key");
        if (!kp) throw std::runtime_error("device key: " + kp.error().message);
        device_key = *kp;
        device_id = core::device_id_for(device_key.public_key);
    }

    // The pinned root, or the newest root an earlier run verified, whichever is newer: the
    // root version never goes back, even if the pinned file is reinstalled.
    void load_root() {
        auto pinned_text = io::read_file(cfg.trust_root, core::kMaxRootEnvelopeBytes);
        if (!pinned_text) {
            throw std::runtime_error("--trust " + cfg.trust_root.string() + ": " +
                                     pinned_text.error().message);
        }
        auto pinned = core::verify_pinned_root(*pinned_text);
        if (!pinned) {
            // The most likely mistake is the issue 2 setup: a release .pub file.
            throw std::runtime_error("--trust " + cfg.trust_root.string() +
                                     " is not a valid signed root document (the repository's "
                                     "root/1.json, from `patchswarm-seeder root init`): " +
                                     pinned.error().message);
        }
        auto stored = store->load_roots();
        if (!stored) throw std::runtime_error("state.db: " + stored.error().message);
        std::optional<core::RootDocument> newest_stored;
        if (!stored->empty()) {
            // Verified when it was stored; checked again so a damaged row is noticed.
            auto newest = core::verify_pinned_root(stored->back().envelope);
            if (!newest) {
                throw std::runtime_error("state.db: stored root version " +
                                         std::to_string(stored->back().version) + ": " +
                                         newest.error().message);
            }
            newest_stored = std::move(*newest);
        }
        root = newest_stored ? core::newest_root(*pinned, *newest_stored) : *pinned;
        if (!newest_stored || pinned->version > newest_stored->version) {
            // A newer pinned root (a reinstall) takes over; its feed keys may differ.
            const bool rotated = newest_stored && core::feed_keys_rotated(*newest_stored, *pinned);
            if (auto ok = store->save_root(pinned->version, *pinned_text, rotated); !ok) {
                throw std::runtime_error("state.db: " + ok.error().message);
            }
        }
        trust = core::trust_of(root);
        spdlog::info("trusting root version {} (expires {}): release {} of {} keys, feed {} key(s)",
                     root.version, root.expires, root.release.threshold, root.release.keyids.size(),
                     root.feed.keyids.size());
    }

    void load_feed_memory() {
        auto seq = store->get_meta("feed_sequence");
        auto digest = store->get_meta("feed_sha256");
        if (seq && *seq && !(*seq)->empty()) feed_memory.sequence = std::stoull(**seq);
        if (digest && *digest) feed_memory.payload_sha256 = **digest;
        // The feed was verified when it was stored; its halts and open rings hold across a
        // restart even while the seeder is unreachable.
        if (auto stored = store->get_meta("feed"); stored && *stored) {
            if (auto env = core::parse_envelope(**stored, core::kMaxFeedBytes * 2)) {
                auto feed = core::parse_feed(std::string_view(
                    reinterpret_cast<const char*>(env->payload.data()), env->payload.size()));
                if (feed) set_feed_policy(*feed);
            }
        }
    }

    void set_feed_policy(const core::Feed& feed) {
        FeedPolicy p;
        for (const auto& e : feed.releases) p.open_rings[e.id] = e.open_rings;
        p.halted.insert(feed.halted.begin(), feed.halted.end());
        for (const auto& id : p.halted) {
            if (!feed_policy.halted.contains(id)) spdlog::warn("{}: release halted by HQ", id);
        }
        feed_policy = std::move(p);
    }

    void open_session() {
        io::swarm::Settings s;
        s.listen = cfg.bt_listen;
        s.resume_dir = cfg.state_dir / "resume";
        s.enable_lsd = cfg.lsd;
        s.download_rate_limit = cfg.download_limit;
        s.upload_rate_limit = cfg.upload_limit;
        // Only HQ (the first --seeder) counts as "the seeder"; relays are peers like any other.
        s.seeder_addresses.push_back(url_host(cfg.seeders.front()));
        s.site_ranges = cfg.site_ranges;
        if (tls) {
            s.ssl_listen = ssl_listen_of(cfg);
            s.ssl_certificate = tls->cert_pem;
            s.ssl_private_key = tls->key_pem;
        }
        if (cfg.wan_limit > 0) {
            // Everything outside the site is WAN, capped each way; the site's own ranges are
            // uncapped and always unchoked, as libtorrent's "local" class would have them.
            if (cfg.site_ranges.empty()) {
                spdlog::warn("--wan-limit without --site-ranges: every peer is capped");
            }
            s.peer_classes.push_back(
                {"wan", {"0.0.0.0/0", "::/0"}, cfg.wan_limit, cfg.wan_limit, false});
            if (!cfg.site_ranges.empty()) {
                s.peer_classes.push_back({"lan", cfg.site_ranges, 0, 0, true});
            }
        }
        io::swarm::Callbacks cb;
        cb.on_finished = [this](const std::string& id) {
            dispatch(id, core::ev::DownloadComplete{});
        };
        cb.on_error = [](const std::string& id, const std::string& msg) {
            spdlog::warn("{}: swarm error: {}", id, msg);
        };
        cb.on_hash_fail = [](const std::string& id, const std::vector<std::string>& from) {
            std::string peers;
            for (const auto& p : from) peers += (peers.empty() ? "" : ",") + p;
            spdlog::warn("{}: a piece failed its hash check (from {}); refetching", id,
                         peers.empty() ? "unknown peers" : peers);
        };
        auto created = io::swarm::Session::create(io, std::move(s), std::move(cb));
        if (!created) throw std::runtime_error("swarm: " + created.error().message);
        session = std::move(*created);
    }

    void load_releases() {
        auto rows = store->load_releases();
        if (!rows) throw std::runtime_error("state.db: " + rows.error().message);
        for (auto& row : *rows) {
            auto env = core::parse_envelope(row.manifest_envelope, core::kMaxManifestBytes * 2);
            if (!env) continue;
            auto m = core::parse_manifest(std::string_view(
                reinterpret_cast<const char*>(env->payload.data()), env->payload.size()));
            if (!m) {
                spdlog::error("{}: stored manifest unreadable: {}", row.record.id,
                              m.error().message);
                continue;
            }
            Live live;
            live.manifest = std::move(*m);
            live.facts = facts_of(live.manifest);
            live.base_from_peers = row.bytes_from_peers;
            live.base_from_seeder = row.bytes_from_seeder;
            live.base_from_lan = row.bytes_from_lan;
            live.base_from_wan = row.bytes_from_wan;
            live.last_progress_at = now_unix();
            live.stored = std::move(row);
            const std::string id = live.stored.record.id;
            releases.emplace(id, std::move(live));
        }
    }

    void start() {
        for (auto& [id, live] : releases) {
            spdlog::info("{}: resuming in state {}", id, core::to_string(live.stored.record.state));
            // Every release with a torrent keeps seeding for its site, whatever its state.
            if (!live.stored.torrent.empty() && live.stored.record.state != core::State::rejected &&
                live.stored.record.state != core::State::announced &&
                live.stored.record.state != core::State::downloading) {
                add_to_session(live);
            }
            dispatch(id, core::ev::Resumed{});
        }
        poll_feed();
        schedule_tick();
        schedule_heartbeat();
        spdlog::info("patchswarmd {} started: device {}, seeder {}, swarm on {}", cfg.name,
                     device_id, cfg.seeders.front(), cfg.bt_listen);
    }

    // ---- feed --------------------------------------------------------------------------------
    const std::string& seeder() const { return cfg.seeders[seeder_index % cfg.seeders.size()]; }

    void next_seeder_later(const std::string& why) {
        spdlog::warn("seeder {}: {}; retrying in {}s", seeder(), why, poll_backoff.count());
        seeder_index++;
        poll_retry_timer.expires_after(poll_backoff);
        poll_backoff = std::min(poll_backoff * 2, std::chrono::seconds(30));
        poll_retry_timer.async_wait([this](const boost::system::error_code& ec) {
            if (!ec && !stopping) poll_feed();
        });
    }

    io::http::ClientRequest get(const std::string& path, std::size_t max_bytes,
                                std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
        io::http::ClientRequest r;
        r.url = seeder() + path;
        r.max_response_bytes = max_bytes;
        r.timeout = timeout;
        r.local_address = bind_address;
        return r;
    }

    // One update cycle: walk the root versions after ours (TUF 5.3), check the newest for
    // freeze, then long-poll the feed with the keys it names.
    void poll_feed() {
        if (stopping) return;
        cycle_now = now_unix();
        fetch_root(root.version + 1, 0);
    }

    void fetch_root(std::uint64_t version, std::size_t fetched) {
        if (fetched >= core::kMaxRootUpdatesPerCycle) return finish_root_update();
        io::http::request(
            io, get(core::root_route(version), core::kMaxRootEnvelopeBytes),
            [this, version, fetched](Result<io::http::ClientResponse> r) {
                if (stopping) return;
                if (!r) return next_seeder_later(r.error().message);
                if (r->status == 404) return finish_root_update();  // no newer root
                if (r->status != 200) {
                    return next_seeder_later("root: HTTP " + std::to_string(r->status));
                }
                if (!accept_root(r->body)) return next_seeder_later("untrusted root");
                fetch_root(version + 1, fetched + 1);
            });
    }

    bool accept_root(const std::string& body) {
        auto next = core::verify_next_root(body, root);
        if (!next) {
            spdlog::error("root version {} refused: {} ({})", root.version + 1,
                          next.error().message, to_string(next.error().code));
            return false;
        }
        const bool rotated = core::feed_keys_rotated(root, *next);
        if (auto ok = store->save_root(next->version, body, rotated); !ok) {
            spdlog::error("cannot persist root version {}: {}", next->version, ok.error().message);
            return false;
        }
        if (rotated) {
            // Fast-forward recovery: the old feed key's sequence numbers mean nothing now.
            feed_memory = core::feed_memory_after_root_update(root, *next, feed_memory);
            spdlog::warn("root version {} rotated the feed keys: feed state dropped",
                         next->version);
        }
        spdlog::info("root version {} accepted (expires {})", next->version, next->expires);
        if (relay) relay->set_root(next->version, body);
        root = std::move(*next);
        trust = core::trust_of(root);
        return true;
    }

    void finish_root_update() {
        if (auto fresh = core::check_root_fresh(root, cycle_now); !fresh) {
            spdlog::error("freeze: {}", fresh.error().message);
            return next_seeder_later("root expired");
        }
        request_feed();
    }

    void request_feed() {
        auto req = get("/v1/feed?after=" + std::to_string(feed_memory.sequence) +
                           "&wait=" + std::to_string(cfg.poll_wait_s),
                       core::kMaxFeedBytes * 2, std::chrono::seconds(cfg.poll_wait_s + 15));
        const auto started = std::chrono::steady_clock::now();
        io::http::request(io, std::move(req), [this, started](Result<io::http::ClientResponse> r) {
            if (stopping) return;
            if (!r) return next_seeder_later(r.error().message);
            if (r->status != 200)
                return next_seeder_later("feed: HTTP " + std::to_string(r->status));
            // A relay (or an old seeder) answers at once instead of holding the poll: then pace
            // the next poll instead of spinning.
            const bool quick = std::chrono::steady_clock::now() - started < std::chrono::seconds(1);
            on_feed(r->body, quick);
        });
    }

    void on_feed(const std::string& body, bool answered_quickly) {
        core::FeedMemory accepted;
        auto feed = core::verify_feed(body, trust.feed, cycle_now, feed_memory, &accepted);
        if (!feed) {
            // A feed key rotation shows up as a new root in the next cycle, not here.
            spdlog::error("feed rejected: {} ({})", feed.error().message,
                          to_string(feed.error().code));
            return next_seeder_later("bad feed");
        }
        poll_backoff = std::chrono::seconds(1);
        const bool is_new = accepted.sequence != feed_memory.sequence;
        if (is_new) {
            spdlog::info("feed {} accepted: {} release(s)", accepted.sequence,
                         feed->releases.size());
            feed_memory = accepted;
            (void)store->set_meta("feed_sequence", std::to_string(accepted.sequence));
            (void)store->set_meta("feed_sha256", accepted.payload_sha256);
            (void)store->set_meta("feed", body);
            if (relay) relay->set_feed(body, accepted.sequence);
            set_feed_policy(*feed);
        }
        for (const auto& entry : feed->releases) consider(entry);
        if (!is_new && answered_quickly) {
            poll_retry_timer.expires_after(std::chrono::seconds(3));
            poll_retry_timer.async_wait([this](const boost::system::error_code& ec) {
                if (!ec && !stopping) poll_feed();
            });
        } else {
            asio::post(io, [this] { poll_feed(); });
        }
    }

    void consider(const core::FeedEntry& entry) {
        if (auto it = releases.find(entry.id); it != releases.end()) {
            if (it->second.stored.manifest_sha256 == entry.manifest_sha256) return;
            if (it->second.worker_running) return;  // replace after the running step
        }
        if (manifests_in_flight.contains(entry.manifest_sha256)) return;
        if (auto rej = store->is_rejected(entry.manifest_sha256); rej && *rej) return;
        manifests_in_flight.insert(entry.manifest_sha256);
        io::http::request(
            io, get("/v1/releases/" + entry.id + "/manifest", core::kMaxManifestBytes * 2),
            [this, entry, now = cycle_now](Result<io::http::ClientResponse> r) {
                manifests_in_flight.erase(entry.manifest_sha256);
                if (stopping) return;
                if (!r || r->status != 200) {
                    spdlog::warn("{}: manifest fetch failed: {}", entry.id,
                                 r ? "HTTP " + std::to_string(r->status) : r.error().message);
                    return;  // the next feed answer tries again
                }
                on_manifest(entry, r->body, now);
            });
    }

    // `now` is the clock reading of the update cycle whose feed announced the manifest.
    void on_manifest(const core::FeedEntry& entry, const std::string& body, std::int64_t now) {
        std::optional<std::uint64_t> previous;
        if (auto it = releases.find(entry.id); it != releases.end())
            previous = it->second.stored.sequence;
        auto m = core::verify_manifest(body, entry, trust, now, previous);
        if (!m) {
            spdlog::error("{}: manifest rejected: {}", entry.id, m.error().message);
            // A hash mismatch may be a race with a re-publish: try again with the next feed.
            if (m.error().code != Errc::hash_mismatch) {
                (void)store->add_rejected(
                    {entry.manifest_sha256, entry.id, m.error().message, now_unix()});
                schedule_report();
            }
            return;
        }
        if (previous && m->sequence == *previous) return;
        if (auto it = releases.find(entry.id); it != releases.end()) {
            spdlog::info("{}: replaced by sequence {}", entry.id, m->sequence);
            if (it->second.in_session) session->remove(entry.id);
            std::error_code ec;
            fs::remove_all(release_dir(entry.id), ec);
            fs::remove(cfg.state_dir / "resume" / (entry.id + ".resume"), ec);
            releases.erase(it);
        }
        Live live;
        live.manifest = std::move(*m);
        live.facts = facts_of(live.manifest);
        live.last_progress_at = now_unix();
        auto& rec = live.stored.record;
        rec.id = entry.id;
        rec.state = core::State::announced;
        rec.entered_at = now_unix();
        live.stored.manifest_sha256 = entry.manifest_sha256;
        live.stored.manifest_envelope = body;
        live.stored.sequence = live.manifest.sequence;
        live.stored.bytes_total = live.manifest.total_size();
        if (auto ok = store->save_release(live.stored); !ok) {
            spdlog::error("{}: cannot persist manifest: {}", entry.id, ok.error().message);
            return;
        }
        spdlog::info("{}: release announced (sequence {}, {} file(s), {} bytes, severity {})",
                     entry.id, live.manifest.sequence, live.manifest.files.size(),
                     live.manifest.total_size(), core::to_string(live.manifest.severity));
        releases.emplace(entry.id, std::move(live));
        if (relay) relay->set_manifest(entry.id, body);
        dispatch(entry.id, core::ev::Announced{});
    }

    static core::ReleaseFacts facts_of(const core::Manifest& m) {
        core::ReleaseFacts f;
        f.reboot_required = m.reboot == core::RebootPolicy::required;
        f.reboot_if_3010 = m.reboot != core::RebootPolicy::none;
        f.has_verify = m.verify.has_value();
        return f;
    }

    fs::path release_dir(const std::string& id) const { return cfg.state_dir / "releases" / id; }

    // ---- state machine -----------------------------------------------------------------------
    void dispatch(const std::string& id, const core::Event& event) {
        auto it = releases.find(id);
        if (it == releases.end()) return;
        Live& live = it->second;
        auto step = core::on_event(live.stored.record, live.facts, event, now_unix(), retry);
        if (step.changed) {
            // Persist before acting: a crash after this line resumes in the new state.
            if (auto ok = store->save_record(step.record); !ok) {
                spdlog::error("{}: cannot persist state: {}; not acting", id, ok.error().message);
                return;
            }
            if (step.record.state != live.stored.record.state) {
                log_transition(live.stored.record, step.record);
                asio::post(io, [this, id] { tick_one(id); });
            }
            live.stored.record = step.record;
        }
        for (const auto& c : step.commands) execute(live, c);
    }

    static void log_transition(const core::ReleaseRecord& from, const core::ReleaseRecord& to) {
        if (to.state == core::State::failed) {
            spdlog::warn("{}: {} -> failed (attempt {}): {}", to.id, core::to_string(from.state),
                         to.attempts, to.reason);
        } else {
            spdlog::info("{}: {} -> {}{}{}", to.id, core::to_string(from.state),
                         core::to_string(to.state), to.reason.empty() ? "" : ": ", to.reason);
        }
    }

    void reject(Live& live, const std::string& reason) {
        auto& rec = live.stored.record;
        spdlog::error("{}: rejected: {}", rec.id, reason);
        rec.state = core::State::rejected;
        rec.reason = reason;
        rec.entered_at = now_unix();
        (void)store->save_record(rec);
        if (live.in_session) session->remove(rec.id);
        live.in_session = false;
        schedule_report();
    }

    void execute(Live& live, const core::Command& c) {
        std::visit(
            [&](const auto& cmd) {
                using T = std::decay_t<decltype(cmd)>;
                if constexpr (std::is_same_v<T, core::cmd::StartDownload>) {
                    start_download(live, false);
                } else if constexpr (std::is_same_v<T, core::cmd::Redownload>) {
                    start_download(live, true);
                } else if constexpr (std::is_same_v<T, core::cmd::VerifyPayload>) {
                    verify_payload(live);
                } else if constexpr (std::is_same_v<T, core::cmd::RunInstall>) {
                    run_command(live, live.manifest.install, true);
                } else if constexpr (std::is_same_v<T, core::cmd::RunVerify>) {
                    if (live.manifest.verify) run_command(live, *live.manifest.verify, false);
                } else if constexpr (std::is_same_v<T, core::cmd::SendReport>) {
                    schedule_report();
                } else if constexpr (std::is_same_v<T, core::cmd::RunReboot>) {
                    run_reboot(live);
                }
            },
            c);
    }

    void start_download(Live& live, bool recheck) {
        const std::string id = live.stored.record.id;
        if (live.stored.torrent.empty()) return fetch_torrent(id);
        if (!live.in_session) {
            if (!add_to_session(live)) return;
        } else if (recheck) {
            session->force_recheck(id);
        }
        dispatch(id, core::ev::DownloadStarted{});
    }

    bool add_to_session(Live& live) {
        const std::string id = live.stored.record.id;
        io::swarm::AddParams p;
        p.id = id;
        p.torrent = live.stored.torrent;
        p.save_path = release_dir(id) / "download";
        for (const auto& s : cfg.seeders) p.trackers.push_back(s + "/announce");
        std::error_code ec;
        fs::create_directories(p.save_path, ec);
        auto ok = session->add(std::move(p));
        if (!ok && ok.error().code != Errc::already_exists) {
            spdlog::error("{}: cannot join the swarm: {}", id, ok.error().message);
            return false;
        }
        live.in_session = true;
        live.last_progress_at = now_unix();
        return true;
    }

    void fetch_torrent(const std::string& id) {
        Live& live = releases.at(id);
        if (live.fetching_torrent) return;
        live.fetching_torrent = true;
        io::http::request(
            io, get("/v1/releases/" + id + "/torrent", kMaxTorrentBytes),
            [this, id](Result<io::http::ClientResponse> r) {
                auto it = releases.find(id);
                if (it == releases.end() || stopping) return;
                it->second.fetching_torrent = false;
                if (!r || r->status != 200) {
                    const std::string why =
                        r ? "HTTP " + std::to_string(r->status) : r.error().message;
                    return dispatch(
                        id, core::ev::PayloadVerified{false, "torrent fetch failed: " + why});
                }
                on_torrent(it->second, std::vector<std::uint8_t>(r->body.begin(), r->body.end()));
            });
    }

    void on_torrent(Live& live, std::vector<std::uint8_t> bytes) {
        const std::string id = live.stored.record.id;
        auto summary = io::swarm::inspect_torrent(bytes);
        if (!summary) return reject(live, "torrent: " + summary.error().message);
        core::TorrentFacts facts{summary->infohash_v2, summary->name, {}};
        for (const auto& f : summary->files) facts.files.emplace_back(f.path, f.size);
        if (auto ok = core::check_torrent_matches(live.manifest, facts); !ok) {
            return reject(live, "torrent: " + ok.error().message);
        }
        if (auto ok = store->save_torrent(id, bytes); !ok) {
            spdlog::error("{}: cannot persist torrent: {}", id, ok.error().message);
            return;
        }
        live.stored.torrent = std::move(bytes);
        if (relay) relay->set_torrent(id, live.stored.torrent);
        start_download(live, false);
    }

    // Hashing and installs block; they run on a worker thread and post the event back. The
    // worker captures only values, and the result is dispatched by id, so a replaced or removed
    // release simply ignores it.
    template <typename Work>
    void run_worker(Live& live, Work work) {
        live.worker_running = true;
        const std::string id = live.stored.record.id;
        std::thread([this, id, work = std::move(work)]() mutable {
            core::Event ev = work();
            asio::post(io, [this, id, ev = std::move(ev)] {
                if (auto it = releases.find(id); it != releases.end())
                    it->second.worker_running = false;
                dispatch(id, ev);
            });
        }).detach();
    }

    void verify_payload(Live& live) {
        if (live.worker_running) return;
        const std::string id = live.stored.record.id;
        spdlog::info("{}: download complete; verifying every byte against the manifest", id);
        refresh_progress(live, now_unix());
        run_worker(
            live,
            [m = live.manifest, dl = release_dir(id) / "download",
             inst = release_dir(id) / "install"]() -> core::Event {
                auto ok = stage_payload(m, dl, inst);
                return core::ev::PayloadVerified{ok.has_value(), ok ? "" : ok.error().message};
            });
        session->save_resume_data();
    }

    void run_command(Live& live, const core::CommandLine& command, bool is_install) {
        if (live.worker_running) return;
        const std::string id = live.stored.record.id;
        io::ProcessSpec spec;
        spec.argv = command.argv;
        spec.cwd = release_dir(id) / "install";
        spec.timeout = std::chrono::seconds(command.timeout_s);
        spec.extra_env = {{"PATCHSWARM_RELEASE_ID", id},
                          {"PATCHSWARM_STATE_DIR", fs::absolute(cfg.state_dir).string()}};
        spdlog::info("{}: running {} ({})", id, is_install ? "install" : "verify", command.argv[0]);
        run_worker(
            live, [this, id, spec, is_install, boot_file = cfg.boot_id_file]() -> core::Event {
                auto r = io::run_process(spec);
                std::string out = r ? r->output : r.error().message;
                asio::post(io, [this, id, out] {
                    (void)store->save_output(id, tail(out, kMaxOutputStored));
                });
                if (is_install) {
                    core::ev::InstallFinished ev;
                    ev.exit_code = r ? r->exit_code : 127;
                    ev.timed_out = r && r->timed_out;
                    ev.output_tail = tail(out, 1000);
                    ev.boot_id = read_boot_id(boot_file);
                    return ev;
                }
                const bool ok = r && !r->timed_out && r->exit_code == 0;
                return core::ev::VerifyFinished{
                    ok,
                    ok ? ""
                       : (r ? "verify exited " + std::to_string(r->exit_code) : r.error().message) +
                             ": " + tail(out, 500)};
            });
    }

    // The reboot command runs detached from the release's worker slot: it may never return (the
    // machine goes down), and the state machine learns of the reboot from the boot id, not from
    // the command's exit.
    void run_reboot(Live& live) {
        const std::string id = live.stored.record.id;
        if (cfg.reboot_command.empty()) return;
        io::ProcessSpec spec;
        spec.argv = cfg.reboot_command;
        spec.cwd = cfg.state_dir;
        spec.timeout = std::chrono::seconds(300);
        spec.extra_env = {{"PATCHSWARM_RELEASE_ID", id},
                          {"PATCHSWARM_STATE_DIR", cfg.state_dir.string()}};
        spdlog::warn("{}: reboot required and allowed now: running {}", id, spec.argv[0]);
        std::thread([spec, id] {
            auto r = io::run_process(spec);
            if (!r) {
                spdlog::error("{}: reboot command failed to start: {}", id, r.error().message);
            } else if (r->exit_code != 0 || r->timed_out) {
                spdlog::error("{}: reboot command exited {}{}: {}", id, r->exit_code,
                              r->timed_out ? " (timed out)" : "", tail(r->output, 500));
            }
        }).detach();
    }

    // ---- timers ------------------------------------------------------------------------------
    void tick_one(const std::string& id) { tick_release(id, read_boot_id(cfg.boot_id_file)); }

    // The rollout policy's verdict for one release now, as a Tick for the state machine.
    core::ev::Tick policy_tick(Live& live, const std::string& boot_id, std::int64_t now) {
        const std::string& id = live.stored.record.id;
        if (auto d = store->deferral(id); d) live.deferred_until = *d;
        std::optional<std::uint32_t> open_rings;
        if (auto it = feed_policy.open_rings.find(id); it != feed_policy.open_rings.end()) {
            open_rings = it->second;
        }
        const auto verdict =
            core::endpoint_verdict(live.manifest.rollout ? &*live.manifest.rollout : nullptr,
                                   zones.offset_fn(), open_rings, feed_policy.halted.contains(id),
                                   live.deferred_until, now, device_id, cfg.groups);
        core::ev::Tick t;
        t.boot_id = boot_id;
        t.install_allowed = verdict.install.allowed;
        t.wait_reason = verdict.install.wait_reason;
        if (!verdict.reboot.allowed) {
            const std::string& why = verdict.reboot.wait_reason;
            t.reboot_wait_reason = why.starts_with("reboot") ? why : "reboot waits: " + why;
        } else if (cfg.reboot_command.empty()) {
            // The default never reboots a machine: it records the need and waits for a person.
            t.reboot_wait_reason =
                verdict.reboot.by_deadline
                    ? "reboot required: deadline passed, no reboot command configured"
                    : "reboot required: no reboot command configured";
        } else {
            t.reboot_allowed = true;
        }
        return t;
    }

    void tick_release(const std::string& id, const std::string& boot_id) {
        auto it = releases.find(id);
        if (it == releases.end()) return;
        dispatch(id, policy_tick(it->second, boot_id, now_unix()));
    }

    void schedule_tick() {
        tick_timer.expires_after(std::chrono::seconds(1));
        tick_timer.async_wait([this](const boost::system::error_code& ec) {
            if (ec || stopping) return;
            const std::string boot = read_boot_id(cfg.boot_id_file);
            std::vector<std::string> ids;
            for (const auto& [id, live] : releases) ids.push_back(id);
            for (const auto& id : ids) tick_release(id, boot);
            update_progress();
            maybe_renew_certificate(now_unix());
            schedule_tick();
        });
    }

    // Pulls byte counters from the swarm into the record (and state.db when they moved).
    void refresh_progress(Live& live, std::int64_t now) {
        const std::string& id = live.stored.record.id;
        auto st = live.in_session ? session->status(id) : std::nullopt;
        if (!st) return;
        const std::uint64_t peers = live.base_from_peers + st->bytes_from_peers;
        const std::uint64_t seed = live.base_from_seeder + st->bytes_from_seeder;
        const std::uint64_t lan = live.base_from_lan + st->bytes_from_lan;
        const std::uint64_t wan = live.base_from_wan + st->bytes_from_outside_site;
        if (st->total_done == live.stored.bytes_done && peers == live.stored.bytes_from_peers &&
            seed == live.stored.bytes_from_seeder && lan == live.stored.bytes_from_lan &&
            wan == live.stored.bytes_from_wan) {
            return;
        }
        spdlog::debug("{}: {} of {} bytes; {} from peers, {} from the seeder, {} peers connected",
                      id, st->total_done, live.manifest.total_size(), peers, seed, st->num_peers);
        live.stored.bytes_done = st->total_done;
        live.stored.bytes_from_peers = peers;
        live.stored.bytes_from_seeder = seed;
        live.stored.bytes_from_lan = lan;
        live.stored.bytes_from_wan = wan;
        live.last_progress_at = now;
        (void)store->save_progress(
            id, {st->total_done, live.manifest.total_size(), peers, seed, lan, wan});
    }

    void update_progress() {
        const std::int64_t now = now_unix();
        bool any_downloading = false;
        for (auto& [id, live] : releases) {
            refresh_progress(live, now);
            if (!live.in_session || live.stored.record.state != core::State::downloading) continue;
            any_downloading = true;
            // Fallback: when the swarm gives nothing for a while, fetch from the seeder's web seed.
            // Again after every further quiet period: the seeder refuses peers that are not their
            // site's gateway until the site stalls, and libtorrent gives up on a refused web seed.
            const std::int64_t quiet_since =
                std::max(live.last_progress_at, live.web_seed_added_at);
            if (now - quiet_since >= cfg.webseed_after_s) {
                // The first --seeder is HQ by convention; relays do not serve payload bytes.
                const std::string url = cfg.seeders.front() + "/v1/payload/" + id + "/";
                spdlog::warn("{}: no progress for {}s; adding web seed {}", id, cfg.webseed_after_s,
                             url);
                // After a renewal the credentials differ: the old URL would only collect 403s.
                const std::string with_credentials = with_web_credentials(url);
                if (!live.web_seed_url.empty() && live.web_seed_url != with_credentials) {
                    session->remove_web_seed(id, live.web_seed_url);
                }
                session->add_web_seed(id, with_credentials);
                live.web_seed_url = with_credentials;
                live.web_seed_added_at = now;
            }
        }
        // Resume data every ~10 s while downloading: a kill -9 loses at most that much progress.
        if (any_downloading && ++ticks_since_resume_save >= 10) {
            ticks_since_resume_save = 0;
            session->save_resume_data();
        }
    }

    // An enrolled fleet's web seed wants the device id and web secret as Basic credentials,
    // which libtorrent takes from the URL's user-info part.
    std::string with_web_credentials(const std::string& url) const {
        if (!tls || tls->web_secret.empty()) return url;
        const auto scheme_end = url.find("://");
        if (scheme_end == std::string::npos) return url;
        return url.substr(0, scheme_end + 3) + device_id + ":" + tls->web_secret + "@" +
               url.substr(scheme_end + 3);
    }

    // ---- certificate renewal -----------------------------------------------------------------
    // Half way through its life the endpoint certificate is renewed with the device key (no
    // token). A revoked device is refused and drops out of the SSL swarm when it expires.
    void maybe_renew_certificate(std::int64_t now) {
        if (!tls || renewal_in_flight) return;
        // Enrolled before web secrets (and long certificates): renew now to get both.
        const std::int64_t due = tls->web_secret.empty() ? 0 : renew_at(*tls);
        if (now < std::max(due, next_renewal_try)) return;
        EnrolOptions o;
        o.state_dir = cfg.state_dir;
        o.seeder = cfg.seeders.front();
        o.hostname = cfg.name;
        o.local_address = bind_address;
        auto req = enrolment_request(o);
        const std::int64_t lifetime =
            tls->not_after - (tls->not_before + io::x509::kBackdateSeconds);
        const std::int64_t retry_s = std::clamp<std::int64_t>(lifetime / 10, 5, 300);
        if (!req) {
            spdlog::error("certificate renewal: {}", req.error().message);
            next_renewal_try = now + retry_s;
            return;
        }
        renewal_in_flight = true;
        io::http::request(
            io, std::move(*req), [this, o, retry_s](Result<io::http::ClientResponse> r) {
                renewal_in_flight = false;
                if (stopping) return;
                auto id = accept_enrolment(o, r);
                if (!id) {
                    // Revoked or unknown: asking every few seconds changes nothing, the admin does.
                    const bool refused = id.error().code == Errc::permission;
                    spdlog::log(refused ? spdlog::level::err : spdlog::level::warn,
                                "certificate renewal failed (certificate valid until {}): {}",
                                core::format_utc(tls->not_after), id.error().message);
                    next_renewal_try =
                        now_unix() + (refused ? std::max<std::int64_t>(retry_s, 300) : retry_s);
                    return;
                }
                tls = std::move(*id);
                session->set_ssl_identity(tls->cert_pem, tls->key_pem);
                spdlog::info("renewed TLS certificate, valid until {}",
                             core::format_utc(tls->not_after));
            });
    }

    void schedule_heartbeat() {
        heartbeat_timer.expires_after(std::chrono::seconds(cfg.heartbeat_s));
        heartbeat_timer.async_wait([this](const boost::system::error_code& ec) {
            if (ec || stopping) return;
            send_report();
            schedule_heartbeat();
        });
    }

    // ---- reports -----------------------------------------------------------------------------
    // State changes come in bursts; one report a fraction of a second later carries them all.
    void schedule_report() {
        if (report_scheduled || stopping) return;
        report_scheduled = true;
        report_timer.expires_after(std::chrono::milliseconds(200));
        report_timer.async_wait([this](const boost::system::error_code& ec) {
            report_scheduled = false;
            if (!ec && !stopping) send_report();
        });
    }

    json release_json(const Live& live) const {
        const auto& r = live.stored;
        const double total = static_cast<double>(live.manifest.total_size());
        json j = {{"id", r.record.id},
                  {"manifest_sha256", r.manifest_sha256},
                  {"state", core::to_string(r.record.state)},
                  {"entered_at", r.record.entered_at},
                  {"progress", total > 0 ? static_cast<double>(r.bytes_done) / total : 1.0},
                  {"bytes_from_peers", r.bytes_from_peers},
                  {"bytes_from_seeder", r.bytes_from_seeder},
                  {"bytes_from_lan", r.bytes_from_lan},
                  {"bytes_from_wan", r.bytes_from_wan},
                  {"attempts", r.record.attempts},
                  {"reason", r.record.reason}};
        if (r.record.state == core::State::failed) {
            // The seeder's auto-halt counts install and verify failures, not download trouble.
            j["failed_phase"] = core::to_string(r.record.failed_phase);
        }
        if (live.deferred_until && *live.deferred_until > now_unix()) {
            j["deferred_until"] = *live.deferred_until;
        }
        return j;
    }

    void send_report() {
        std::uint64_t counter = 0;
        if (auto c = store->get_meta("report_counter"); c && *c) counter = std::stoull(**c);
        ++counter;
        // The counter is persisted before use, so a restart never reuses one (replay defence).
        if (!store->set_meta("report_counter", std::to_string(counter))) return;
        json rel = json::array();
        for (const auto& [id, live] : releases) rel.push_back(release_json(live));
        if (auto rejected = store->load_rejected()) {
            for (const auto& r : *rejected) {
                if (releases.contains(r.id)) continue;
                rel.push_back({{"id", r.id},
                               {"manifest_sha256", r.manifest_sha256},
                               {"state", "rejected"},
                               {"entered_at", r.at},
                               {"progress", 0.0},
                               {"bytes_from_peers", 0},
                               {"bytes_from_seeder", 0},
                               {"attempts", 0},
                               {"reason", r.reason}});
            }
        }
        json report = {{"format", 1},
                       {"device_id", device_id},
                       {"device_key", crypto::to_hex(device_key.public_key)},
                       {"hostname", cfg.name},
                       {"sent_at", now_unix()},
                       {"counter", counter},
                       {"boot_id", read_boot_id(cfg.boot_id_file)},
                       {"groups", cfg.groups},
                       {"releases", rel}};
        const std::string payload = report.dump();
        const crypto::KeyPair keys[] = {device_key};
        auto env = core::sign_envelope(core::payload_type::report, crypto::as_bytes(payload), keys);
        io::http::ClientRequest req = get("/v1/report", 64 * 1024);
        req.method = "POST";
        req.body = core::serialize_envelope(env);
        io::http::request(io, std::move(req), [this](Result<io::http::ClientResponse> r) {
            if (!r) {
                spdlog::debug("report not delivered: {}", r.error().message);
            } else if (r->status != 200) {
                spdlog::warn("report refused: HTTP {} {}", r->status, tail(r->body, 200));
            }
        });
    }

    // ---- relay -------------------------------------------------------------------------------
    void start_relay() {
        relay = std::make_unique<Relay>(io);
        auto port = relay->listen(cfg.relay_listen);
        if (!port) throw std::runtime_error("relay: " + port.error().message);
        if (auto roots = store->load_roots()) {
            for (auto& r : *roots) relay->set_root(r.version, std::move(r.envelope));
        }
        if (auto f = store->get_meta("feed"); f && *f) relay->set_feed(**f, feed_memory.sequence);
        for (const auto& [id, live] : releases) {
            relay->set_manifest(id, live.stored.manifest_envelope);
            if (!live.stored.torrent.empty()) relay->set_torrent(id, live.stored.torrent);
        }
        spdlog::info("relay serving signed metadata on {}", cfg.relay_listen);
    }

    void shutdown() {
        if (stopping) return;
        stopping = true;
        spdlog::info("stopping: saving resume data");
        tick_timer.cancel();
        heartbeat_timer.cancel();
        poll_retry_timer.cancel();
        report_timer.cancel();
        update_progress();
        if (session) session->save_resume_data_and_wait(std::chrono::seconds(5));
        if (relay) relay->stop();
        io.stop();
    }
};

Agent::Agent(asio::io_context& io, AgentConfig config)
    : impl_(std::make_shared<Impl>(io, std::move(config))) {
    if (impl_->cfg.seeders.empty()) throw std::runtime_error("no --seeder URL given");
    impl_->open();
}

Agent::~Agent() = default;

void Agent::start() {
    impl_->start();
}
void Agent::shutdown() {
    impl_->shutdown();
}

}  // namespace patchswarm::daemon
