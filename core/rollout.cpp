#include "core/rollout.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <utility>

#include "core/json_strict.hpp"
#include "crypto/crypto.hpp"

namespace patchswarm::core {

namespace {

constexpr std::int64_t kDay = 86400;
// Offsets are sampled this far apart to find transitions; zones never change twice in 6 hours.
constexpr std::int64_t kSampleStep = 6 * 3600;
// Every weekly window occurs within 8 days, whatever DST does in between.
constexpr std::int64_t kLookAheadDays = 9;

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
    return a / b - ((a % b != 0) && ((a < 0) != (b < 0)) ? 1 : 0);
}

// Monday = 0 ... Sunday = 6 (the bit order of Window::days); unix day 0 was a Thursday.
int weekday_of(std::int64_t unix_day) {
    return static_cast<int>(((unix_day + 3) % 7 + 7) % 7);
}

bool has_day(const Window& w, int weekday) {
    return ((w.days >> weekday) & 1u) != 0;
}

std::string format_bp(std::uint64_t bp) {
    char text[32];
    std::snprintf(text, sizeof text, "%llu.%02llu%%", static_cast<unsigned long long>(bp / 100),
                  static_cast<unsigned long long>(bp % 100));
    return text;
}

std::uint32_t success_bp_of(const Rollout& rollout, std::size_t ring) {
    // The implicit last ring opens nothing after it; report it against 100 %.
    return ring < rollout.rings.size() ? rollout.rings[ring].success_bp : kBasisPoints;
}

std::uint32_t max_failure_bp_of(const Rollout& rollout, std::size_t ring) {
    if (ring < rollout.rings.size()) return rollout.rings[ring].max_failure_bp;
    return rollout.rings.empty() ? kBasisPoints : rollout.rings.back().max_failure_bp;
}

// When the ring's effective count reached its threshold, if it has; see evaluate_rings.
std::optional<std::int64_t> success_time(const RingStatus& s, std::uint32_t success_bp,
                                         std::vector<std::int64_t>& effective_times,
                                         std::int64_t lower, std::int64_t now) {
    const std::int64_t floor = std::min(lower, now);
    if (s.members == 0 || s.needed == 0) {
        // With members but none reachable, a threshold above 0 has no evidence to stand on.
        if (s.members > 0 && s.reachable == 0 && success_bp > 0) return std::nullopt;
        return floor;
    }
    if (s.effective < s.needed) return std::nullopt;
    std::nth_element(effective_times.begin(),
                     effective_times.begin() + static_cast<std::ptrdiff_t>(s.needed - 1),
                     effective_times.end());
    const std::int64_t crossed = effective_times[s.needed - 1];
    return std::clamp(crossed, floor, now);
}

// Offsets of a zone around [from, to] and the instants where they change. Empty offsets when
// the zone is unknown.
struct ZoneSpan {
    std::vector<std::int32_t> offsets;
    std::vector<std::int64_t> transitions;
};

ZoneSpan scan_zone(const std::string& zone, const UtcOffsetFn& offset_at, std::int64_t from,
                   std::int64_t to) {
    ZoneSpan span;
    std::int64_t a = from;
    auto oa = offset_at(zone, a);
    if (!oa) return span;
    span.offsets.push_back(*oa);
    for (std::int64_t b = a + kSampleStep; a < to; b += kSampleStep) {
        const auto ob = offset_at(zone, b);
        if (!ob) return {};
        if (*ob != *oa) {
            // First instant in (a, b] with the new offset.
            std::int64_t lo = a;
            std::int64_t hi = b;
            while (hi - lo > 1) {
                const std::int64_t mid = lo + (hi - lo) / 2;
                if (offset_at(zone, mid) != oa) {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            span.transitions.push_back(hi);
            if (std::find(span.offsets.begin(), span.offsets.end(), *ob) == span.offsets.end()) {
                span.offsets.push_back(*ob);
            }
        }
        a = b;
        oa = ob;
    }
    return span;
}

// The first instant in [from, from + kLookAheadDays] at which `w` holds. Whether a window holds
// changes only where the wall clock reaches its start (each instant that shows the start time:
// none in a spring-forward gap, two in a fall-back overlap) or where the offset changes (the wall
// clock jumps into the window), so those instants are the only candidates.
std::optional<std::int64_t> next_open_of(const Window& w, const UtcOffsetFn& offset_at,
                                         std::int64_t from) {
    const auto now_inside = in_window(w, offset_at, from);
    if (!now_inside) return std::nullopt;
    if (*now_inside) return from;
    const std::int64_t horizon = from + kLookAheadDays * kDay;
    const ZoneSpan span = scan_zone(w.zone, offset_at, from - kDay, horizon + kDay);
    if (span.offsets.empty()) return std::nullopt;

    std::optional<std::int64_t> best;
    const auto consider = [&](std::int64_t candidate) {
        if (candidate < from || candidate > horizon || (best && candidate >= *best)) return;
        if (in_window(w, offset_at, candidate) == true) best = candidate;
    };
    for (const std::int64_t t : span.transitions) consider(t);
    const auto [min_off, max_off] = std::minmax_element(span.offsets.begin(), span.offsets.end());
    const std::int64_t first_day = floor_div(from + *min_off, kDay) - 1;
    const std::int64_t last_day = floor_div(horizon + *max_off, kDay) + 1;
    for (std::int64_t day = first_day; day <= last_day; ++day) {
        if (!has_day(w, weekday_of(day))) continue;
        const std::int64_t local_start = day * kDay + std::int64_t{w.start_min} * 60;
        for (const std::int32_t offset : span.offsets) {
            const std::int64_t candidate = local_start - offset;
            if (offset_at(w.zone, candidate) == offset) consider(candidate);
        }
    }
    return best;
}

InstallDecision decide(const Rollout& rollout, const UtcOffsetFn& offset_at, bool check_ring,
                       bool ring_open, bool halted, std::optional<std::int64_t> deferred_until,
                       std::int64_t now, std::span<const std::string> groups,
                       std::string_view action) {
    InstallDecision d;
    if (halted) {
        d.cause = WaitCause::halted;
        d.wait_reason = "release halted";
        return d;
    }
    if (check_ring && !ring_open) {
        d.cause = WaitCause::ring_closed;
        d.wait_reason = "waiting for its rollout ring to open";
        return d;
    }
    const bool deadline_passed = rollout.deadline && now >= *rollout.deadline;

    std::optional<std::int64_t> until = deferred_until;
    if (until && rollout.deadline) until = std::min(*until, *rollout.deadline);
    const bool deferred = until && now < *until;
    const std::int64_t from = deferred ? *until : now;

    const std::vector<Window> windows = windows_for(rollout, groups);
    std::optional<std::int64_t> window_at = from;
    std::string unknown_zone;
    if (!windows.empty()) {
        window_at = next_window_open(windows, offset_at, from);
        for (const auto& w : windows) {
            if (!offset_at(w.zone, now)) {
                unknown_zone = w.zone;
                break;
            }
        }
    }
    if (!deferred && window_at == now) {
        d.allowed = true;
        return d;
    }
    if (deadline_passed) {
        d.allowed = true;
        d.by_deadline = true;
        return d;
    }

    d.next_check_at = window_at;
    if (rollout.deadline) {
        d.next_check_at =
            d.next_check_at ? std::min(*d.next_check_at, *rollout.deadline) : *rollout.deadline;
    }
    if (deferred) {
        d.cause = WaitCause::deferred;
        d.wait_reason = std::string(action) + " deferred until " + format_utc(*until);
    } else if (!window_at && !unknown_zone.empty()) {
        d.cause = WaitCause::unknown_zone;
        d.wait_reason = "maintenance window in unknown time zone \"" + unknown_zone + "\"";
    } else {
        d.cause = WaitCause::outside_window;
        d.wait_reason = "outside maintenance window";
        if (window_at) d.wait_reason += ", next opens " + format_utc(*window_at);
    }
    if (rollout.deadline) d.wait_reason += " (deadline " + format_utc(*rollout.deadline) + ")";
    return d;
}

}  // namespace

std::uint32_t fleet_bucket(std::string_view device_id) {
    const crypto::Sha256 digest = crypto::sha256(crypto::as_bytes(device_id));
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < 8; ++i) value = (value << 8) | digest[i];
    return static_cast<std::uint32_t>(value % kBasisPoints);
}

std::optional<std::size_t> ring_of(const Rollout& rollout, std::string_view device_id,
                                   std::span<const std::string> groups) {
    std::optional<std::uint32_t> bucket;  // hashed only if a ring selects by percentage
    for (std::size_t i = 0; i < rollout.rings.size(); ++i) {
        const Ring& ring = rollout.rings[i];
        for (const auto& g : groups) {
            if (std::find(ring.groups.begin(), ring.groups.end(), g) != ring.groups.end()) return i;
        }
        if (std::find(ring.devices.begin(), ring.devices.end(), device_id) != ring.devices.end()) {
            return i;
        }
        if (ring.fleet_bp > 0) {
            if (!bucket) bucket = fleet_bucket(device_id);
            if (*bucket < ring.fleet_bp) return i;
        }
    }
    return std::nullopt;
}

RingProgress evaluate_rings(const Rollout& rollout, std::span<const EndpointFacts> endpoints,
                            std::int64_t published_at, std::int64_t now,
                            std::span<const std::int64_t> opened_at) {
    const std::size_t total = rollout.rings.size() + 1;
    RingProgress p;
    p.rings.resize(total);
    std::vector<std::vector<std::int64_t>> effective_times(total);
    std::vector<std::size_t> stale_failed(total, 0);
    for (std::size_t k = 0; k < total; ++k) {
        p.rings[k].name =
            k < rollout.rings.size() ? rollout.rings[k].name : std::string(kRestRingName);
    }
    for (const auto& e : endpoints) {
        const std::size_t k = ring_of(rollout, e.device_id, e.groups).value_or(total - 1);
        RingStatus& s = p.rings[k];
        ++s.members;
        if (e.reachable) ++s.reachable;
        if (e.reachable && e.state == State::effective) {
            ++s.effective;
            effective_times[k].push_back(e.entered_at);
        }
        if (e.state == State::failed && e.failed_phase != Phase::download) {
            ++s.failed;
            if (!e.reachable) ++stale_failed[k];
        }
    }
    for (std::size_t k = 0; k < total; ++k) {
        RingStatus& s = p.rings[k];
        const std::uint64_t bp = success_bp_of(rollout, k);
        s.needed = static_cast<std::size_t>((bp * s.reachable + kBasisPoints - 1) / kBasisPoints);
        const std::size_t judged = s.reachable + stale_failed[k];
        s.failure_bp =
            judged == 0 ? 0 : static_cast<std::uint32_t>(s.failed * kBasisPoints / judged);
    }

    // Rings open in order: each one once its predecessor succeeded and soaked, or when the caller
    // has already announced it open.
    const auto latched = [&](std::size_t k) -> std::optional<std::int64_t> {
        if (k < opened_at.size()) return opened_at[k];
        return std::nullopt;
    };
    p.rings[0].open = true;
    p.rings[0].opened_at = latched(0).value_or(published_at);
    p.open_count = 1;
    for (std::size_t k = 0; k + 1 < total && k < p.open_count; ++k) {
        RingStatus& s = p.rings[k];
        s.succeeded_at =
            success_time(s, success_bp_of(rollout, k), effective_times[k], *s.opened_at, now);
        std::optional<std::int64_t> opens_at;
        if (s.succeeded_at) opens_at = *s.succeeded_at + rollout.rings[k].soak_s;
        RingStatus& next = p.rings[k + 1];
        if (const auto announced = latched(k + 1)) {
            next.opened_at = announced;
        } else if (opens_at && *opens_at <= now) {
            next.opened_at = opens_at;
        } else {
            if (opens_at) {
                p.next_open_at = opens_at;
                p.waiting_for = "ring " + s.name + " soaking until " + format_utc(*opens_at);
            } else if (s.members > 0 && s.reachable == 0) {
                p.waiting_for = "ring " + s.name + ": no reachable endpoint";
            } else {
                p.waiting_for = "ring " + s.name + ": " + std::to_string(s.effective) + " of " +
                                std::to_string(s.reachable) + " reachable effective, " +
                                std::to_string(s.needed) + " needed";
            }
            break;
        }
        next.open = true;
        p.open_count = k + 2;
    }

    if (rollout.deadline && p.open_count < total) {
        if (now >= *rollout.deadline) {
            p.deadline_passed = true;
            for (std::size_t k = p.open_count; k < total; ++k) {
                p.rings[k].open = true;
                p.rings[k].opened_at = std::max(*rollout.deadline, published_at);
            }
            p.open_count = total;
            p.next_open_at.reset();
            p.waiting_for.clear();
        } else {
            p.next_open_at =
                std::min(p.next_open_at.value_or(*rollout.deadline), *rollout.deadline);
        }
    } else if (rollout.deadline && now >= *rollout.deadline) {
        p.deadline_passed = true;
    }
    p.current = p.open_count - 1;

    for (std::size_t k = 0; k < p.open_count; ++k) {
        const RingStatus& s = p.rings[k];
        const std::uint64_t judged = s.reachable + stale_failed[k];
        const std::uint64_t max_bp = max_failure_bp_of(rollout, k);
        if (judged > 0 && std::uint64_t{s.failed} * kBasisPoints > max_bp * judged) {
            p.halted = true;
            p.halted_ring = k;
            p.halt_reason = "ring " + s.name + ": failure rate " + format_bp(s.failure_bp) + " (" +
                            std::to_string(s.failed) + " of " + std::to_string(judged) + ") over " +
                            format_bp(max_bp);
            p.next_open_at.reset();
            p.waiting_for.clear();
            break;
        }
    }
    return p;
}

std::string_view to_string(WaitCause cause) {
    switch (cause) {
        case WaitCause::none:
            return "none";
        case WaitCause::halted:
            return "halted";
        case WaitCause::ring_closed:
            return "ring_closed";
        case WaitCause::deferred:
            return "deferred";
        case WaitCause::outside_window:
            return "outside_window";
        case WaitCause::unknown_zone:
            return "unknown_zone";
    }
    return "unknown";
}

InstallDecision may_install(const Rollout& rollout, const UtcOffsetFn& offsets, bool ring_open,
                            bool halted, std::optional<std::int64_t> deferred_until,
                            std::int64_t now, std::span<const std::string> groups) {
    return decide(rollout, offsets, true, ring_open, halted, deferred_until, now, groups,
                  "install");
}

InstallDecision may_reboot(const Rollout& rollout, const UtcOffsetFn& offsets, bool halted,
                           std::optional<std::int64_t> deferred_until, std::int64_t now,
                           std::span<const std::string> groups) {
    return decide(rollout, offsets, false, true, halted, deferred_until, now, groups, "reboot");
}

EndpointVerdict endpoint_verdict(const Rollout* rollout, const UtcOffsetFn& offsets,
                                 std::optional<std::uint32_t> open_rings, bool halted,
                                 std::optional<std::int64_t> deferred_until, std::int64_t now,
                                 std::string_view device_id, std::span<const std::string> groups) {
    static const Rollout kNoRollout;
    const Rollout& r = rollout ? *rollout : kNoRollout;
    EndpointVerdict v;
    v.ring = ring_of(r, device_id, groups).value_or(r.rings.size());
    v.ring_name = v.ring < r.rings.size() ? r.rings[v.ring].name : std::string(kRestRingName);
    const bool deadline_passed = r.deadline && now >= *r.deadline;
    const bool ring_open = !open_rings || v.ring < *open_rings || deadline_passed;
    v.install = may_install(r, offsets, ring_open, halted, deferred_until, now, groups);
    if (v.install.cause == WaitCause::ring_closed) {
        v.install.wait_reason = "waiting for rollout ring " + v.ring_name + " to open";
    }
    v.reboot = may_reboot(r, offsets, halted, deferred_until, now, groups);
    return v;
}

std::int64_t clamp_deferral(const Rollout& rollout, std::int64_t requested_until) {
    return rollout.deadline ? std::min(requested_until, *rollout.deadline) : requested_until;
}

std::optional<bool> in_window(const Window& w, const UtcOffsetFn& offsets, std::int64_t at) {
    const auto offset = offsets(w.zone, at);
    if (!offset) return std::nullopt;
    const std::int64_t local = at + *offset;
    const std::int64_t day = floor_div(local, kDay);
    const std::int64_t second = local - day * kDay;
    const int weekday = weekday_of(day);
    const std::int64_t start = std::int64_t{w.start_min} * 60;
    const std::int64_t end = std::int64_t{w.end_min} * 60;
    if (start < end) return has_day(w, weekday) && second >= start && second < end;
    // Crosses midnight: the evening part on a listed day, the morning part on the day after one.
    return (has_day(w, weekday) && second >= start) ||
           (has_day(w, (weekday + 6) % 7) && second < end);
}

std::vector<Window> windows_for(const Rollout& rollout, std::span<const std::string> groups) {
    std::vector<Window> own;
    std::vector<Window> any;
    for (const auto& w : rollout.windows) {
        if (w.group == kAnyGroup) {
            any.push_back(w);
        } else if (std::find(groups.begin(), groups.end(), w.group) != groups.end()) {
            own.push_back(w);
        }
    }
    return own.empty() ? any : own;
}

std::optional<std::int64_t> next_window_open(std::span<const Window> windows,
                                             const UtcOffsetFn& offsets, std::int64_t from) {
    std::optional<std::int64_t> best;
    for (const auto& w : windows) {
        const auto at = next_open_of(w, offsets, from);
        if (at && (!best || *at < *best)) best = at;
        if (best == from) break;
    }
    return best;
}

std::string format_utc(std::int64_t at) {
    using namespace std::chrono;
    const std::int64_t day = floor_div(at, kDay);
    const std::int64_t second = at - day * kDay;
    const year_month_day date{sys_days{days{day}}};
    char text[48];
    std::snprintf(text, sizeof text, "%04d-%02u-%02uT%02d:%02d:%02dZ",
                  static_cast<int>(date.year()), static_cast<unsigned>(date.month()),
                  static_cast<unsigned>(date.day()), static_cast<int>(second / 3600),
                  static_cast<int>(second / 60 % 60), static_cast<int>(second % 60));
    return text;
}

namespace {

// Digits only, no sign, at most 12 of them (enough for any time we accept, never overflows).
std::optional<std::int64_t> parse_digits(std::string_view text) {
    if (text.empty() || text.size() > 12) return std::nullopt;
    std::int64_t v = 0;
    for (const char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + (c - '0');
    }
    return v;
}

std::optional<std::int64_t> parse_iso_utc(std::string_view t) {
    // YYYY-MM-DDTHH:MM[:SS]Z
    if (t.size() != 17 && t.size() != 20) return std::nullopt;
    if (t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' || t.back() != 'Z') {
        return std::nullopt;
    }
    if (t.size() == 20 && t[16] != ':') return std::nullopt;
    const auto y = parse_digits(t.substr(0, 4));
    const auto mo = parse_digits(t.substr(5, 2));
    const auto d = parse_digits(t.substr(8, 2));
    const auto h = parse_digits(t.substr(11, 2));
    const auto mi = parse_digits(t.substr(14, 2));
    const auto s = t.size() == 20 ? parse_digits(t.substr(17, 2)) : std::optional<std::int64_t>(0);
    if (!y || !mo || !d || !h || !mi || !s || *h > 23 || *mi > 59 || *s > 59) return std::nullopt;
    using namespace std::chrono;
    const year_month_day date{year{static_cast<int>(*y)}, month{static_cast<unsigned>(*mo)},
                              day{static_cast<unsigned>(*d)}};
    if (!date.ok()) return std::nullopt;
    const std::int64_t days_since_epoch = sys_days{date}.time_since_epoch().count();
    return days_since_epoch * kDay + *h * 3600 + *mi * 60 + *s;
}

}  // namespace

Result<std::int64_t> parse_time_spec(std::string_view text, std::int64_t now) {
    constexpr std::int64_t kLatest = 253402300799;  // 9999-12-31T23:59:59Z
    std::optional<std::int64_t> at;
    if (text == "now") {
        at = now;
    } else if (!text.empty() && text.front() == '+' && text.size() >= 3) {
        const auto n = parse_digits(text.substr(1, text.size() - 2));
        std::int64_t unit = 0;
        switch (text.back()) {
            case 's':
                unit = 1;
                break;
            case 'm':
                unit = 60;
                break;
            case 'h':
                unit = 3600;
                break;
            case 'd':
                unit = kDay;
                break;
            default:
                break;
        }
        if (n && unit != 0 && *n <= kLatest / unit) at = now + *n * unit;
    } else if (text.find('T') != std::string_view::npos) {
        at = parse_iso_utc(text);
    } else {
        at = parse_digits(text);
    }
    if (!at || *at < 0 || *at > kLatest) {
        return fail(Errc::invalid_argument,
                    "'" + std::string(text.substr(0, 40)) +
                        "' is not a time: give unix seconds, UTC like 2025-03-09T07:00:00Z, or "
                        "+N followed by s, m, h or d (from now)");
    }
    return *at;
}

}  // namespace patchswarm::core
