// The signed feed and its long-poll (GET /v1/feed?after=S&wait=W).
//
// The feed lists the repository's active releases; every (re)signing takes the next sequence
// from fleet.db, so a restarted seeder never reuses one. Long-polling clients whose `after` is
// the current sequence are held until a newer feed is signed or their wait expires; either way
// they get the current feed.
//
// Threading: construct, call and destroy on the io_context thread. The io_context must outlive
// the FeedService.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "core/feed.hpp"
#include "crypto/crypto.hpp"
#include "io/http/server.hpp"
#include "seeder/fleet_db.hpp"

namespace boost::asio {
class io_context;
}

namespace patchswarm::seeder {

inline constexpr std::chrono::seconds kMaxFeedWait{60};

struct FeedOptions {
    std::string repository;
    std::chrono::seconds expiry{86'400};  // feed lifetime; re-signed at half of it
};

class FeedService {
  public:
    // `db` must outlive the service.
    FeedService(boost::asio::io_context& io, FleetDb& db, crypto::KeyPair feed_key,
                FeedOptions options);
    ~FeedService();
    FeedService(const FeedService&) = delete;
    FeedService& operator=(const FeedService&) = delete;

    // Signs a feed of `releases` (with their open_rings) and `halted` release ids with the next
    // sequence, makes it current and answers every held long-poll. Errc::database if the
    // sequence cannot be persisted (the old feed stays).
    [[nodiscard]] Result<std::uint64_t> publish(std::vector<core::FeedEntry> releases,
                                                std::vector<std::string> halted, std::int64_t now);

    // Signs the next feeds with `key` (after a root rotation named a new feed key).
    void set_key(crypto::KeyPair key);

    // true when there is no feed yet or half of its lifetime has passed.
    bool needs_refresh(std::int64_t now) const;

    // Answers GET /v1/feed: now, if there is no `after`, no wait, or a feed newer than `after`;
    // otherwise holds `respond` for up to min(wait, kMaxFeedWait). 503 before the first feed.
    void get(std::optional<std::uint64_t> after, std::chrono::seconds wait,
             io::http::Respond respond);

    // Answers every held long-poll with the current feed (for shutdown).
    void release_waiters();

    std::uint64_t sequence() const;
    const std::vector<core::FeedEntry>& releases() const;
    const std::vector<std::string>& halted() const;
    std::size_t waiting() const;

  private:
    struct Impl;
    std::shared_ptr<Impl> impl_;  // shared with timer handlers, which hold it weakly
};

}  // namespace patchswarm::seeder
