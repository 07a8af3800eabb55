// Spreading endpoints out in time, so that thousands of them never act at once: after a seeder
// restart every long-poll fails together, after a publish every endpoint reports together, and
// a seeder that answers 503 to a crowd must not get the same crowd back a second later.
// Pure: the randomness is a parameter (io::Env::random_u64), so tests choose it.
#pragma once

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace patchswarm::core {

// `r` as a number in [0, 1).
inline double unit_interval(std::uint64_t r) {
    return static_cast<double>(r >> 11) * (1.0 / 9007199254740992.0);  // 53 bits
}

// A duration uniform in [base * (1 - spread), base * (1 + spread)], spread in [0, 1].
inline std::chrono::milliseconds jittered(std::chrono::milliseconds base, double spread,
                                          std::uint64_t r) {
    spread = std::clamp(spread, 0.0, 1.0);
    const double f = 1.0 - spread + 2.0 * spread * unit_interval(r);
    return std::chrono::milliseconds(
        static_cast<std::int64_t>(static_cast<double>(base.count()) * f));
}

// The longest Retry-After an endpoint honours: a seeder (or something in between) asking for
// more is taken to mean this.
inline constexpr std::chrono::seconds kMaxRetryAfter{300};

// The wait before trying again after the `failures`-th failure in a row (1 for the first):
//   - the seeder said Retry-After: that, plus up to half of it again (those refused together
//     come back spread out), capped at kMaxRetryAfter;
//   - otherwise exponential backoff from 1 s, doubling up to `max_backoff`, jittered to
//     [0.5, 1.5) of it.
inline std::chrono::milliseconds retry_delay(std::optional<std::chrono::seconds> retry_after,
                                             std::uint32_t failures,
                                             std::chrono::seconds max_backoff, std::uint64_t r) {
    using std::chrono::milliseconds;
    if (retry_after) {
        const auto base = std::clamp(*retry_after, std::chrono::seconds(1), kMaxRetryAfter);
        const milliseconds ms(base);
        return ms + milliseconds(static_cast<std::int64_t>(static_cast<double>(ms.count()) * 0.5 *
                                                           unit_interval(r)));
    }
    const std::uint32_t doublings = std::min<std::uint32_t>(failures > 0 ? failures - 1 : 0, 20);
    const auto backoff =
        std::min<std::chrono::seconds>(std::chrono::seconds(1) * (1LL << doublings), max_backoff);
    return jittered(milliseconds(backoff), 0.5, r);
}

// An HTTP Retry-After header in delta-seconds ("120"); nullopt for anything else (an HTTP
// date is not worth trusting a clock over).
inline std::optional<std::chrono::seconds> parse_retry_after(std::string_view text) {
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
    if (text.empty() || text.size() > 9) return std::nullopt;
    std::int64_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size() || v < 0) return std::nullopt;
    return std::chrono::seconds(v);
}

}  // namespace patchswarm::core
