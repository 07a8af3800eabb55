// Per-client request rate limits for the seeder's HTTP surface (docs/SECURITY.md, "HTTP
// surface"): a token bucket per client, so that one endpoint, or one stranger, cannot take the
// seeder's HTTP away from the fleet.
//
// Pure logic with the clock passed in (tests use a fake one). A client is an IPv4 address or an
// IPv6 /64 (one host can hold a whole /64, so its addresses count as one client). The table is
// bounded: buckets that have refilled are forgotten (a new bucket is full too), and when every
// tracked client is still draining, a new client is refused rather than letting a flood of
// source addresses grow the table without end.
//
// Thread-safety: none; the seeder uses one limiter from its io_context thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace patchswarm::core {

// The client an address belongs to: "10.0.0.7", "2001:db8:1:2::/64". nullopt when the text is
// not an address literal.
std::optional<std::string> rate_limit_client(std::string_view address);

struct RateLimit {
    double per_second = 200;  // sustained requests per second per client; 0 disables limiting
    double burst = 2000;      // bucket size: requests a quiet client may make at once
    std::size_t max_clients = 100'000;
};

class RateLimiter {
  public:
    using Clock = std::chrono::steady_clock;

    explicit RateLimiter(RateLimit limit) : limit_(limit) {}

    struct Decision {
        bool allowed = true;
        std::chrono::seconds retry_after{0};  // when refused: until one request is allowed again
    };

    // Takes one request from `client`'s bucket (a key from rate_limit_client).
    Decision take(const std::string& client, Clock::time_point now);

    std::size_t tracked() const { return buckets_.size(); }

  private:
    struct Bucket {
        double tokens = 0;
        Clock::time_point updated;
    };

    double refill(Bucket& b, Clock::time_point now) const;
    void forget_full(Clock::time_point now);

    RateLimit limit_;
    std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace patchswarm::core
