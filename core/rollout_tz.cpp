#include "core/rollout_tz.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <limits>
#include <tuple>

namespace patchswarm::core {

namespace {

constexpr std::int64_t kDay = 86400;
// RFC 8536 section 3.2: offsets outside this range are not valid local time types.
constexpr std::int32_t kMinUtcOffset = -89999;
constexpr std::int32_t kMaxUtcOffset = 93599;

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
    return a / b - ((a % b != 0) && ((a < 0) != (b < 0)) ? 1 : 0);
}

// --- POSIX TZ strings --------------------------------------------------------------------------

class PosixParser {
  public:
    explicit PosixParser(std::string_view text) : text_(text) {}

    bool done() const { return pos_ == text_.size(); }
    bool peek(char c) const { return pos_ < text_.size() && text_[pos_] == c; }
    bool eat(char c) {
        if (!peek(c)) return false;
        ++pos_;
        return true;
    }

    // "EST" (3+ letters) or "<+0530>" (quoted: letters, digits, '+', '-').
    bool name() {
        if (eat('<')) {
            const std::size_t start = pos_;
            while (pos_ < text_.size() && is_quoted_char(text_[pos_])) ++pos_;
            const std::size_t len = pos_ - start;
            return len >= 1 && eat('>');
        }
        const std::size_t start = pos_;
        while (pos_ < text_.size() && is_alpha(text_[pos_])) ++pos_;
        return pos_ - start >= 3;
    }

    // [+-]hh[:mm[:ss]] with hh <= max_hours; the value in seconds, sign applied.
    std::optional<std::int32_t> hms(int max_hours) {
        int sign = 1;
        if (eat('-')) {
            sign = -1;
        } else {
            eat('+');
        }
        auto hours = number(3);
        if (!hours || *hours > max_hours) return std::nullopt;
        std::int32_t value = *hours * 3600;
        if (eat(':')) {
            auto minutes = number(2);
            if (!minutes || *minutes > 59) return std::nullopt;
            value += *minutes * 60;
            if (eat(':')) {
                auto seconds = number(2);
                if (!seconds || *seconds > 59) return std::nullopt;
                value += *seconds;
            }
        }
        return sign * value;
    }

    // "Jn", "n" or "Mm.w.d", then an optional "/time".
    std::optional<PosixDate> date() {
        PosixDate d;
        if (eat('J')) {
            auto n = number(3);
            if (!n || *n < 1 || *n > 365) return std::nullopt;
            d.kind = PosixDate::Kind::julian_no_leap;
            d.day = *n;
        } else if (eat('M')) {
            auto month = number(2);
            if (!month || *month < 1 || *month > 12 || !eat('.')) return std::nullopt;
            auto week = number(1);
            if (!week || *week < 1 || *week > 5 || !eat('.')) return std::nullopt;
            auto weekday = number(1);
            if (!weekday || *weekday > 6) return std::nullopt;
            d.kind = PosixDate::Kind::month_week_day;
            d.month = *month;
            d.week = *week;
            d.day = *weekday;
        } else {
            auto n = number(3);
            if (!n || *n > 365) return std::nullopt;
            d.kind = PosixDate::Kind::zero_based;
            d.day = *n;
        }
        if (eat('/')) {
            auto time = hms(167);
            if (!time) return std::nullopt;
            d.time_s = *time;
        }
        return d;
    }

