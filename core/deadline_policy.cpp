#include "core/deadline_policy.hpp"

#include "core/json_strict.hpp"
#include "core/rollout.hpp"

namespace patchswarm::core {

namespace {

constexpr std::int64_t kDay = 86400;

}  // namespace

DeadlinePolicy default_deadline_policy() {
    DeadlinePolicy p;
    const auto set = [&](Severity s, std::int64_t v) { p.max_s[static_cast<std::size_t>(s)] = v; };
    set(Severity::low, 30 * kDay);
    set(Severity::normal, 14 * kDay);
    set(Severity::important, 7 * kDay);
    set(Severity::critical, 72 * 3600);
    set(Severity::emergency, 24 * 3600);
    return p;
}

Result<DeadlinePolicy> parse_deadline_policy(std::string_view json, DeadlinePolicy base) {
    auto doc = json_strict::parse(json, "deadlines");
    if (!doc) return fail(Errc::invalid_argument, doc.error().message);
    const json_strict::Json& value = *doc;
    if (!value.is_object()) {
        return fail(Errc::invalid_argument, "deadlines: expected an object of severity: duration");
    }
    for (const auto& item : value.items()) {
        const std::string where = "deadlines." + item.key().substr(0, 40);
        const auto severity = parse_severity(item.key());
        if (!severity) {
            return fail(Errc::invalid_argument,
                        where + ": not a severity (low, normal, important, critical, emergency)");
        }
        auto& slot = base.max_s[static_cast<std::size_t>(*severity)];
        const auto& v = item.value();
        std::optional<std::int64_t> seconds;
        if (v.is_null()) {
            slot.reset();
            continue;
        }
        if (v.is_number_unsigned()) {
            if (v.get<std::uint64_t>() <= static_cast<std::uint64_t>(kMaxDeadlineAfterS)) {
                seconds = static_cast<std::int64_t>(v.get<std::uint64_t>());
            }
        } else if (v.is_string()) {
            const std::string text = v.get<std::string>();
            if (auto r = parse_time_spec("+" + text, 0); r && !text.empty() && text[0] != '+') {
                seconds = *r;
            }
        }
        if (!seconds || *seconds <= 0 || *seconds > kMaxDeadlineAfterS) {
            return fail(Errc::invalid_argument,
                        where +
                            ": expected a duration like \"24h\", \"14d\", \"90m\" or "
                            "seconds, at most 3650d (null for no deadline)");
        }
        slot = seconds;
    }
    return base;
}

std::string_view to_string(DeadlineSource s) {
    switch (s) {
        case DeadlineSource::none:
            return "none";
        case DeadlineSource::flag:
            return "flag";
        case DeadlineSource::policy_file:
            return "policy_file";
        case DeadlineSource::severity_policy:
            return "severity_policy";
    }
    return "unknown";
}

std::string format_duration(std::int64_t seconds) {
    if (seconds > 0 && seconds % kDay == 0 && seconds / kDay > 3) {
        return std::to_string(seconds / kDay) + "d";
    }
    if (seconds > 0 && seconds % 3600 == 0) return std::to_string(seconds / 3600) + "h";
    if (seconds > 0 && seconds % 60 == 0) return std::to_string(seconds / 60) + "m";
    return std::to_string(seconds) + "s";
}

AppliedDeadline apply_deadline_policy(const DeadlinePolicy& policy, Severity severity,
                                      std::optional<std::int64_t> given,
                                      std::optional<std::int64_t> file_deadline, std::int64_t now,
                                      std::int64_t expires) {
    AppliedDeadline d;
    if (given) {
        d.at = given;
        d.source = DeadlineSource::flag;
        d.explanation = "given by --deadline";
        return d;
    }
    const auto max = policy.for_severity(severity);
    const std::string limit = max ? std::string(to_string(severity)) + ": at most " +
                                        format_duration(*max) + " after publishing"
                                  : std::string();
    if (file_deadline && (!max || *file_deadline <= now + *max)) {
        d.at = file_deadline;
        d.source = DeadlineSource::policy_file;
        d.explanation = "the policy file's deadline";
    } else if (max) {
        d.at = now + *max;
        d.source = DeadlineSource::severity_policy;
        d.explanation = limit;
    } else {
        d.explanation = "no deadline for severity " + std::string(to_string(severity));
        return d;
    }
    if (*d.at > expires) {
        d.at = expires;
        d.explanation += ", cut to the manifest's expiry";
    }
    return d;
}

}  // namespace patchswarm::core
