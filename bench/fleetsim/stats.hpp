// Distribution summaries for the fleet simulator's JSON (nearest-rank percentiles).
#pragma once

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <vector>

namespace patchswarm::fleetsim {

// {"count","p50","p90","p99","max","mean"} of `values` (unsorted); {"count":0} when empty.
inline nlohmann::json summarize(std::vector<double> values) {
    if (values.empty()) return {{"count", 0}};
    std::sort(values.begin(), values.end());
    const auto rank = [&](double p) {
        const auto k = static_cast<std::size_t>(std::ceil(p * static_cast<double>(values.size())));
        return values[std::clamp<std::size_t>(k, 1, values.size()) - 1];
    };
    double sum = 0;
    for (const double v : values) sum += v;
    const auto round1 = [](double v) { return std::round(v * 10) / 10; };
    return {
        {"count", values.size()},       {"p50", round1(rank(0.50))},
        {"p90", round1(rank(0.90))},    {"p99", round1(rank(0.99))},
        {"max", round1(values.back())}, {"mean", round1(sum / static_cast<double>(values.size()))}};
}

}  // namespace patchswarm::fleetsim