  private:
    static bool is_alpha(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
    static bool is_digit(char c) { return c >= '0' && c <= '9'; }
    static bool is_quoted_char(char c) {
        return is_alpha(c) || is_digit(c) || c == '+' || c == '-';
    }

    std::optional<int> number(std::size_t max_digits) {
        const std::size_t start = pos_;
        int value = 0;
        while (pos_ < text_.size() && is_digit(text_[pos_]) && pos_ - start < max_digits) {
            value = value * 10 + (text_[pos_++] - '0');
        }
        if (pos_ == start) return std::nullopt;
        return value;
    }

    std::string_view text_;
    std::size_t pos_ = 0;
};

// Unix day (days since 1970-01-01) on which a rule date falls in `year`.
std::int64_t rule_day(const PosixDate& d, int year) {
    using namespace std::chrono;
    const auto y = std::chrono::year{year};
    const std::int64_t jan1 = sys_days{y / January / 1}.time_since_epoch().count();
    switch (d.kind) {
        case PosixDate::Kind::julian_no_leap:
            return jan1 + d.day - 1 + ((y.is_leap() && d.day >= 60) ? 1 : 0);
        case PosixDate::Kind::zero_based:
            return jan1 + d.day;
        case PosixDate::Kind::month_week_day: {
            const auto m = month{static_cast<unsigned>(d.month)};
            const sys_days first{y / m / 1};
            const unsigned first_weekday = weekday{first}.c_encoding();  // 0 = Sunday
            const unsigned to_weekday = (static_cast<unsigned>(d.day) + 7 - first_weekday) % 7;
            unsigned day_of_month = 1 + to_weekday + 7 * static_cast<unsigned>(d.week - 1);
            const unsigned last_day =
                static_cast<unsigned>(year_month_day_last{y / m / last}.day());
            while (day_of_month > last_day) day_of_month -= 7;
            return first.time_since_epoch().count() + day_of_month - 1;
        }
    }
    return jan1;
}

int utc_year_of(std::int64_t at) {
    using namespace std::chrono;
    const sys_days day{days{floor_div(at, kDay)}};
    return static_cast<int>(year_month_day{day}.year());
}

}  // namespace

Result<PosixTz> parse_posix_tz(std::string_view text) {
    const auto bad = [&](std::string_view why) {
        return fail(Errc::malformed,
                    "time zone rule \"" + std::string(text) + "\": " + std::string(why));
    };
    if (text.size() > kMaxPosixTzBytes) return fail(Errc::too_large, "time zone rule too long");
    PosixParser p(text);
    PosixTz tz;
    if (!p.name()) return bad("expected a zone abbreviation");
    auto std_offset = p.hms(24);
    if (!std_offset) return bad("expected an offset");
    tz.std_offset = -*std_offset;  // POSIX counts hours west of UTC
    if (p.done()) return tz;
    if (!p.name()) return bad("expected a daylight-saving abbreviation");
    PosixTz::Dst dst;
    dst.offset = tz.std_offset + 3600;
    if (!p.peek(',')) {
        auto dst_offset = p.hms(24);
        if (!dst_offset) return bad("expected a daylight-saving offset");
        dst.offset = -*dst_offset;
    }
    if (!p.eat(',')) return bad("daylight saving without a rule");
    auto start = p.date();
    if (!start || !p.eat(',')) return bad("bad start of daylight saving");
    auto end = p.date();
    if (!end || !p.done()) return bad("bad end of daylight saving");
    dst.start = *start;
    dst.end = *end;
    tz.dst = dst;
    return tz;
}

std::int32_t PosixTz::utc_offset(std::int64_t at) const {
    if (!dst) return std_offset;
    // The changes of the previous, this and the next (UTC) year bracket `at` whatever the
    // offsets; the last change at or before `at` decides.
    struct Change {
        std::int64_t at;
        int year;
        int order;  // start before end within one year, for equal instants
        bool to_dst;
    };
    std::array<Change, 6> changes{};
    const int year = utc_year_of(at);
    std::size_t n = 0;
    for (int y = year - 1; y <= year + 1; ++y) {
        changes[n++] = {rule_day(dst->start, y) * kDay + dst->start.time_s - std_offset, y, 0,
                        true};
        changes[n++] = {rule_day(dst->end, y) * kDay + dst->end.time_s - dst->offset, y, 1, false};
    }
    std::sort(changes.begin(), changes.end(), [](const Change& a, const Change& b) {
        return std::tie(a.at, a.year, a.order) < std::tie(b.at, b.year, b.order);
    });
    bool in_dst = false;
    for (const auto& c : changes) {
        if (c.at > at) break;
        in_dst = c.to_dst;
    }
    return in_dst ? dst->offset : std_offset;
}

std::int32_t TimeZone::utc_offset(std::int64_t at) const {
    if (transitions_.empty() || at < transitions_.front()) {
        if (transitions_.empty() && footer_) return footer_->utc_offset(at);
        return offsets_.front();
    }
    if (footer_ && at >= transitions_.back()) return footer_->utc_offset(at);
    const auto after = std::upper_bound(transitions_.begin(), transitions_.end(), at);
    const auto index = static_cast<std::size_t>(after - transitions_.begin()) - 1;
    return offsets_[type_of_[index]];
}

Result<TimeZone> parse_tzif(std::span<const std::uint8_t> bytes) {
    if (bytes.size() > kMaxTzifBytes) return fail(Errc::too_large, "TZif file too large");
    std::size_t pos = 0;
    const auto bad = [](std::string why) { return fail(Errc::malformed, "TZif: " + why); };
    const auto u32 = [&](std::size_t at) {
        return (std::uint32_t{bytes[at]} << 24) | (std::uint32_t{bytes[at + 1]} << 16) |
               (std::uint32_t{bytes[at + 2]} << 8) | std::uint32_t{bytes[at + 3]};
    };
    const auto u64 = [&](std::size_t at) {
        return (std::uint64_t{u32(at)} << 32) | std::uint64_t{u32(at + 4)};
    };

    struct Header {
        char version;
        std::uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
    };
    const auto read_header = [&]() -> Result<Header> {
        if (bytes.size() - pos < 44) return bad("truncated header");
        if (bytes[pos] != 'T' || bytes[pos + 1] != 'Z' || bytes[pos + 2] != 'i' ||
            bytes[pos + 3] != 'f') {
            return bad("not a TZif file");
        }
        Header h{static_cast<char>(bytes[pos + 4]),
                 u32(pos + 20),
                 u32(pos + 24),
                 u32(pos + 28),
                 u32(pos + 32),
                 u32(pos + 36),
                 u32(pos + 40)};
        pos += 44;
        if (h.version != 0 && (h.version < '2' || h.version > '4')) {
            return bad("unknown version");
        }
        if (h.typecnt == 0 || h.typecnt > 256 || h.charcnt == 0 ||
            (h.isutcnt != 0 && h.isutcnt != h.typecnt) ||
            (h.isstdcnt != 0 && h.isstdcnt != h.typecnt)) {
            return bad("inconsistent counts");
        }
        if (h.timecnt > kMaxTzifTransitions) {
            return fail(Errc::too_large, "TZif: too many transitions");
        }
        // Leap-second ("right/") zones count TAI-like seconds; windows are wall-clock rules.
        if (h.leapcnt != 0) return bad("zones with leap seconds are not supported");
        return h;
    };
    const auto block_size = [](const Header& h, std::size_t time_size) {
        return std::size_t{h.timecnt} * time_size + h.timecnt + std::size_t{h.typecnt} * 6 +
               h.charcnt + std::size_t{h.leapcnt} * (time_size + 4) + h.isstdcnt + h.isutcnt;
    };

    auto first = read_header();
    if (!first) return std::unexpected(first.error());
    const std::size_t v1_size = block_size(*first, 4);
    if (bytes.size() - pos < v1_size) return bad("truncated data");
    Header h = *first;
    std::size_t time_size = 4;
    if (first->version >= '2') {
        pos += v1_size;  // the 32-bit block is only for old readers
        auto second = read_header();
        if (!second) return std::unexpected(second.error());
        h = *second;
        time_size = 8;
        if (bytes.size() - pos < block_size(h, 8)) return bad("truncated data");
    }

    TimeZone tz;
    tz.transitions_.reserve(h.timecnt);
    for (std::uint32_t i = 0; i < h.timecnt; ++i) {
        const std::size_t at = pos + i * time_size;
        const std::int64_t t = time_size == 8
                                   ? static_cast<std::int64_t>(u64(at))
                                   : static_cast<std::int64_t>(static_cast<std::int32_t>(u32(at)));
        if (!tz.transitions_.empty() && t <= tz.transitions_.back()) {
            return bad("transitions not in ascending order");
        }
        tz.transitions_.push_back(t);
    }
    pos += std::size_t{h.timecnt} * time_size;
    for (std::uint32_t i = 0; i < h.timecnt; ++i) {
        if (bytes[pos + i] >= h.typecnt) return bad("transition type out of range");
        tz.type_of_.push_back(bytes[pos + i]);
    }
    pos += h.timecnt;
    for (std::uint32_t i = 0; i < h.typecnt; ++i) {
        const auto offset = static_cast<std::int32_t>(u32(pos + i * 6));
        if (offset < kMinUtcOffset || offset > kMaxUtcOffset) return bad("UTC offset out of range");
        if (bytes[pos + i * 6 + 4] > 1 || bytes[pos + i * 6 + 5] >= h.charcnt) {
            return bad("bad local time type");
        }
        tz.offsets_.push_back(offset);
    }
    pos += block_size(h, time_size) - std::size_t{h.timecnt} * (time_size + 1);

    if (time_size == 8) {
        // Footer: "\n" POSIX-TZ "\n"; an empty rule means "no rule beyond the last transition".
        if (bytes.size() - pos < 2 || bytes[pos] != '\n') return bad("missing footer");
        const auto* begin = reinterpret_cast<const char*>(bytes.data()) + pos + 1;
        const std::string_view rest(begin, bytes.size() - pos - 1);
        const std::size_t newline = rest.find('\n');
        if (newline == std::string_view::npos) return bad("unterminated footer");
        if (newline != 0) {
            auto rule = parse_posix_tz(rest.substr(0, newline));
            if (!rule) return bad(rule.error().message);
            tz.footer_ = *rule;
        }
    }
    return tz;
}

}  // namespace patchswarm::core
