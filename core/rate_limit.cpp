#include "core/rate_limit.hpp"

#include <algorithm>
#include <cmath>

#include "core/sites.hpp"

namespace patchswarm::core {

std::optional<std::string> rate_limit_client(std::string_view address) {
    const auto ip = parse_ip(address);
    if (!ip) return std::nullopt;
    return ip->v6 ? network_of(*ip, 64).to_string() : to_string(*ip);
}

double RateLimiter::refill(Bucket& b, Clock::time_point now) const {
    const double elapsed = std::chrono::duration<double>(now - b.updated).count();
    if (elapsed > 0) {
        b.tokens = std::min(limit_.burst, b.tokens + elapsed * limit_.per_second);
        b.updated = now;
    }
    return b.tokens;
}

void RateLimiter::forget_full(Clock::time_point now) {
    for (auto it = buckets_.begin(); it != buckets_.end();) {
        it = refill(it->second, now) >= limit_.burst ? buckets_.erase(it) : std::next(it);
    }
}

RateLimiter::Decision RateLimiter::take(const std::string& client, Clock::time_point now) {
    if (limit_.per_second <= 0) return {};
    auto it = buckets_.find(client);
    if (it == buckets_.end()) {
        if (buckets_.size() >= limit_.max_clients) forget_full(now);
        if (buckets_.size() >= limit_.max_clients) {
            // Every tracked client is still busy: a flood of addresses. Refuse newcomers for the
            // time one bucket takes to refill a request, rather than grow without bound.
            return {false,
                    std::chrono::seconds(static_cast<long>(std::ceil(1.0 / limit_.per_second)))};
        }
        it = buckets_.emplace(client, Bucket{limit_.burst, now}).first;
    }
    Bucket& b = it->second;
    if (refill(b, now) >= 1) {
        b.tokens -= 1;
        return {};
    }
    const double wait = (1 - b.tokens) / limit_.per_second;
    return {false, std::chrono::seconds(static_cast<long>(std::max(1.0, std::ceil(wait))))};
}

}  // namespace patchswarm::core
