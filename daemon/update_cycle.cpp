#include "daemon/update_cycle.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio.hpp>

#include "core/envelope.hpp"
#include "core/jitter.hpp"
#include "daemon/endpoint_store.hpp"
#include "daemon/relay.hpp"
#include "daemon/seeder_client.hpp"
#include "io/env.hpp"
#include "io/http/client.hpp"

namespace patchswarm::daemon {

struct UpdateCycle::Timer {
    explicit Timer(boost::asio::io_context& io) : t(io) {}
    boost::asio::steady_timer t;
};

UpdateCycle::UpdateCycle(boost::asio::io_context& io, io::Env& env, EndpointStore& store,
                         SeederClient& seeders, int poll_wait_s, Hooks hooks)
    : io_(io),
      env_(env),
      store_(store),
      seeders_(seeders),
      poll_wait_s_(poll_wait_s),
      hooks_(std::move(hooks)),
      timer_(std::make_unique<Timer>(io)) {}

UpdateCycle::~UpdateCycle() = default;

// The pinned root, or the newest root an earlier run verified, whichever is newer: the root
// version never goes back, even if the pinned file is reinstalled.
void UpdateCycle::load(const std::filesystem::path& trust_root) {
    auto pinned_text = env_.read_file(trust_root, core::kMaxRootEnvelopeBytes);
    if (!pinned_text) {
        throw std::runtime_error("--trust " + trust_root.string() + ": " +
                                 pinned_text.error().message);
    }
    auto pinned = core::verify_pinned_root(*pinned_text);
    if (!pinned) {
        // The most likely mistake is the issue 2 setup: a release .pub file.
        throw std::runtime_error("--trust " + trust_root.string() +
                                 " is not a valid signed root document (the repository's "
                                 "root/1.json, from `patchswarm-seeder root init`): " +
                                 pinned.error().message);
    }
    auto stored = store_.load_roots();
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
    root_ = newest_stored ? core::newest_root(*pinned, *newest_stored) : *pinned;
    if (!newest_stored || pinned->version > newest_stored->version) {
        // A newer pinned root (a reinstall) takes over; its feed keys may differ.
        const bool rotated = newest_stored && core::feed_keys_rotated(*newest_stored, *pinned);
        if (auto ok = store_.save_root(pinned->version, *pinned_text, rotated); !ok) {
            throw std::runtime_error("state.db: " + ok.error().message);
        }
    }
    trust_ = core::trust_of(root_);
    spdlog::info("trusting root version {} (expires {}): release {} of {} keys, feed {} key(s)",
                 root_.version, root_.expires, root_.release.threshold, root_.release.keyids.size(),
                 root_.feed.keyids.size());
    auto feed = store_.load_feed_state();
    if (!feed) throw std::runtime_error("state.db: " + feed.error().message);
    feed_memory_.sequence = feed->sequence;
    feed_memory_.payload_sha256 = feed->payload_sha256;
    stored_feed_ = feed->envelope;
}

std::optional<core::Feed> UpdateCycle::stored_feed() const {
    if (stored_feed_.empty()) return std::nullopt;
    auto env = core::parse_envelope(stored_feed_, core::kMaxFeedBytes * 2);
    if (!env) return std::nullopt;
    auto feed = core::parse_feed(
        std::string_view(reinterpret_cast<const char*>(env->payload.data()), env->payload.size()));
    if (!feed) return std::nullopt;
    return std::move(*feed);
}

void UpdateCycle::start() {
    if (relay_ && !stored_feed_.empty()) relay_->set_feed(stored_feed_, feed_memory_.sequence);
    poll();
}

void UpdateCycle::stop() {
    stopping_ = true;
    timer_->t.cancel();
}

void UpdateCycle::retry_later(const std::string& why) {
    // Jittered to 0.5..1.5 of the backoff: after a seeder restart every endpoint's long-poll
    // fails at the same instant, and must not come back at the same instant.
    const auto delay = core::jittered(backoff_, kRetrySpread, env_.random_u64());
    spdlog::warn("seeder {}: {}; retrying in {}ms", seeders_.current(), why, delay.count());
    seeders_.fail_over();
    poll_after(delay);
    backoff_ = std::min<std::chrono::milliseconds>(backoff_ * 2, kMaxBackoff);
}

void UpdateCycle::poll_after(std::chrono::milliseconds delay) {
    timer_->t.expires_after(delay);
    timer_->t.async_wait([this](const boost::system::error_code& ec) {
        if (!ec && !stopping_) poll();
    });
}

// One update cycle: collect the root versions after ours, walk them (TUF 5.3) and check the
// newest for freeze, then long-poll the feed with the keys it names.
void UpdateCycle::poll() {
    if (stopping_) return;
    cycle_now_ = env_.now_unix();
    fetch_root(root_.version + 1, std::make_shared<std::vector<std::string>>());
}

void UpdateCycle::fetch_root(std::uint64_t version,
                             std::shared_ptr<std::vector<std::string>> envelopes) {
    if (envelopes->size() >= core::kMaxRootUpdatesPerCycle) {
        if (walk(*envelopes)) request_feed();
        return;
    }
    io::http::request(
        io_, seeders_.get(core::root_route(version), core::kMaxRootEnvelopeBytes),
        [this, version, envelopes](Result<io::http::ClientResponse> r) {
            if (stopping_) return;
            const bool done = r && r->status == 404;  // no newer root
            if (r && r->status == 200) {
                envelopes->push_back(std::move(r->body));
                return fetch_root(version + 1, envelopes);
            }
            // Even when the walk stops early, what did verify stays trusted.
            if (!walk(*envelopes)) return;
            if (done) return request_feed();
            retry_later(!r ? r.error().message : "root: HTTP " + std::to_string(r->status));
        });
}

bool UpdateCycle::walk(const std::vector<std::string>& envelopes) {
    const std::uint64_t first = root_.version;
    core::RootDocument walked = root_;
    auto updated = core::update_root(root_, envelopes, cycle_now_, &walked);
    const core::RootDocument& newest = updated ? *updated : walked;
    // Persist every version that verified, oldest first: a relay serves the whole chain, and a
    // crash half way keeps what was already trusted.
    for (std::uint64_t v = root_.version + 1; v <= newest.version; ++v) {
        const std::string& body = envelopes[v - root_.version - 1];
        auto next = core::verify_next_root(body, root_);
        if (!next) break;  // cannot happen: update_root verified this very step
        const bool rotated = core::feed_keys_rotated(root_, *next);
        if (auto ok = store_.save_root(next->version, body, rotated); !ok) {
            spdlog::error("cannot persist root version {}: {}", next->version, ok.error().message);
            retry_later("cannot persist root");
            return false;
        }
        if (rotated) {
            // Fast-forward recovery: the old feed key's sequence numbers mean nothing now.
            feed_memory_ = core::feed_memory_after_root_update(root_, *next, feed_memory_);
            spdlog::warn("root version {} rotated the feed keys: feed state dropped",
                         next->version);
        }
        spdlog::info("root version {} accepted (expires {})", next->version, next->expires);
        if (relay_) relay_->set_root(next->version, body);
        root_ = std::move(*next);
        trust_ = core::trust_of(root_);
    }
    if (!updated) {
        // Either an envelope was refused (the walk stopped short of the last one fetched) or
        // the newest root has expired (freeze).
        if (newest.version < first + std::min(envelopes.size(), core::kMaxRootUpdatesPerCycle)) {
            spdlog::error("root version {} refused: {} ({})", newest.version + 1,
                          updated.error().message, to_string(updated.error().code));
            retry_later("untrusted root");
        } else {
            spdlog::error("freeze: {}", updated.error().message);
            retry_later("root expired");
        }
        return false;
    }
    return true;
}

void UpdateCycle::request_feed() {
    auto req = seeders_.get("/v1/feed?after=" + std::to_string(feed_memory_.sequence) +
                                "&wait=" + std::to_string(poll_wait_s_),
                            core::kMaxFeedBytes * 2, std::chrono::seconds(poll_wait_s_ + 15));
    const auto started = env_.now_steady();
    io::http::request(io_, std::move(req), [this, started](Result<io::http::ClientResponse> r) {
        if (stopping_) return;
        if (!r) return retry_later(r.error().message);
        if (r->status != 200) return retry_later("feed: HTTP " + std::to_string(r->status));
        // A relay (or an old seeder) answers at once instead of holding the poll: then pace the
        // next poll instead of spinning.
        const bool quick = env_.now_steady() - started < std::chrono::seconds(1);
        on_feed(r->body, quick);
    });
}

void UpdateCycle::on_feed(const std::string& body, bool answered_quickly) {
    core::FeedMemory accepted;
    auto feed = core::verify_feed(body, trust_.feed, cycle_now_, feed_memory_, &accepted);
    if (!feed) {
        // A feed key rotation shows up as a new root in the next cycle, not here.
        spdlog::error("feed rejected: {} ({})", feed.error().message, to_string(feed.error().code));
        return retry_later("bad feed");
    }
    const bool is_new = accepted.sequence != feed_memory_.sequence;
    if (is_new) {
        // Rollback protection rests on this state: a feed whose state is not on disk is not
        // acted on, or a restart would accept an older feed again.
        if (auto ok = store_.save_feed_state({accepted.sequence, accepted.payload_sha256, body});
            !ok) {
            spdlog::error("feed {}: cannot persist feed state: {}; not acting on it",
                          accepted.sequence, ok.error().message);
            return retry_later("cannot persist feed state");
        }
        spdlog::info("feed {} accepted: {} release(s)", accepted.sequence, feed->releases.size());
        feed_memory_ = accepted;
        stored_feed_ = body;
        if (relay_) relay_->set_feed(body, accepted.sequence);
    }
    backoff_ = std::chrono::seconds(1);
    hooks_.on_feed(*feed, is_new);
    for (const auto& entry : feed->releases) consider(entry);
    if (!is_new && answered_quickly) {
        poll_after(core::jittered(std::chrono::seconds(3), kRetrySpread, env_.random_u64()));
    } else {
        boost::asio::post(io_, [this] {
            if (!stopping_) poll();
        });
    }
}

void UpdateCycle::consider(const core::FeedEntry& entry) {
    if (!hooks_.wants_manifest(entry)) return;
    if (manifests_in_flight_.contains(entry.manifest_sha256)) return;
    if (auto rej = store_.is_rejected(entry.manifest_sha256); rej && *rej) return;
    manifests_in_flight_.insert(entry.manifest_sha256);
    io::http::request(
        io_, seeders_.get("/v1/releases/" + entry.id + "/manifest", core::kMaxManifestBytes * 2),
        [this, entry, now = cycle_now_](Result<io::http::ClientResponse> r) {
            manifests_in_flight_.erase(entry.manifest_sha256);
            if (stopping_) return;
            if (!r || r->status != 200) {
                spdlog::warn("{}: manifest fetch failed: {}", entry.id,
                             r ? "HTTP " + std::to_string(r->status) : r.error().message);
                return;  // the next feed answer tries again
            }
            on_manifest(entry, r->body, now);
        });
}

// `now` is the clock reading of the update cycle whose feed announced the manifest.
void UpdateCycle::on_manifest(const core::FeedEntry& entry, const std::string& body,
                              std::int64_t now) {
    const auto previous = hooks_.sequence_of(entry.id);
    auto m = core::verify_manifest(body, entry, trust_, now, previous);
    if (!m) {
        spdlog::error("{}: manifest rejected: {}", entry.id, m.error().message);
        // A hash mismatch may be a race with a re-publish: try again with the next feed.
        if (m.error().code != Errc::hash_mismatch) {
            if (auto ok = store_.add_rejected(
                    {entry.manifest_sha256, entry.id, m.error().message, env_.now_unix()});
                !ok) {
                spdlog::error("{}: cannot persist the rejection: {}", entry.id, ok.error().message);
            }
            hooks_.on_rejected();
        }
        return;
    }
    if (previous && m->sequence == *previous) return;
    hooks_.on_manifest(entry, body, std::move(*m));
}

}  // namespace patchswarm::daemon
