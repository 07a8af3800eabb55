// Deadlines from policy: the longest a release of each severity may wait for its deadline, and
// the deadline `publish` signs when it is given none. Pure, like the rest of core/: `now` comes in.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.hpp"
#include "core/manifest.hpp"

namespace patchswarm::core {

// The longest a release of each severity may wait for its deadline, counted from its publish
// time: the publisher's policy (the rollout policy file's "deadlines"), not a code path. An
// emergency release published with no --deadline still gets one, so no deferral or maintenance
// window holds it back longer than the policy allows.

struct DeadlinePolicy {
    // Indexed by core::Severity; nullopt: no deadline unless the publisher gives one.
    std::array<std::optional<std::int64_t>, 5> max_s{};

    std::optional<std::int64_t> for_severity(Severity s) const {
        return max_s[static_cast<std::size_t>(s)];
    }
    bool operator==(const DeadlinePolicy&) const = default;
};

// low 30 days, normal 14 days, important 7 days, critical 72 hours, emergency 24 hours.
DeadlinePolicy default_deadline_policy();

// Longest time to deadline a policy may give (the manifest's lifetime bounds it anyway).
inline constexpr std::int64_t kMaxDeadlineAfterS = 3650LL * 86400;

// Reads a policy file's "deadlines" object (its JSON text) over `base`: each key a severity name,
// each value a duration ("24h", "14d", "90m", "3600s", or whole seconds) or null (no deadline).
// Unknown keys, other types, 0 and durations over kMaxDeadlineAfterS are Errc::invalid_argument,
// messages starting with "deadlines".
[[nodiscard]] Result<DeadlinePolicy> parse_deadline_policy(std::string_view json,
                                                           DeadlinePolicy base);

enum class DeadlineSource { none, flag, policy_file, severity_policy };
std::string_view to_string(DeadlineSource);

struct AppliedDeadline {
    std::optional<std::int64_t> at;
    DeadlineSource source = DeadlineSource::none;
    std::string explanation;  // "emergency: at most 24h after publishing", for publish's output

    bool operator==(const AppliedDeadline&) const = default;
};

// The deadline `publish` signs: the one given on its command line as it is; else the policy
// file's own deadline, no later than `now` + the severity's maximum; else `now` + that maximum.
// Never after `expires` (the manifest is void then anyway).
AppliedDeadline apply_deadline_policy(const DeadlinePolicy& policy, Severity severity,
                                      std::optional<std::int64_t> given,
                                      std::optional<std::int64_t> file_deadline, std::int64_t now,
                                      std::int64_t expires);

// "24h", "14d", "90m", "45s": a duration the shortest way it divides.
std::string format_duration(std::int64_t seconds);

}  // namespace patchswarm::core
