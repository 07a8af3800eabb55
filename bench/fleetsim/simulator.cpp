// The fleet simulator (simulator.hpp). Each simulated endpoint is a small state object driven by
// the completions of its HTTP exchanges (io::http::request, the agent's own client) and three
// one-shot timers; the protocol decisions are the agent's: core::update_root, core::verify_feed
// and core::verify_manifest judge what the seeder sent, daemon::make_enrolment and
// daemon::sign_report build what the endpoint sends.
#include "simulator.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "bencode_peek.hpp"
#include "core/enrol_token.hpp"
#include "core/feed.hpp"
#include "core/manifest.hpp"
#include "core/root.hpp"
#include "core/trust.hpp"
#include "crypto/crypto.hpp"
#include "daemon/enrol.hpp"
#include "daemon/reporter.hpp"
#include "io/fs.hpp"
#include "io/http/client.hpp"
#include "io/process.hpp"
#include "io/sqlite.hpp"
#include "io/x509.hpp"
#include "proc_sample.hpp"
#include "stats.hpp"

namespace patchswarm::fleetsim {

// The i-th source address after `base`, skipping .0 and .255 in the last octet.
std::string source_address_for(const std::string& base, int i) {
    unsigned a = 0, b = 0, c = 0, d = 0;
    char tail = 0;
    if (std::sscanf(base.c_str(), "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) != 4 || a != 127 ||
        b > 255 || c > 255 || d > 254 || d == 0) {
        throw std::runtime_error("--source-base must be a 127.x.y.z address (z in 1..254)");
    }
    std::uint32_t host = (b << 16) | (c << 8) | d;
    for (int k = 0; k < i; ++k) {
        ++host;
        if ((host & 0xff) == 255) host += 2;  // .255 and the next .0
    }
    if (host > 0xfffffe) throw std::runtime_error("too many endpoints for 127.0.0.0/8");
    return "127." + std::to_string((host >> 16) & 0xff) + "." + std::to_string((host >> 8) & 0xff) +
           "." + std::to_string(host & 0xff);
}

namespace {

namespace net = boost::asio;
using json = nlohmann::json;
using Steady = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

std::int64_t wall_ms() {
    return std::chrono::duration_cast<milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}
std::int64_t wall_s() {
    return wall_ms() / 1000;
}

std::string url_escape_bytes(const crypto::Bytes& bytes) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (const auto b : bytes) {
        if (std::isalnum(b) || b == '-' || b == '_' || b == '.' || b == '~') {
            out.push_back(static_cast<char>(b));
        } else {
            out.push_back('%');
            out.push_back(hex[b >> 4]);
            out.push_back(hex[b & 15]);
        }
    }
    return out;
}

// Retry-After in seconds (1..60), or nullopt.
std::optional<int> retry_after(const io::http::ClientResponse& r) {
    const auto it = r.headers.find("retry-after");
    if (it == r.headers.end()) return std::nullopt;
    int v = 0;
    const auto* first = it->second.data();
    const auto [p, ec] = std::from_chars(first, first + it->second.size(), v);
    if (ec != std::errc() || v < 0) return std::nullopt;
    return std::clamp(v, 1, 60);
}

struct Held {
    core::FeedEntry entry;
    std::uint64_t total_size = 0;
    crypto::Bytes info_hash;  // first 20 bytes of the v2 info-hash (BEP 52 tracker key)
    std::string state = "downloading";
    std::int64_t entered_at = 0;
    std::string ok_state;  // the state the last report that got 200 carried
    bool seed_announced = false;
};

struct Endpoint {
    int index = 0;
    std::string address;
    crypto::KeyPair device{};
    daemon::ReporterIdentity identity;
    std::string boot_id;
    std::string peer_id;  // 20 bytes for the tracker
    // enrolment
    bool enrolled = false;
    bool enrol_failed = false;
    int enrol_attempts = 0;
    std::string enrol_error;
    std::string tls_key;
    // update cycle
    core::RootDocument root;
    core::TrustRoot trust;
    core::FeedMemory feed;
    std::int64_t cycle_now = 0;
    seconds backoff{1};
    bool started = false;
    bool holding = false;  // a long-poll for the current sequence is in flight
    bool first_feed = false;
    std::vector<std::pair<std::uint64_t, std::int64_t>> feeds_seen;  // sequence, wall ms
    std::int64_t last_feed_ok_sent_ms = 0;  // when the request of the last 200 feed was sent
    std::int64_t last_feed_ok_ms = 0;
    // reports
    std::uint64_t counter = 0;
    std::uint64_t max_ok_counter = 0;
    bool report_in_flight = false;
    bool report_pending = false;
    bool report_scheduled = false;
    std::uint32_t reports_sent = 0, reports_ok = 0, reports_failed = 0, reports_retried = 0;
    std::int64_t last_report_ok_sent_ms = 0;
    std::int64_t last_report_ok_ms = 0;
    std::int64_t first_release_report_ok_ms = 0;  // first 200 for a report carrying a release
    // everything else
    std::uint32_t network_errors = 0, retries = 0;
    std::map<int, std::uint32_t> http_status;  // non-200 answers by status
    std::uint32_t announces_ok = 0, announces_failed = 0;
    std::int64_t manifest_ms = 0;  // wall ms the first manifest verified
    std::vector<Held> releases;
    std::set<std::string> manifests_in_flight;
    std::size_t storm_next = 0;
    std::unique_ptr<net::steady_timer> poll_timer, report_timer, heartbeat_timer, tracker_timer,
        storm_timer;
};

struct PhaseResult {
    std::string name;
    json doc = json::object();
};

class Simulator {
  public:
    explicit Simulator(const Options& o) : o_(o), rng_(std::random_device{}()) {}

    int run() {
        load_trust();
        make_endpoints();
        started_ms_ = wall_ms();
        sample_seeder("start");
        arm_sampler();
        if (o_.probe_interval_ms > 0) arm_probe();
        if (!o_.token.empty()) {
            enrol_all([this] { start_cycles(); });
        } else {
            start_cycles();
        }
        io_.run();
        if (hook_thread_.joinable()) hook_thread_.join();
        return exit_code_;
    }

  private:
    // ---- set-up --------------------------------------------------------------------------

    void load_trust() {
        auto text = io::read_file(o_.trust, core::kMaxRootEnvelopeBytes);
        if (!text) throw std::runtime_error("--trust: " + text.error().message);
        auto root = core::verify_pinned_root(*text);
        if (!root) throw std::runtime_error("--trust: " + root.error().message);
        pinned_ = *root;
    }

    void make_endpoints() {
        endpoints_.reserve(static_cast<std::size_t>(o_.endpoints));
        for (int i = 0; i < o_.endpoints; ++i) {
            auto e = std::make_unique<Endpoint>();
            e->index = i;
            e->address = source_address_for(o_.source_base, i);
            e->device = crypto::generate_keypair();
            e->identity.device_key = e->device;
            e->identity.device_id = core::device_id_for(e->device.public_key);
            e->identity.hostname = "sim-" + std::to_string(i);
            e->identity.groups = {"sim"};
            e->boot_id = "sim-boot-" + e->identity.device_id.substr(0, 8);
            e->peer_id = "-PS0001-" + e->identity.device_id.substr(0, 12);
            e->root = pinned_;
            e->trust = core::trust_of(pinned_);
            e->poll_timer = std::make_unique<net::steady_timer>(io_);
            e->report_timer = std::make_unique<net::steady_timer>(io_);
            e->heartbeat_timer = std::make_unique<net::steady_timer>(io_);
            e->tracker_timer = std::make_unique<net::steady_timer>(io_);
            e->storm_timer = std::make_unique<net::steady_timer>(io_);
            endpoints_.push_back(std::move(e));
        }
    }

    io::http::ClientRequest get(const Endpoint& e, const std::string& path, std::size_t max_bytes,
                                milliseconds timeout = seconds(20)) const {
        io::http::ClientRequest r;
        r.url = o_.seeder + path;
        r.max_response_bytes = max_bytes;
        r.timeout = timeout;
        r.local_address = e.address;
        return r;
    }

    // A non-200 answer by status; what the endpoint itself refused (a bad signature, a stale
    // root) under status 0; network errors and timeouts apart.
    void count_error(Endpoint& e, const Result<io::http::ClientResponse>& r) {
        if (!r) {
            if (r.error().code == Errc::network || r.error().code == Errc::too_large) {
                ++e.network_errors;
            } else {
                ++e.http_status[0];
            }
        } else {
            ++e.http_status[r->status];
        }
    }

    // ---- enrolment (POST /v1/enroll, daemon::make_enrolment) -------------------------------

    void enrol_all(std::function<void()> then) {
        auto token_key = core::enrol_token_key(o_.token);
        if (!token_key) throw std::runtime_error("--token: " + token_key.error().message);
        token_key_ = *token_key;
        enrol_then_ = std::move(then);
        enrol_started_ms_ = wall_ms();
        for (int k = 0; k < std::max(1, o_.enrol_concurrency); ++k) enrol_next();
    }

    void enrol_next() {
        if (next_enrol_ >= endpoints_.size()) {
            if (enrol_active_ == 0 && enrol_then_) {
                enrol_done_ms_ = wall_ms();
                auto then = std::move(enrol_then_);
                enrol_then_ = nullptr;
                then();
            }
            return;
        }
        Endpoint& e = *endpoints_[next_enrol_++];
        ++enrol_active_;
        auto key = io::x509::generate_key();
        auto pub =
            key ? io::x509::public_key_of(*key) : Result<std::string>(fail(Errc::internal, ""));
        if (!key || !pub) {
            e.enrol_failed = true;
            e.enrol_error = "cannot make a TLS key";
            --enrol_active_;
            return enrol_next();
        }
        e.tls_key = *key;
        send_enrolment(e, *pub, milliseconds(200));
    }

    void send_enrolment(Endpoint& e, std::string tls_pub, milliseconds delay) {
        ++e.enrol_attempts;
        io::http::ClientRequest req;
        req.method = "POST";
        req.url = o_.seeder + "/v1/enroll";
        req.local_address = e.address;
        req.max_response_bytes = daemon::kMaxEnrolmentAnswerBytes;
        // A fresh sent_at per attempt: the seeder refuses one not newer than the last.
        req.body =
            daemon::make_enrolment(e.device, tls_pub, &token_key_, e.identity.hostname, wall_s());
        io::http::request(
            io_, std::move(req),
            [this, &e, tls_pub = std::move(tls_pub), delay](Result<io::http::ClientResponse> r) {
                const bool retry = !r || r->status >= 500 || r->status == 429;
                if (retry && !stopping_) {
                    count_error(e, r);
                    ++e.retries;
                    milliseconds wait = delay;
                    if (r) {
                        if (auto ra = retry_after(*r)) wait = seconds(*ra);
                    }
                    auto& t = *e.poll_timer;
                    t.expires_after(jittered(wait));
                    t.async_wait([this, &e, tls_pub, delay](boost::system::error_code ec) {
                        if (!ec)
                            send_enrolment(e, tls_pub, std::min(delay * 2, milliseconds(5000)));
                    });
                    return;
                }
                finish_enrolment(e, r);
                --enrol_active_;
                enrol_next();
            });
    }

    void finish_enrolment(Endpoint& e, const Result<io::http::ClientResponse>& r) {
        if (!r || r->status != 200) {
            count_error(e, r);
            e.enrol_failed = true;
            e.enrol_error = !r ? r.error().message : "HTTP " + std::to_string(r->status);
            return;
        }
        const auto doc = json::parse(r->body, nullptr, false);
        if (!doc.is_object() || !doc.contains("certificate") || !doc["certificate"].is_string() ||
            !doc.contains("ca") || !doc["ca"].is_string()) {
            e.enrol_failed = true;
            e.enrol_error = "malformed answer";
            return;
        }
        // The agent's checks (daemon::accept_enrolment) without its files: a certificate for
        // our TLS key and device id, signed by the CA it names.
        const std::string cert = doc["certificate"].get<std::string>();
        auto ok = io::x509::check(cert, doc["ca"].get<std::string>(), e.tls_key, wall_s());
        auto info = io::x509::inspect(cert);
        if (!ok || !info || info->common_name != e.identity.device_id) {
            e.enrol_failed = true;
            e.enrol_error = !ok ? ok.error().message : "certificate not for this device";
            return;
        }
        e.enrolled = true;
        e.tls_key.clear();
        e.tls_key.shrink_to_fit();
        ++enrolled_;
    }

    // ---- the update cycle (daemon/update_cycle.cpp, per endpoint) -------------------------

    void start_cycles() {
        cycles_started_ms_ = wall_ms();
        ramp_next();
        wait_for([this] { return all_holding(); }, seconds(o_.phase_timeout_s + o_.endpoints / 200),
                 [this](bool ok) {
                     ready_ms_ = wall_ms();
                     ready_ok_ = ok;
                     if (!ok) std::cerr << "fleetsim: not every endpoint holds a long-poll\n";
                     next_phase();
                 });
    }

    void ramp_next() {
        const auto batch = static_cast<std::size_t>(std::max(1.0, o_.ramp_per_s / 20));
        for (std::size_t k = 0; k < batch && next_cycle_ < endpoints_.size(); ++k) {
            Endpoint& e = *endpoints_[next_cycle_++];
            if (!o_.token.empty() && !e.enrolled) continue;
            e.started = true;
            ++active_;
            poll(e);
            arm_heartbeat(e, milliseconds(std::uniform_int_distribution<int>(
                                 0, std::max(1, o_.heartbeat_s * 1000))(rng_)));
        }
        if (next_cycle_ < endpoints_.size()) {
            ramp_timer_.expires_after(milliseconds(50));
            ramp_timer_.async_wait([this](boost::system::error_code ec) {
                if (!ec) ramp_next();
            });
        }
    }

    bool all_holding() const {
        if (next_cycle_ < endpoints_.size()) return false;
        for (const auto& e : endpoints_) {
            if (e->started && !e->holding) return false;
        }
        return true;
    }

    milliseconds jittered(milliseconds d) {
        if (o_.retry_jitter <= 0) return d;
        std::uniform_real_distribution<double> u(1 - o_.retry_jitter, 1 + o_.retry_jitter);
        return milliseconds(static_cast<std::int64_t>(static_cast<double>(d.count()) * u(rng_)));
    }

    void retry_later(Endpoint& e, const Result<io::http::ClientResponse>& r) {
        e.holding = false;
        count_error(e, r);
        ++e.retries;
        milliseconds wait = e.backoff;
        if (r) {
            if (auto ra = retry_after(*r)) wait = seconds(*ra);
        }
        poll_after(e, jittered(wait));
        e.backoff = std::min(e.backoff * 2, seconds(30));
    }

    void poll_after(Endpoint& e, milliseconds delay) {
        e.poll_timer->expires_after(delay);
        e.poll_timer->async_wait([this, &e](boost::system::error_code ec) {
            if (!ec) poll(e);
        });
    }

    void poll(Endpoint& e) {
        if (stopping_) return;
        e.cycle_now = wall_s();
        fetch_root(e, e.root.version + 1, std::make_shared<std::vector<std::string>>());
    }

    void fetch_root(Endpoint& e, std::uint64_t version,
                    std::shared_ptr<std::vector<std::string>> envelopes) {
        if (envelopes->size() >= core::kMaxRootUpdatesPerCycle) {
            if (walk(e, *envelopes)) request_feed(e);
            return;
        }
        io::http::request(io_, get(e, core::root_route(version), core::kMaxRootEnvelopeBytes),
                          [this, &e, version, envelopes](Result<io::http::ClientResponse> r) {
                              if (stopping_) return;
                              if (r && r->status == 200) {
                                  envelopes->push_back(std::move(r->body));
                                  return fetch_root(e, version + 1, envelopes);
                              }
                              if (r && r->status == 404) {
                                  if (walk(e, *envelopes)) request_feed(e);
                                  return;
                              }
                              retry_later(e, r);
                          });
    }

    bool walk(Endpoint& e, const std::vector<std::string>& envelopes) {
        auto updated = core::update_root(e.root, envelopes, e.cycle_now);
        if (!updated) {
            retry_later(e, fail(Errc::bad_signature, updated.error().message));
            return false;
        }
        if (updated->version != e.root.version) {
            e.feed = core::feed_memory_after_root_update(e.root, *updated, e.feed);
            e.root = std::move(*updated);
            e.trust = core::trust_of(e.root);
        }
        return true;
    }

    void request_feed(Endpoint& e) {
        auto req = get(e,
                       "/v1/feed?after=" + std::to_string(e.feed.sequence) +
                           "&wait=" + std::to_string(o_.poll_wait_s),
                       core::kMaxFeedBytes * 2, seconds(o_.poll_wait_s + 15));
        const auto started = Steady::now();
        const std::int64_t sent_ms = wall_ms();
        e.holding = e.first_feed;
        io::http::request(io_, std::move(req),
                          [this, &e, started, sent_ms](Result<io::http::ClientResponse> r) {
                              const std::int64_t at = wall_ms();
                              e.holding = false;
                              if (stopping_) return;
                              if (!r || r->status != 200) return retry_later(e, r);
                              const bool quick = Steady::now() - started < seconds(1);
                              on_feed(e, r->body, quick, sent_ms, at);
                          });
    }

    // core::verify_feed, remembered per (bytes, endpoint memory, clock second, root): every
    // endpoint gets the same signed bytes, and the simulator's CPU is not what is measured.
    Result<core::Feed> verify_feed(Endpoint& e, const std::string& body,
                                   core::FeedMemory* accepted) {
        if (!o_.verify_cache) {
            return core::verify_feed(body, e.trust.feed, e.cycle_now, e.feed, accepted);
        }
        std::string key = crypto::sha256_hex(crypto::as_bytes(body));
        key += '|' + std::to_string(e.feed.sequence) + '|' + e.feed.payload_sha256 + '|' +
               std::to_string(e.cycle_now) + '|' + std::to_string(e.root.version);
        auto it = feed_cache_.find(key);
        if (it == feed_cache_.end()) {
            if (feed_cache_.size() > 256) feed_cache_.clear();
            core::FeedMemory acc;
            auto f = core::verify_feed(body, e.trust.feed, e.cycle_now, e.feed, &acc);
            it = feed_cache_.emplace(key, std::make_pair(std::move(f), acc)).first;
        }
        *accepted = it->second.second;
        return it->second.first;
    }

    void on_feed(Endpoint& e, const std::string& body, bool quick, std::int64_t sent_ms,
                 std::int64_t at) {
        core::FeedMemory accepted;
        auto feed = verify_feed(e, body, &accepted);
        if (!feed) {
            return retry_later(e, fail(Errc::bad_signature, feed.error().message));
        }
        e.last_feed_ok_sent_ms = sent_ms;
        e.last_feed_ok_ms = at;
        const bool is_new = accepted.sequence != e.feed.sequence;
        if (is_new) {
            e.feed = accepted;
            e.feeds_seen.emplace_back(accepted.sequence, at);
        }
        e.first_feed = true;
        e.backoff = seconds(1);
        for (const auto& entry : feed->releases) consider(e, entry);
        if (!is_new && quick) {
            poll_after(e, seconds(3));
        } else {
            net::post(io_, [this, &e] { poll(e); });
        }
    }

    void consider(Endpoint& e, const core::FeedEntry& entry) {
        for (const auto& h : e.releases) {
            if (h.entry.manifest_sha256 == entry.manifest_sha256) return;
        }
        if (e.manifests_in_flight.contains(entry.manifest_sha256)) return;
        e.manifests_in_flight.insert(entry.manifest_sha256);
        io::http::request(
            io_, get(e, "/v1/releases/" + entry.id + "/manifest", core::kMaxManifestBytes * 2),
            [this, &e, entry, now = e.cycle_now](Result<io::http::ClientResponse> r) {
                e.manifests_in_flight.erase(entry.manifest_sha256);
                if (stopping_) return;
                if (!r || r->status != 200) return count_error(e, r);  // the next feed retries
                on_manifest(e, entry, r->body, now);
            });
    }

    Result<core::Manifest> verify_manifest(Endpoint& e, const core::FeedEntry& entry,
                                           const std::string& body, std::int64_t now,
                                           std::optional<std::uint64_t> previous) {
        if (!o_.verify_cache) return core::verify_manifest(body, entry, e.trust, now, previous);
        std::string key = crypto::sha256_hex(crypto::as_bytes(body)) + '|' + entry.manifest_sha256 +
                          '|' + entry.id + '|' + std::to_string(entry.sequence) + '|' +
                          std::to_string(now) + '|' + std::to_string(previous.value_or(0)) + '|' +
                          std::to_string(e.root.version);
        auto it = manifest_cache_.find(key);
        if (it == manifest_cache_.end()) {
            if (manifest_cache_.size() > 256) manifest_cache_.clear();
            it = manifest_cache_
                     .emplace(key, core::verify_manifest(body, entry, e.trust, now, previous))
                     .first;
        }
        return it->second;
    }

    void on_manifest(Endpoint& e, const core::FeedEntry& entry, const std::string& body,
                     std::int64_t now) {
        std::optional<std::uint64_t> previous;
        for (const auto& h : e.releases) {
            if (h.entry.id == entry.id) previous = h.entry.sequence;
        }
        auto m = verify_manifest(e, entry, body, now, previous);
        if (!m) {
            ++e.http_status[0];
            return;
        }
        auto hash = crypto::from_hex(m->infohash_v2);
        if (!hash || hash->size() < 20) return;
        std::erase_if(e.releases, [&](const Held& h) { return h.entry.id == entry.id; });
        Held h;
        h.entry = entry;
        h.total_size = m->total_size();
        h.info_hash.assign(hash->begin(), hash->begin() + 20);
        h.entered_at = wall_s();
        e.releases.push_back(std::move(h));
        if (e.manifest_ms == 0) e.manifest_ms = wall_ms();
        // The agent joins the swarm (downloading) and reports the change, debounced by 200 ms.
        schedule_report(e);
        announce(e, e.releases.back(), "started");
    }

    // ---- reports (daemon/reporter.cpp) ------------------------------------------------------

    void schedule_report(Endpoint& e) {
        if (e.report_scheduled || stopping_) return;
        e.report_scheduled = true;
        e.report_timer->expires_after(milliseconds(200));
        e.report_timer->async_wait([this, &e](boost::system::error_code ec) {
            if (ec == net::error::operation_aborted) return;
            e.report_scheduled = false;
            send_report(e);
        });
    }

    void arm_heartbeat(Endpoint& e, milliseconds first) {
        e.heartbeat_timer->expires_after(first);
        e.heartbeat_timer->async_wait([this, &e](boost::system::error_code ec) {
            if (ec || stopping_) return;
            send_report(e);
            arm_heartbeat(e, seconds(o_.heartbeat_s));
        });
    }

    json releases_json(const Endpoint& e) const {
        json rel = json::array();
        for (const auto& h : e.releases) {
            const bool done = h.state != "downloading";
            rel.push_back({{"id", h.entry.id},
                           {"manifest_sha256", h.entry.manifest_sha256},
                           {"state", h.state},
                           {"entered_at", h.entered_at},
                           {"progress", done ? 1.0 : 0.0},
                           {"bytes_from_peers", 0},
                           {"bytes_from_seeder", 0},
                           {"bytes_from_lan", 0},
                           {"bytes_from_wan", 0},
                           {"attempts", 0},
                           {"reason", h.state == "waiting" ? "simulated wait" : ""}});
        }
        return rel;
    }

    // One report in flight per endpoint: a change while one is on its way is sent after its
    // answer, so the counters reach the seeder in order (the agent may overlap two, and the
    // second then gets 409).
    void send_report(Endpoint& e) {
        if (stopping_) return;
        if (e.report_in_flight) {
            e.report_pending = true;
            return;
        }
        e.report_in_flight = true;
        const std::uint64_t counter = ++e.counter;
        std::vector<std::pair<std::string, std::string>> states;
        for (const auto& h : e.releases) states.emplace_back(h.entry.id, h.state);
        io::http::ClientRequest req = get(e, "/v1/report", 64 * 1024);
        req.method = "POST";
        req.body = daemon::sign_report(e.identity, counter, wall_s(), e.boot_id, releases_json(e));
        ++e.reports_sent;
        ++reports_in_flight_;
        const std::int64_t sent_ms = wall_ms();
        io::http::request(
            io_, std::move(req),
            [this, &e, counter, sent_ms,
             states = std::move(states)](Result<io::http::ClientResponse> r) {
                --reports_in_flight_;
                e.report_in_flight = false;
                const std::int64_t at = wall_ms();
                if (r && r->status == 200) {
                    ++e.reports_ok;
                    e.max_ok_counter = std::max(e.max_ok_counter, counter);
                    e.last_report_ok_sent_ms = sent_ms;
                    e.last_report_ok_ms = at;
                    report_ok_times_.push_back(at);
                    if (!states.empty() && e.first_release_report_ok_ms == 0)
                        e.first_release_report_ok_ms = at;
                    for (const auto& [id, state] : states) {
                        for (auto& h : e.releases) {
                            if (h.entry.id == id) h.ok_state = state;
                        }
                    }
                } else {
                    ++e.reports_failed;
                    count_error(e, r);
                    // Back-pressure: the seeder asks for the report again later.
                    if (r && (r->status == 503 || r->status == 429)) {
                        if (auto ra = retry_after(*r); ra && !stopping_) {
                            ++e.reports_retried;
                            ++e.retries;
                            e.report_timer->expires_after(jittered(seconds(*ra)));
                            e.report_timer->async_wait([this, &e](boost::system::error_code ec) {
                                if (!ec) send_report(e);
                            });
                        }
                    }
                }
                if (e.report_pending) {
                    e.report_pending = false;
                    send_report(e);
                }
            });
    }

    // ---- tracker (GET /announce, as libtorrent announces) -----------------------------------

    void announce(Endpoint& e, Held& h, const std::string& event) {
        if (stopping_) return;
        const bool seed = h.state != "downloading";
        std::string path =
            "/announce?info_hash=" + url_escape_bytes(h.info_hash) +
            "&peer_id=" + url_escape_bytes(crypto::Bytes(e.peer_id.begin(), e.peer_id.end())) +
            "&port=6881&uploaded=0&downloaded=0&left=" + std::to_string(seed ? 0 : h.total_size) +
            "&compact=1&numwant=50";
        if (!event.empty()) path += "&event=" + event;
        const std::string id = h.entry.id;
        io::http::request(
            io_, get(e, path, 64 * 1024), [this, &e, id](Result<io::http::ClientResponse> r) {
                if (stopping_) return;
                int interval = 30;
                if (r && r->status == 200 && !bencode::has_key(r->body, "failure reason")) {
                    ++e.announces_ok;
                    interval =
                        static_cast<int>(bencode::int_value(r->body, "interval").value_or(30));
                } else {
                    ++e.announces_failed;
                    count_error(e, r);
                }
                interval = std::clamp(interval, 15, 1800);
                e.tracker_timer->expires_after(seconds(interval));
                e.tracker_timer->async_wait([this, &e, id](boost::system::error_code ec) {
                    if (ec) return;
                    for (auto& h : e.releases) {
                        if (h.entry.id == id) return announce(e, h, "");
                    }
                });
            });
    }

    // ---- phases ----------------------------------------------------------------------------

    void wait_for(std::function<bool()> pred, seconds timeout, std::function<void(bool)> then) {
        const auto deadline = Steady::now() + timeout;
        auto check = std::make_shared<std::function<void()>>();
        *check = [this, pred = std::move(pred), then = std::move(then), deadline, check] {
            if (pred()) return then(true);
            if (Steady::now() >= deadline) return then(false);
            wait_timer_.expires_after(milliseconds(100));
            wait_timer_.async_wait([check](boost::system::error_code ec) {
                if (!ec) (*check)();
            });
        };
        net::post(io_, [check] { (*check)(); });
    }

    // Runs `hook phase` on a helper thread; `then(ok, start_ms, end_ms)` on the io_context.
    void run_hook(const std::string& phase,
                  std::function<void(bool, std::int64_t, std::int64_t)> then) {
        if (o_.hook.empty()) {
            const auto now = wall_ms();
            return net::post(io_, [then, now] { then(true, now, now); });
        }
        if (hook_thread_.joinable()) hook_thread_.join();
        hook_thread_ = std::thread([this, phase, then] {
            io::ProcessSpec spec;
            spec.argv = {o_.hook.string(), phase};
            spec.timeout = seconds(o_.phase_timeout_s);
            if (const char* path = std::getenv("PATH")) spec.extra_env["PATH"] = path;
            const auto start = wall_ms();
            auto r = io::run_process(spec);
            const auto end = wall_ms();
            const bool ok = r && r->exit_code == 0;
            if (!ok) {
                std::cerr << "fleetsim: hook " << phase
                          << " failed: " << (r ? r->output : r.error().message) << "\n";
            }
            net::post(io_, [then, ok, start, end] { then(ok, start, end); });
        });
    }

    void next_phase() {
        if (phase_index_ >= o_.phases.size()) return finish();
        const std::string spec = o_.phases[phase_index_++];
        const auto colon = spec.find(':');
        const std::string name = spec.substr(0, colon);
        const std::string arg = colon == std::string::npos ? "" : spec.substr(colon + 1);
        if (name == "publish") return phase_publish();
        if (name == "storm") return phase_storm();
        if (name == "restart") return phase_restart();
        if (name == "hold") return phase_hold(arg.empty() ? 30 : std::stoi(arg));
        std::cerr << "fleetsim: unknown phase " << name << "\n";
        exit_code_ = 2;
        finish();
    }

    std::uint64_t max_sequence() const {
        std::uint64_t s = 0;
        for (const auto& e : endpoints_) s = std::max(s, e->feed.sequence);
        return s;
    }

    json begin_phase(const std::string& name) {
        phase_probe_.clear();
        phase_probe_errors_ = 0;
        report_ok_times_.clear();
        sample_seeder(name + "-start");
        return json{{"name", name}, {"seeder_before", last_sample_}};
    }

    void end_phase(json doc, bool ok) {
        sample_seeder(doc["name"].get<std::string>() + "-end");
        doc["completed"] = ok;
        doc["seeder_after"] = last_sample_;
        if (doc["seeder_before"].contains("cpu_total_s") && last_sample_.contains("cpu_total_s")) {
            doc["seeder_cpu_s"] = last_sample_["cpu_total_s"].get<double>() -
                                  doc["seeder_before"]["cpu_total_s"].get<double>();
        }
        doc["seeder_rss_max_kib"] = phase_rss_max_kib_;
        phase_rss_max_kib_ = 0;
        doc["probe_ms"] = summarize(phase_probe_);
        doc["probe_errors"] = phase_probe_errors_;
        doc["totals"] = totals();
        if (doc.contains("hold_s") && doc.contains("seeder_cpu_s") && active_ > 0) {
            doc["seeder_cpu_s_per_1000_per_min"] = doc["seeder_cpu_s"].get<double>() /
                                                   (active_ / 1000.0) /
                                                   (doc["hold_s"].get<double>() / 60.0);
        }
        if (!ok) exit_code_ = std::max(exit_code_, 1);
        std::cerr << "fleetsim: phase " << doc["name"].get<std::string>()
                  << (ok ? " done" : " timed out") << "\n";
        phases_.push_back(std::move(doc));
        next_phase();
    }

    // Publish: `hook publish` runs the real `publish`; each endpoint's time from the hook's end
    // (index.json written) to a verified feed newer than the one every endpoint held before.
    void phase_publish() {
        auto doc = begin_phase("publish");
        const std::uint64_t before = max_sequence();
        run_hook(
            "publish", [this, doc, before](bool ok, std::int64_t start, std::int64_t end) mutable {
                doc["hook_s"] = static_cast<double>(end - start) / 1000;
                doc["feed_sequence_before"] = before;
                if (!ok) return end_phase(doc, false);
                const auto told = [this, before](const Endpoint& e) {
                    return !e.started || e.feed.sequence > before;
                };
                const auto reported = [](const Endpoint& e) {
                    return !e.started || (!e.releases.empty() && e.first_release_report_ok_ms != 0);
                };
                wait_for(
                    [this, told, reported] {
                        for (const auto& e : endpoints_) {
                            if (!told(*e) || !reported(*e) || e->report_in_flight) return false;
                        }
                        return true;
                    },
                    seconds(o_.phase_timeout_s),
                    [this, doc, before, start, end](bool ok) mutable {
                        std::vector<double> told_ms, told_from_start_ms, manifest_ms, report_ms;
                        int not_told = 0;
                        for (const auto& e : endpoints_) {
                            if (!e->started) continue;
                            std::int64_t at = 0;
                            for (const auto& [seq, t] : e->feeds_seen) {
                                if (seq > before) {
                                    at = t;
                                    break;
                                }
                            }
                            if (at == 0) {
                                ++not_told;
                                continue;
                            }
                            told_ms.push_back(static_cast<double>(at - end));
                            told_from_start_ms.push_back(static_cast<double>(at - start));
                            if (e->manifest_ms) manifest_ms.push_back(double(e->manifest_ms - end));
                            if (e->first_release_report_ok_ms)
                                report_ms.push_back(double(e->first_release_report_ok_ms - end));
                        }
                        doc["told"] = told_ms.size();
                        doc["not_told"] = not_told;
                        doc["publish_to_told_ms"] = summarize(told_ms);
                        doc["publish_start_to_told_ms"] = summarize(told_from_start_ms);
                        doc["publish_to_manifest_ms"] = summarize(manifest_ms);
                        doc["publish_to_report_ok_ms"] = summarize(report_ms);
                        doc["duration_s"] = static_cast<double>(wall_ms() - end) / 1000;
                        end_phase(doc, ok);
                    });
            });
    }

    // Storm: every endpoint steps its releases through storm_states, starting at a random
    // instant within storm_spread_s, one state change (one signed report) per storm_step_ms.
    void phase_storm() {
        auto doc = begin_phase("storm");
        run_hook("storm", [this, doc](bool ok, std::int64_t, std::int64_t end) mutable {
            if (!ok) return end_phase(doc, false);
            std::uint32_t sent_before = 0, ok_before = 0, failed_before = 0;
            for (const auto& e : endpoints_) {
                sent_before += e->reports_sent;
                ok_before += e->reports_ok;
                failed_before += e->reports_failed;
            }
            storm_done_ = 0;
            storm_members_ = 0;
            for (auto& e : endpoints_) {
                if (!e->started || e->releases.empty()) continue;
                ++storm_members_;
                e->storm_next = 0;
                const int offset = std::uniform_int_distribution<int>(
                    0, std::max(0, o_.storm_spread_s * 1000))(rng_);
                arm_storm(*e, milliseconds(offset));
            }
            doc["members"] = storm_members_;
            // What the fleet asks of the seeder: the mean rate of the storm's state changes.
            doc["offered_reports_per_s"] =
                static_cast<double>(storm_members_) * static_cast<double>(o_.storm_states.size()) /
                std::max(1.0, o_.storm_spread_s +
                                  (o_.storm_states.size() - 1) * o_.storm_step_ms / 1000.0);
            wait_for(
                [this] {
                    return storm_done_ >= storm_members_ && reports_in_flight_ == 0 &&
                           !any_report_pending();
                },
                seconds(o_.phase_timeout_s + o_.storm_spread_s),
                [this, doc, end, sent_before, ok_before, failed_before](bool ok) mutable {
                    std::uint32_t sent = 0, oks = 0, failed = 0;
                    for (const auto& e : endpoints_) {
                        sent += e->reports_sent;
                        oks += e->reports_ok;
                        failed += e->reports_failed;
                    }
                    const double dur = static_cast<double>(wall_ms() - end) / 1000;
                    doc["duration_s"] = dur;
                    doc["reports_sent"] = sent - sent_before;
                    doc["reports_ok"] = oks - ok_before;
                    doc["reports_failed"] = failed - failed_before;
                    doc["reports_ok_per_s"] = dur > 0 ? (oks - ok_before) / dur : 0;
                    doc["peak_reports_ok_per_s"] = peak_rate(report_ok_times_);
                    end_phase(doc, ok);
                });
        });
    }

    static double peak_rate(const std::vector<std::int64_t>& times) {
        std::map<std::int64_t, int> per_second;
        for (const auto t : times) ++per_second[t / 1000];
        int peak = 0;
        for (const auto& [s, n] : per_second) peak = std::max(peak, n);
        return peak;
    }

    bool any_report_pending() const {
        for (const auto& e : endpoints_) {
            if (e->report_pending || e->report_scheduled) return true;
        }
        return false;
    }

    void arm_storm(Endpoint& e, milliseconds delay) {
        e.storm_timer->expires_after(delay);
        e.storm_timer->async_wait([this, &e](boost::system::error_code ec) {
            if (ec || stopping_) return;
            if (e.storm_next >= o_.storm_states.size()) {
                ++storm_done_;
                return;
            }
            const std::string& state = o_.storm_states[e.storm_next++];
            for (auto& h : e.releases) {
                h.state = state;
                h.entered_at = wall_s();
                if (state != "downloading" && !h.seed_announced) {
                    h.seed_announced = true;
                    e.tracker_timer->cancel();
                    announce(e, h, "completed");
                }
            }
            send_report(e);
            arm_storm(e, milliseconds(o_.storm_step_ms));
        });
    }

    // Restart: `hook restart` stops and restarts serve; the time from the hook's start until
    // every endpoint had a feed answered and a report accepted, both asked for after it.
    void phase_restart() {
        auto doc = begin_phase("restart");
        const std::int64_t t0 = wall_ms();
        run_hook("restart", [this, doc, t0](bool ok, std::int64_t, std::int64_t end) mutable {
            doc["hook_s"] = static_cast<double>(end - t0) / 1000;
            if (!ok) return end_phase(doc, false);
            const auto back = [t0](const Endpoint& e) {
                return !e.started || (e.last_feed_ok_sent_ms >= t0 && e.holding);
            };
            const auto reported = [t0](const Endpoint& e) {
                return !e.started || e.last_report_ok_sent_ms >= t0;
            };
            wait_for(
                [this, back, reported] {
                    for (const auto& e : endpoints_) {
                        if (!back(*e) || !reported(*e)) return false;
                    }
                    return true;
                },
                seconds(o_.phase_timeout_s),
                [this, doc, t0, back, reported](bool ok) mutable {
                    std::vector<double> feed_ms, report_ms;
                    int not_back = 0, not_reported = 0;
                    for (const auto& e : endpoints_) {
                        if (!e->started) continue;
                        if (back(*e)) {
                            feed_ms.push_back(double(e->last_feed_ok_ms - t0));
                        } else {
                            ++not_back;
                        }
                        if (reported(*e)) {
                            report_ms.push_back(double(e->last_report_ok_ms - t0));
                        } else {
                            ++not_reported;
                        }
                    }
                    doc["not_reconnected"] = not_back;
                    doc["not_reported"] = not_reported;
                    doc["restart_to_feed_ms"] = summarize(feed_ms);
                    doc["restart_to_report_ok_ms"] = summarize(report_ms);
                    std::vector<double> all;
                    for (std::size_t k = 0; k < std::min(feed_ms.size(), report_ms.size()); ++k)
                        all.push_back(std::max(feed_ms[k], report_ms[k]));
                    doc["all_back_and_reported_s"] =
                        all.empty() ? 0.0 : *std::max_element(all.begin(), all.end()) / 1000;
                    doc["duration_s"] = static_cast<double>(wall_ms() - t0) / 1000;
                    end_phase(doc, ok);
                });
        });
    }

    // Hold: nothing but the fleet's steady state (long-polls, heartbeats, announces) for S s;
    // the seeder's CPU and RSS over it.
    void phase_hold(int s) {
        auto doc = begin_phase("hold");
        doc["hold_s"] = s;
        run_hook("hold", [this, doc, s](bool ok, std::int64_t, std::int64_t) mutable {
            if (!ok) return end_phase(doc, false);
            hold_timer_.expires_after(seconds(s));
            hold_timer_.async_wait([this, doc, s](boost::system::error_code) mutable {
                int holding = 0;
                for (const auto& e : endpoints_) holding += e->holding ? 1 : 0;
                doc["holding"] = holding;
                doc["duration_s"] = s;
                end_phase(doc, true);
            });
        });
    }

    // ---- the probe: GET /v1/feed answered at once, its latency ------------------------------

    void arm_probe() {
        probe_timer_.expires_after(milliseconds(o_.probe_interval_ms));
        probe_timer_.async_wait([this](boost::system::error_code ec) {
            if (ec || stopping_) return;
            if (!probe_in_flight_) {
                probe_in_flight_ = true;
                io::http::ClientRequest req;
                req.url = o_.seeder + "/v1/feed";
                req.local_address = o_.probe_address;
                req.max_response_bytes = core::kMaxFeedBytes * 2;
                req.timeout = seconds(10);
                const auto started = Steady::now();
                io::http::request(
                    io_, std::move(req), [this, started](Result<io::http::ClientResponse> r) {
                        probe_in_flight_ = false;
                        if (r && r->status == 200) {
                            phase_probe_.push_back(
                                std::chrono::duration<double, std::milli>(Steady::now() - started)
                                    .count());
                        } else {
                            ++phase_probe_errors_;
                        }
                    });
            }
            arm_probe();
        });
    }

    // ---- the seeder's RSS and CPU (/proc/PID) -----------------------------------------------

    json read_proc() const { return sample_process(o_.seeder_pid_file); }

    // A restarted seeder is a new process: the CPU its predecessor used is kept in
    // retired_cpu_s_, so "cpu_total_s" only grows across restarts.
    void sample_seeder(const std::string&) {
        json s = read_proc();
        if (s.contains("pid") && last_sample_.contains("pid") && s["pid"] != last_sample_["pid"])
            retired_cpu_s_ += last_sample_["cpu_s"].get<double>();
        if (s.contains("cpu_s")) s["cpu_total_s"] = retired_cpu_s_ + s["cpu_s"].get<double>();
        if (!s.empty() || last_sample_.empty()) last_sample_ = std::move(s);
        if (last_sample_.contains("rss_kib")) {
            const auto rss = last_sample_["rss_kib"].get<std::int64_t>();
            phase_rss_max_kib_ = std::max(phase_rss_max_kib_, rss);
            rss_max_kib_ = std::max(rss_max_kib_, rss);
        }
    }

    void arm_sampler() {
        if (o_.seeder_pid_file.empty()) return;
        sampler_timer_.expires_after(seconds(1));
        sampler_timer_.async_wait([this](boost::system::error_code ec) {
            if (ec || stopping_) return;
            sample_seeder("tick");
            arm_sampler();
        });
    }

    // ---- the end ---------------------------------------------------------------------------

    json totals() const {
        std::uint64_t sent = 0, ok = 0, failed = 0, retried = 0, net_errors = 0, retries = 0,
                      ann_ok = 0, ann_failed = 0, feeds = 0;
        std::map<int, std::uint64_t> status;
        for (const auto& e : endpoints_) {
            sent += e->reports_sent;
            ok += e->reports_ok;
            failed += e->reports_failed;
            retried += e->reports_retried;
            net_errors += e->network_errors;
            retries += e->retries;
            ann_ok += e->announces_ok;
            ann_failed += e->announces_failed;
            feeds += e->feeds_seen.size();
            for (const auto& [s, n] : e->http_status) status[s] += n;
        }
        json by_status = json::object();
        for (const auto& [s, n] : status)
            by_status[s == 0 ? "refused_by_endpoint" : std::to_string(s)] = n;
        return json{{"reports_sent", sent},           {"reports_ok", ok},
                    {"reports_failed", failed},       {"reports_retried", retried},
                    {"network_errors", net_errors},   {"retries", retries},
                    {"http_errors", by_status},       {"announces_ok", ann_ok},
                    {"announces_failed", ann_failed}, {"feeds_accepted", feeds}};
    }

    // Every endpoint's last report that got 200 must be in fleet.db: its counter (or a later
    // one) and the states it carried.
    json check_db() const {
        json out = {{"checked", false}};
        auto db = io::Db::open(o_.fleet_db);
        if (!db) {
            out["error"] = db.error().message;
            return out;
        }
        std::unordered_map<std::string, std::int64_t> counters;
        std::map<std::pair<std::string, std::string>, std::string> states;
        if (auto st = (*db)->prepare("SELECT device_id, counter FROM endpoints")) {
            while (auto row = st->step()) {
                if (!*row) break;
                counters[st->column_text(0)] = st->column_int(1);
            }
        }
        if (auto st =
                (*db)->prepare("SELECT device_id, release_id, state FROM endpoint_releases")) {
            while (auto row = st->step()) {
                if (!*row) break;
                states[{st->column_text(0), st->column_text(1)}] = st->column_text(2);
            }
        }
        int lost = 0, state_mismatch = 0, checked = 0;
        for (const auto& e : endpoints_) {
            if (e->max_ok_counter == 0) continue;
            ++checked;
            const auto it = counters.find(e->identity.device_id);
            if (it == counters.end() ||
                static_cast<std::uint64_t>(it->second) < e->max_ok_counter) {
                ++lost;
                continue;
            }
            if (static_cast<std::uint64_t>(it->second) != e->max_ok_counter) continue;
            for (const auto& h : e->releases) {
                if (h.ok_state.empty()) continue;
                const auto s = states.find({e->identity.device_id, h.entry.id});
                if (s == states.end() || s->second != h.ok_state) ++state_mismatch;
            }
        }
        out = {{"checked", true},
               {"endpoints_checked", checked},
               {"endpoints_in_db", counters.size()},
               {"lost", lost},
               {"state_mismatch", state_mismatch}};
        return out;
    }

    void finish() {
        if (finished_) return;
        finished_ = true;
        json summary;
        summary["label"] = o_.label;
        summary["endpoints"] = o_.endpoints;
        summary["seeder"] = o_.seeder;
        summary["started_at_ms"] = started_ms_;
        summary["enrolment"] = json::object();
        if (!o_.token.empty()) {
            const double s = static_cast<double>(enrol_done_ms_ - enrol_started_ms_) / 1000;
            int failed = 0;
            std::map<std::string, int> reasons;
            for (const auto& e : endpoints_) {
                if (e->enrol_failed) {
                    ++failed;
                    ++reasons[e->enrol_error.substr(0, 80)];
                }
            }
            summary["enrolment"] = {{"enrolled", enrolled_},
                                    {"failed", failed},
                                    {"failures", reasons},
                                    {"duration_s", s},
                                    {"enrolments_per_s", s > 0 ? enrolled_ / s : 0}};
        }
        int holding = 0;
        for (const auto& e : endpoints_) holding += e->first_feed ? 1 : 0;
        summary["setup"] = {
            {"ready", ready_ok_},
            {"started", active_},
            {"got_feed", holding},
            {"ready_s", static_cast<double>(ready_ms_ - cycles_started_ms_) / 1000}};
        summary["phases"] = phases_;
        summary["totals"] = totals();
        summary["seeder_rss_max_kib"] = rss_max_kib_;
        if (!o_.fleet_db.empty()) {
            summary["fleet_db"] = check_db();
            if (!summary["fleet_db"].value("checked", false) ||
                summary["fleet_db"]["lost"].get<int>() > 0)
                exit_code_ = std::max(exit_code_, 1);
        }
        rusage self{};
        ::getrusage(RUSAGE_SELF, &self);
        summary["simulator"] = {
            {"cpu_s", static_cast<double>(self.ru_utime.tv_sec + self.ru_stime.tv_sec) +
                          static_cast<double>(self.ru_utime.tv_usec + self.ru_stime.tv_usec) / 1e6},
            {"max_rss_kib", self.ru_maxrss}};
        if (!ready_ok_) exit_code_ = std::max(exit_code_, 2);
        summary["exit_code"] = exit_code_;
        write_outputs(summary);
        run_hook("done", [this](bool, std::int64_t, std::int64_t) {
            stopping_ = true;
            io_.stop();
        });
    }

    void write_outputs(const json& summary) const {
        if (o_.out.empty()) {
            std::cout << summary.dump(2) << "\n";
        } else {
            std::ofstream(o_.out) << summary.dump(2) << "\n";
        }
        if (o_.endpoint_log.empty()) return;
        std::ofstream log(o_.endpoint_log);
        for (const auto& e : endpoints_) {
            json feeds = json::array();
            for (const auto& [seq, at] : e->feeds_seen) feeds.push_back({seq, at});
            json ok_states = json::object();
            for (const auto& h : e->releases) ok_states[h.entry.id] = h.ok_state;
            json status = json::object();
            for (const auto& [s, n] : e->http_status) status[std::to_string(s)] = n;
            log << json{{"i", e->index},
                        {"address", e->address},
                        {"device_id", e->identity.device_id},
                        {"enrolled", e->enrolled},
                        {"enrol_attempts", e->enrol_attempts},
                        {"enrol_error", e->enrol_error},
                        {"feeds", feeds},
                        {"reports_sent", e->reports_sent},
                        {"reports_ok", e->reports_ok},
                        {"reports_failed", e->reports_failed},
                        {"max_ok_counter", e->max_ok_counter},
                        {"ok_states", ok_states},
                        {"network_errors", e->network_errors},
                        {"http_errors", status},
                        {"retries", e->retries},
                        {"announces_ok", e->announces_ok},
                        {"announces_failed", e->announces_failed}}
                       .dump()
                << "\n";
        }
    }

    const Options& o_;
    net::io_context io_;
    std::mt19937_64 rng_;
    core::RootDocument pinned_;
    std::vector<std::unique_ptr<Endpoint>> endpoints_;
    crypto::KeyPair token_key_{};
    std::function<void()> enrol_then_;
    std::size_t next_enrol_ = 0;
    int enrol_active_ = 0;
    int enrolled_ = 0;
    std::size_t next_cycle_ = 0;
    int active_ = 0;
    net::steady_timer ramp_timer_{io_};
    net::steady_timer wait_timer_{io_};
    net::steady_timer hold_timer_{io_};
    net::steady_timer probe_timer_{io_};
    net::steady_timer sampler_timer_{io_};
    std::unordered_map<std::string, std::pair<Result<core::Feed>, core::FeedMemory>> feed_cache_;
    std::unordered_map<std::string, Result<core::Manifest>> manifest_cache_;
    std::size_t phase_index_ = 0;
    std::vector<json> phases_;
    std::vector<double> phase_probe_;
    int phase_probe_errors_ = 0;
    bool probe_in_flight_ = false;
    std::vector<std::int64_t> report_ok_times_;
    int reports_in_flight_ = 0;
    int storm_done_ = 0;
    int storm_members_ = 0;
    json last_sample_ = json::object();
    double retired_cpu_s_ = 0;
    std::int64_t phase_rss_max_kib_ = 0;
    std::int64_t rss_max_kib_ = 0;
    std::int64_t started_ms_ = 0, enrol_started_ms_ = 0, enrol_done_ms_ = 0, cycles_started_ms_ = 0,
                 ready_ms_ = 0;
    bool ready_ok_ = false;
    bool stopping_ = false;
    bool finished_ = false;
    int exit_code_ = 0;
    std::thread hook_thread_;
};

}  // namespace

int run(const Options& options) {
    Simulator sim(options);
    return sim.run();
}

}  // namespace patchswarm::fleetsim
