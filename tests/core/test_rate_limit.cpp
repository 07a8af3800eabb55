// The per-client token bucket of the seeder's HTTP surface, with a fake clock.
#include <catch2/catch.hpp>

#include "core/rate_limit.hpp"

using patchswarm::core::rate_limit_client;
using patchswarm::core::RateLimit;
using patchswarm::core::RateLimiter;
using namespace std::chrono_literals;

namespace {
const RateLimiter::Clock::time_point t0{1000s};

int allowed_now(RateLimiter& limiter, const std::string& client, int attempts,
                RateLimiter::Clock::time_point now) {
    int n = 0;
    for (int i = 0; i < attempts; ++i) n += limiter.take(client, now).allowed ? 1 : 0;
    return n;
}
}  // namespace

TEST_CASE("a client gets its burst at once, then the sustained rate", "[core]") {
    RateLimiter limiter(RateLimit{2, 10, 100});
    CHECK(allowed_now(limiter, "10.0.0.1", 25, t0) == 10);
    const auto refused = limiter.take("10.0.0.1", t0);
    CHECK_FALSE(refused.allowed);
    CHECK(refused.retry_after == 1s);  // one token takes half a second at 2/s: rounded up
    // Another client is not affected by the first one's flood.
    CHECK(allowed_now(limiter, "10.0.0.2", 3, t0) == 3);
    // Three seconds later: six more requests, not seven.
    CHECK(allowed_now(limiter, "10.0.0.1", 20, t0 + 3s) == 6);
    // A long pause refills the bucket to the burst, no further.
    CHECK(allowed_now(limiter, "10.0.0.1", 50, t0 + 1h) == 10);
}

TEST_CASE("a slow rate tells the client how long to wait", "[core]") {
    RateLimiter limiter(RateLimit{0.1, 1, 100});
    CHECK(limiter.take("10.0.0.1", t0).allowed);
    const auto refused = limiter.take("10.0.0.1", t0 + 2s);
    CHECK_FALSE(refused.allowed);
    CHECK(refused.retry_after == 8s);
}

TEST_CASE("rate 0 turns the limiter off", "[core]") {
    RateLimiter limiter(RateLimit{0, 1, 1});
    CHECK(allowed_now(limiter, "10.0.0.1", 1000, t0) == 1000);
    CHECK(limiter.tracked() == 0);
}

TEST_CASE("the client table is bounded: refilled clients are forgotten, a flood is refused",
          "[core]") {
    RateLimiter limiter(RateLimit{1, 2, 3});
    for (const char* c : {"10.0.0.1", "10.0.0.2", "10.0.0.3"}) CHECK(limiter.take(c, t0).allowed);
    CHECK(limiter.tracked() == 3);
    // Every tracked client still drains its bucket: a fourth address is refused, not added.
    const auto refused = limiter.take("10.0.0.4", t0);
    CHECK_FALSE(refused.allowed);
    CHECK(refused.retry_after == 1s);
    CHECK(limiter.tracked() == 3);
    // Once the others have refilled they are forgotten and the newcomer gets in.
    CHECK(limiter.take("10.0.0.4", t0 + 5s).allowed);
    CHECK(limiter.tracked() == 1);
}

TEST_CASE("an IPv6 client is its /64, IPv4 is the address, mapped or not", "[core]") {
    CHECK(rate_limit_client("10.1.2.3") == "10.1.2.3");
    CHECK(rate_limit_client("::ffff:10.1.2.3") == "10.1.2.3");
    CHECK(rate_limit_client("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64");
    CHECK(rate_limit_client("2001:db8:1:2:bbbb:cccc:dddd:eeee") == "2001:db8:1:2::/64");
    CHECK(rate_limit_client("2001:db8:1:3::1") == "2001:db8:1:3::/64");
    CHECK_FALSE(rate_limit_client("example.org"));
    CHECK_FALSE(rate_limit_client(""));

    // Two addresses of one /64 share a bucket.
    RateLimiter limiter(RateLimit{1, 2, 10});
    CHECK(limiter.take(*rate_limit_client("2001:db8::1"), t0).allowed);
    CHECK(limiter.take(*rate_limit_client("2001:db8::2"), t0).allowed);
    CHECK_FALSE(limiter.take(*rate_limit_client("2001:db8::3"), t0).allowed);
}
