// core/jitter.hpp: the spread of heartbeats, reconnects and retries, with the random value
// chosen by the test.
#include <catch2/catch.hpp>
#include <cstdint>
#include <limits>

#include "core/jitter.hpp"

using namespace patchswarm::core;
using namespace std::chrono_literals;

namespace {
constexpr std::uint64_t kLowest = 0;
constexpr std::uint64_t kMiddle = std::uint64_t{1} << 63;
constexpr std::uint64_t kHighest = std::numeric_limits<std::uint64_t>::max();
}  // namespace

TEST_CASE("jitter spreads a duration over base * (1 +- spread)", "[core]") {
    CHECK(jittered(60'000ms, 0.25, kLowest) == 45'000ms);
    CHECK(jittered(60'000ms, 0.25, kMiddle) == 60'000ms);
    CHECK(jittered(60'000ms, 0.25, kHighest) <= 75'000ms);
    CHECK(jittered(60'000ms, 0.25, kHighest) >= 74'999ms);
    CHECK(jittered(60'000ms, 0, kHighest) == 60'000ms);
    CHECK(jittered(1'000ms, 5, kLowest) == 0ms);  // spread clamped to 1
}

TEST_CASE("a retry honours Retry-After with up to half again, else backs off with jitter",
          "[core]") {
    // The seeder's answer wins, spread over [R, 1.5 R), bounded.
    CHECK(retry_delay(10s, 1, 30s, kLowest) == 10'000ms);
    CHECK(retry_delay(10s, 1, 30s, kMiddle) == 12'500ms);
    CHECK(retry_delay(10s, 7, 30s, kHighest) <= 15'000ms);
    CHECK(retry_delay(0s, 1, 30s, kLowest) == 1'000ms);              // at least a second
    CHECK(retry_delay(86'400s, 1, 30s, kLowest) == kMaxRetryAfter);  // at most kMaxRetryAfter

    // No answer (connection refused, timeout): 1, 2, 4, ... s up to the cap, each 0.5..1.5 x.
    CHECK(retry_delay(std::nullopt, 1, 30s, kMiddle) == 1'000ms);
    CHECK(retry_delay(std::nullopt, 2, 30s, kMiddle) == 2'000ms);
    CHECK(retry_delay(std::nullopt, 4, 30s, kMiddle) == 8'000ms);
    CHECK(retry_delay(std::nullopt, 40, 30s, kMiddle) == 30'000ms);
    CHECK(retry_delay(std::nullopt, 40, 30s, kLowest) == 15'000ms);
    CHECK(retry_delay(std::nullopt, 40, 30s, kHighest) <= 45'000ms);
}

TEST_CASE("Retry-After is read as delta-seconds only", "[core]") {
    CHECK(parse_retry_after("7") == 7s);
    CHECK(parse_retry_after(" 120 ") == 120s);
    CHECK_FALSE(parse_retry_after(""));
    CHECK_FALSE(parse_retry_after("-1"));
    CHECK_FALSE(parse_retry_after("1.5"));
    CHECK_FALSE(parse_retry_after("Fri, 04 Dec 2026 22:00:00 GMT"));
    CHECK_FALSE(parse_retry_after("99999999999"));
}
