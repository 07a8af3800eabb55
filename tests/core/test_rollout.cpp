// Rollout policy: rings, ring opening and auto-halt (seeder side), install/reboot decisions with
// maintenance windows, deferral and deadline (endpoint side), and the time zone rules behind the
// windows. Every test uses fixed unix timestamps; nothing sleeps or reads the clock.
//
// The tests use zone rules written out in this file or fixed offsets (no files); the system zone
// database (io::ZoneInfo) is tested in tests/io/test_zoneinfo.cpp.
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/deadline_policy.hpp"
#include "core/rollout.hpp"
#include "crypto/crypto.hpp"

using namespace patchswarm;
using namespace patchswarm::core;

namespace {

constexpr std::int64_t kHour = 3600;
constexpr std::int64_t kDay = 86400;

// Unix seconds of a UTC calendar time.
std::int64_t utc(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0) {
    using namespace std::chrono;
    const auto days_since_epoch = sys_days{year{y} / month{mo} / day{d}}.time_since_epoch().count();
    return std::int64_t{days_since_epoch} * kDay + h * kHour + mi * 60 + s;
}

// The local time h:00 on the n-th (n = 0: the last) Sunday of a month, as unix seconds, in a
// zone `offset` seconds east of UTC.
std::int64_t sunday(int y, unsigned mo, unsigned n, int h, std::int64_t offset) {
    using namespace std::chrono;
    const sys_days d = n > 0 ? sys_days{year{y} / month{mo} / Sunday[n]}
                             : sys_days{year{y} / month{mo} / Sunday[last]};
    return std::int64_t{d.time_since_epoch().count()} * kDay + h * kHour - offset;
}

int utc_year(std::int64_t at) {
    using namespace std::chrono;
    const sys_days day{days{at >= 0 ? at / kDay : (at + 1) / kDay - 1}};
    return static_cast<int>(year_month_day{day}.year());
}

// The five zones the window tests use, with their current rules written out: DST without a zone
// database (io::ZoneInfo, tested in tests/io/test_zoneinfo.cpp against the C library).
const UtcOffsetFn& posix() {
    static const UtcOffsetFn zones = [](std::string_view zone,
                                        std::int64_t at) -> std::optional<std::int32_t> {
        const int y = utc_year(at);
        const auto between = [at](std::int64_t from, std::int64_t to) {
            return at >= from && at < to;
        };
        if (zone == "America/New_York") {  // 2nd Sunday of March 02:00 to 1st of November 02:00
            return between(sunday(y, 3, 2, 2, -5 * kHour), sunday(y, 11, 1, 2, -4 * kHour))
                       ? -4 * 3600
                       : -5 * 3600;
        }
        if (zone == "Europe/Berlin") {  // last Sunday of March to of October, 01:00 UTC
            return between(sunday(y, 3, 0, 1, 0), sunday(y, 10, 0, 1, 0)) ? 2 * 3600 : 3600;
        }
        if (zone == "Asia/Kolkata") return 5 * 3600 + 1800;
        if (zone == "Australia/Lord_Howe") {  // +10:30, +11 from 1st Sunday of October to of April
            const bool standard =
                between(sunday(y, 4, 1, 2, 11 * kHour), sunday(y, 10, 1, 2, 10 * kHour + 1800));
            return standard ? 10 * 3600 + 1800 : 11 * 3600;
        }
        if (zone == "UTC") return 0;
        return std::nullopt;
    };
    return zones;
}

constexpr std::uint8_t kMon = 1, kTue = 2, kWed = 4, kThu = 8, kFri = 16, kSat = 32, kSun = 64;

Ring ring(std::string name, std::vector<std::string> groups, std::vector<std::string> devices,
          std::uint32_t fleet_bp, std::uint32_t success_bp, std::int64_t soak_s,
          std::uint32_t max_failure_bp) {
    return Ring{std::move(name), std::move(groups), std::move(devices), fleet_bp, success_bp,
                soak_s,          max_failure_bp};
}

std::string device(int n) {
    char text[33];
    std::snprintf(text, sizeof text, "%032x", n);
    return text;
}

EndpointFacts endpoint(std::string id, State state, std::int64_t entered_at = 0,
                       bool reachable = true, std::vector<std::string> groups = {}) {
    EndpointFacts e;
    e.device_id = std::move(id);
    e.groups = std::move(groups);
    e.state = state;
    e.entered_at = entered_at;
    e.reachable = reachable;
    return e;
}

constexpr std::int64_t kPublished = 1'763'800'000;

// canary: five named devices, 80 % effective, soak 1 h, halt over 30 % failures;
// early: group "early", 50 %, soak 10 min, halt over 10 %; then everyone else.
Rollout staged() {
    Rollout r;
    r.rings = {ring("canary", {}, {device(1), device(2), device(3), device(4), device(5)}, 0, 8000,
                    kHour, 3000),
               ring("early", {"early"}, {}, 0, 5000, 600, 1000)};
    return r;
}

const std::vector<std::string> kNoGroups;

}  // namespace

// --- rings -----------------------------------------------------------------------------------

TEST_CASE("the fleet bucket is the first 8 bytes of SHA-256 of the device id, mod 10000",
          "[core]") {
    crypto::init();
    // Computed independently: int.from_bytes(sha256(id)[:8], 'big') % 10000.
    CHECK(fleet_bucket("0123456789abcdef0123456789abcdef") == 4022);
    CHECK(fleet_bucket("device-a") == 5536);
    // Roughly uniform: about 1 % of 20000 devices fall below bucket 100.
    int canaries = 0;
    for (int i = 0; i < 20000; ++i) canaries += fleet_bucket(device(i)) < 100 ? 1 : 0;
    CHECK(canaries > 140);
    CHECK(canaries < 260);
}

TEST_CASE("an endpoint belongs to the first ring that selects it by group, id or percentage",
          "[core]") {
    crypto::init();
    Rollout r;
    r.rings = {ring("by-id", {}, {"0123456789abcdef0123456789abcdef"}, 0, 9500, 0, 10000),
               ring("by-group", {"it", "helpdesk"}, {}, 0, 9500, 0, 10000),
               ring("by-percent", {}, {}, 5000, 9500, 0, 10000)};
    const std::vector<std::string> it{"finance", "it"};
    // Device listed by id and also in group "it": the earlier ring wins.
    CHECK(ring_of(r, "0123456789abcdef0123456789abcdef", it) == 0);
    CHECK(ring_of(r, device(7), it) == 1);
    CHECK(ring_of(r, device(7), std::vector<std::string>{"helpdesk"}) == 1);

    // By percentage: exactly the devices whose bucket is below 50.00 %.
    int in_percent_ring = 0;
    int in_rest = 0;
    for (int i = 0; i < 400; ++i) {
        const auto k = ring_of(r, device(i), kNoGroups);
        if (fleet_bucket(device(i)) < 5000) {
            CHECK(k == 2);
            ++in_percent_ring;
        } else {
            CHECK_FALSE(k.has_value());  // the implicit last ring
            ++in_rest;
        }
    }
    CHECK(in_percent_ring > 150);
    CHECK(in_rest > 150);
}

TEST_CASE("ring membership by percentage is stable and cumulative across rings", "[core]") {
    crypto::init();
    Rollout r;
    r.rings = {ring("one", {}, {}, 100, 9500, 0, 10000), ring("ten", {}, {}, 1000, 9500, 0, 10000)};
    std::map<std::string, std::optional<std::size_t>> first;
    std::size_t ones = 0;
    std::size_t tens = 0;
    for (int i = 0; i < 5000; ++i) first[device(i)] = ring_of(r, device(i), kNoGroups);
    for (int pass = 0; pass < 2; ++pass) {
        for (int i = 0; i < 5000; ++i) {
            // Same device, same ring, whatever its groups or the order it is asked in.
            CHECK(ring_of(r, device(i), std::vector<std::string>{"x"}) == first[device(i)]);
        }
    }
    for (const auto& [id, k] : first) {
        ones += k == 0 ? 1 : 0;
        tens += k == 1 ? 1 : 0;
        if (k == 1) CHECK(fleet_bucket(id) >= 100);  // the 1 % are not counted again
    }
    CHECK(ones > 25);
    CHECK(ones < 80);
    CHECK(tens > 380);  // about 9 % of 5000
    CHECK(tens < 520);
}

TEST_CASE("ring 0 opens at publish and the next ring when the threshold was crossed plus soak",
          "[core]") {
    crypto::init();
    const Rollout r = staged();
    // 5 canaries, 80 % -> 4 needed. They become effective at +100, +250, +400, +900.
    std::vector<EndpointFacts> fleet{
        endpoint(device(1), State::effective, kPublished + 400),
        endpoint(device(2), State::effective, kPublished + 100),
        endpoint(device(3), State::downloading, kPublished + 5),
        endpoint(device(4), State::downloading, kPublished + 5),
        endpoint(device(5), State::effective, kPublished + 250),
        endpoint(device(10), State::announced, kPublished, true, {"early"}),
        endpoint(device(11), State::announced, kPublished, true, {"early"}),
        endpoint(device(20), State::announced, kPublished),
    };

    auto p = evaluate_rings(r, fleet, kPublished, kPublished + 500);
    REQUIRE(p.rings.size() == 3);
    CHECK(p.rings[0].name == "canary");
    CHECK(p.rings[2].name == kRestRingName);
    CHECK(p.open_count == 1);
    CHECK(p.current == 0);
    CHECK(p.is_open(0));
    CHECK_FALSE(p.is_open(1));
    CHECK(p.rings[0].opened_at == kPublished);
    CHECK(p.rings[0].members == 5);
    CHECK(p.rings[0].needed == 4);
    CHECK(p.rings[1].members == 2);
    CHECK(p.rings[2].members == 1);
    CHECK_FALSE(p.rings[0].succeeded_at.has_value());
    CHECK_FALSE(p.next_open_at.has_value());
    CHECK(p.waiting_for == "ring canary: 3 of 5 reachable effective, 4 needed");
    CHECK_FALSE(p.halted);

    fleet[2].state = State::effective;
    fleet[2].entered_at = kPublished + 900;
    // The count crossed 4 at +900 (the fourth earliest); the early ring opens one hour later.
    const std::int64_t opens = kPublished + 900 + kHour;
    p = evaluate_rings(r, fleet, kPublished, opens - 1);
    CHECK(p.rings[0].succeeded_at == kPublished + 900);
    CHECK(p.open_count == 1);
    CHECK(p.next_open_at == opens);
    CHECK(p.waiting_for == "ring canary soaking until " + format_utc(opens));

    p = evaluate_rings(r, fleet, kPublished, opens);
    CHECK(p.open_count == 2);
    CHECK(p.current == 1);
    CHECK(p.rings[1].open);
    CHECK(p.rings[1].opened_at == opens);
    CHECK_FALSE(p.rings[2].open);
    // The early ring (2 members, 50 % -> 1 needed) has nobody effective yet.
    CHECK(p.waiting_for == "ring early: 0 of 2 reachable effective, 1 needed");

    // One early endpoint effective before the ring even opened (clock skew): the crossing is
    // clamped to the ring's opening, so its 10-minute soak starts then.
    fleet[5].state = State::effective;
    fleet[5].entered_at = kPublished + 10;
    p = evaluate_rings(r, fleet, kPublished, opens + 599);
    CHECK(p.rings[1].succeeded_at == opens);
    CHECK(p.open_count == 2);
    CHECK(p.next_open_at == opens + 600);
    p = evaluate_rings(r, fleet, kPublished, opens + 600);
    CHECK(p.open_count == 3);
    CHECK(p.rings[2].opened_at == opens + 600);
    CHECK_FALSE(p.next_open_at.has_value());
    CHECK(p.waiting_for.empty());
}

TEST_CASE("stale endpoints count neither as reachable nor as effective", "[core]") {
    crypto::init();
    Rollout r = staged();
    r.rings[0].success_bp = 7500;
    std::vector<EndpointFacts> fleet{
        endpoint(device(1), State::effective, kPublished + 100),
        endpoint(device(2), State::effective, kPublished + 200),
        endpoint(device(3), State::effective, kPublished + 300),
        endpoint(device(4), State::downloading, kPublished),
        endpoint(device(5), State::downloading, kPublished, /*reachable=*/false),
    };
    // 4 reachable, 75 % -> 3 needed, reached at +300. Counting the stale one would need 4.
    auto p = evaluate_rings(r, fleet, kPublished, kPublished + 300 + kHour);
    CHECK(p.rings[0].reachable == 4);
    CHECK(p.rings[0].needed == 3);
    CHECK(p.rings[0].succeeded_at == kPublished + 300);
    CHECK(p.open_count == 2);

    // A stale endpoint's old "effective" is not evidence either.
    fleet[2].reachable = false;
    p = evaluate_rings(r, fleet, kPublished, kPublished + 300 + kHour);
    CHECK(p.rings[0].reachable == 3);
    CHECK(p.rings[0].effective == 2);
    CHECK(p.rings[0].needed == 3);
    CHECK(p.open_count == 1);

    // Every canary stale: no evidence, the ring does not succeed.
    for (auto& e : fleet) e.reachable = false;
    p = evaluate_rings(r, fleet, kPublished, kPublished + 30 * kDay);
    CHECK(p.open_count == 1);
    CHECK(p.waiting_for == "ring canary: no reachable endpoint");
}

TEST_CASE("a ring with no members succeeds when it opens, a latched ring stays open", "[core]") {
    crypto::init();
    const Rollout r = staged();
    // Nobody in canary or early: canary succeeds at publish, early opens after 1 h, the rest
    // 10 minutes after that.
    const std::vector<EndpointFacts> fleet{endpoint(device(20), State::announced, kPublished)};
    auto p = evaluate_rings(r, fleet, kPublished, kPublished + kHour + 600);
    CHECK(p.open_count == 3);
    CHECK(p.rings[1].opened_at == kPublished + kHour);
    CHECK(p.rings[2].opened_at == kPublished + kHour + 600);

    // The caller announced 2 rings open; a canary that comes back not effective cannot close
    // them, and the announced time counts for the soak of the ring after.
    const std::vector<EndpointFacts> regressed{
        endpoint(device(1), State::downloading, kPublished),
        endpoint(device(10), State::effective, kPublished + 2 * kHour, true, {"early"})};
    const std::vector<std::int64_t> announced{kPublished, kPublished + 3 * kHour};
    p = evaluate_rings(r, regressed, kPublished, kPublished + 3 * kHour + 599, announced);
    CHECK(p.open_count == 2);
    CHECK(p.rings[1].open);
    CHECK(p.rings[1].opened_at == kPublished + 3 * kHour);
    CHECK_FALSE(p.rings[0].succeeded_at.has_value());
    CHECK(p.rings[1].succeeded_at == kPublished + 3 * kHour);
    CHECK(p.next_open_at == kPublished + 3 * kHour + 600);
    p = evaluate_rings(r, regressed, kPublished, kPublished + 3 * kHour + 600, announced);
    CHECK(p.open_count == 3);
}

TEST_CASE("the release halts when an open ring's failure rate goes over its maximum", "[core]") {
    crypto::init();
    const Rollout r = staged();  // canary: halt over 30 %
    std::vector<EndpointFacts> fleet{
        endpoint(device(1), State::failed, kPublished + 100),
        endpoint(device(2), State::effective, kPublished + 100),
        endpoint(device(3), State::effective, kPublished + 100),
        endpoint(device(4), State::installing, kPublished + 100),
        endpoint(device(5), State::downloading, kPublished),
    };
    auto p = evaluate_rings(r, fleet, kPublished, kPublished + 200);
    CHECK(p.rings[0].failed == 1);
    CHECK(p.rings[0].failure_bp == 2000);
    CHECK_FALSE(p.halted);

    // 2 of 5 install failures: 40 % > 30 %.
    fleet[3].state = State::failed;
    p = evaluate_rings(r, fleet, kPublished, kPublished + 200);
    CHECK(p.halted);
    CHECK(p.halted_ring == 0);
    CHECK(p.halt_reason == "ring canary: failure rate 40.00% (2 of 5) over 30.00%");
    CHECK_FALSE(p.next_open_at.has_value());
    CHECK(p.waiting_for.empty());

    // Download failures are the network's fault, not the patch's.
    fleet[3].failed_phase = Phase::download;
    CHECK_FALSE(evaluate_rings(r, fleet, kPublished, kPublished + 200).halted);
    // A verify failure counts like an install failure.
    fleet[3].failed_phase = Phase::verify;
    CHECK(evaluate_rings(r, fleet, kPublished, kPublished + 200).halted);

    // A canary that failed and then went silent still counts (and joins the denominator).
    fleet[3].reachable = false;
    p = evaluate_rings(r, fleet, kPublished, kPublished + 200);
    CHECK(p.halted);
    CHECK(p.halt_reason == "ring canary: failure rate 40.00% (2 of 5) over 30.00%");
}

TEST_CASE("auto-halt triggers only above the rate and only in open rings", "[core]") {
    crypto::init();
    Rollout r;
    r.rings = {ring("canary", {"canary"}, {}, 0, 9000, 0, 3000)};
    std::vector<EndpointFacts> fleet;
    for (int i = 0; i < 10; ++i) {
        fleet.push_back(endpoint(device(i), i < 3 ? State::failed : State::effective,
                                 kPublished + 10, true, {"canary"}));
    }
    // Exactly 30 % is not over 30 %.
    auto p = evaluate_rings(r, fleet, kPublished, kPublished + 100);
    CHECK_FALSE(p.halted);
    fleet[3].state = State::failed;
    p = evaluate_rings(r, fleet, kPublished, kPublished + 100);
    CHECK(p.halted);
    CHECK(p.halt_reason == "ring canary: failure rate 40.00% (4 of 10) over 30.00%");

    // Failures in a ring that is not open yet (someone installed by hand) do not halt.
    Rollout later = staged();
    std::vector<EndpointFacts> early_failures{
        endpoint(device(1), State::downloading, kPublished),
        endpoint(device(10), State::failed, kPublished, true, {"early"}),
    };
    CHECK_FALSE(evaluate_rings(later, early_failures, kPublished, kPublished + 100).halted);

    // The implicit last ring uses the last ring's maximum (early: 10 %).
    Rollout open_all = staged();
    open_all.rings[0].success_bp = 0;
    open_all.rings[0].soak_s = 0;
    open_all.rings[1].success_bp = 0;
    open_all.rings[1].soak_s = 0;
    std::vector<EndpointFacts> rest;
    for (int i = 100; i < 110; ++i) {
        rest.push_back(endpoint(device(i), i < 102 ? State::failed : State::verified, kPublished));
    }
    p = evaluate_rings(open_all, rest, kPublished, kPublished);
    CHECK(p.open_count == 3);
    CHECK(p.halted);
    CHECK(p.halted_ring == 2);
    CHECK(p.halt_reason == "ring (everyone else): failure rate 20.00% (2 of 10) over 10.00%");
}

TEST_CASE("every ring opens at the deadline, unless the release is halted", "[core]") {
    crypto::init();
    Rollout r = staged();
    r.deadline = kPublished + 2 * kDay;
    std::vector<EndpointFacts> fleet{endpoint(device(1), State::downloading, kPublished),
                                     endpoint(device(2), State::downloading, kPublished)};
    auto p = evaluate_rings(r, fleet, kPublished, kPublished + kDay);
    CHECK(p.open_count == 1);
    CHECK(p.next_open_at == *r.deadline);
    CHECK_FALSE(p.deadline_passed);

    p = evaluate_rings(r, fleet, kPublished, *r.deadline);
    CHECK(p.deadline_passed);
    CHECK(p.open_count == 3);
    CHECK(p.rings[1].opened_at == *r.deadline);
    CHECK(p.rings[2].opened_at == *r.deadline);
    CHECK_FALSE(p.next_open_at.has_value());

    fleet[0].state = State::failed;
    p = evaluate_rings(r, fleet, kPublished, *r.deadline + 1);
    CHECK(p.halted);
    CHECK(p.halted_ring == 0);
}

TEST_CASE("an emergency schedule is data: no soak, no threshold, every ring open at once",
          "[core]") {
    crypto::init();
    Rollout normal = staged();
    Rollout emergency = staged();
    for (auto& ring : emergency.rings) {
        ring.success_bp = 0;
        ring.soak_s = 0;
    }
    const std::vector<EndpointFacts> fleet{
        endpoint(device(1), State::downloading, kPublished),
        endpoint(device(10), State::announced, kPublished, true, {"early"}),
        endpoint(device(20), State::announced, kPublished)};
    CHECK(evaluate_rings(normal, fleet, kPublished, kPublished).open_count == 1);
    const auto p = evaluate_rings(emergency, fleet, kPublished, kPublished);
    CHECK(p.open_count == 3);
    CHECK(p.rings[2].opened_at == kPublished);
    // A short soak instead: rings 10 minutes apart.
    for (auto& ring : emergency.rings) ring.soak_s = 600;
    CHECK(evaluate_rings(emergency, fleet, kPublished, kPublished + 599).open_count == 1);
    CHECK(evaluate_rings(emergency, fleet, kPublished, kPublished + 600).open_count == 2);
    CHECK(evaluate_rings(emergency, fleet, kPublished, kPublished + 1200).open_count == 3);
}

// --- windows -----------------------------------------------------------------------------------

TEST_CASE("windows follow each group's local time across zones", "[core]") {
    const Window ny{"finance-us", kMon | kTue | kWed | kThu | kFri, 22 * 60, 24 * 60,
                    "America/New_York"};
    const Window berlin{"finance-eu", kSat | kSun, 9 * 60, 17 * 60, "Europe/Berlin"};
    const Window kolkata{"ops-in", 0x7f, 2 * 60, 4 * 60, "Asia/Kolkata"};
    const Window lord_howe{"ops-au", 0x7f, 2 * 60, 3 * 60, "Australia/Lord_Howe"};

    // Monday 2025-11-24 22:30 EST is 2025-11-25 03:30 UTC.
    CHECK(in_window(ny, posix(), utc(2025, 11, 25, 3, 30)) == true);
    CHECK(in_window(ny, posix(), utc(2025, 11, 25, 2, 59)) == false);  // 21:59 EST
    CHECK(in_window(ny, posix(), utc(2025, 11, 25, 5, 0)) == false);   // 00:00 EST: ended
    // In July New York is UTC-4: 22:00 EDT is 02:00 UTC.
    CHECK(in_window(ny, posix(), utc(2025, 7, 15, 2, 0)) == true);
    CHECK(in_window(ny, posix(), utc(2025, 7, 15, 1, 59)) == false);

    // Saturday 2025-11-29 09:00 CET = 08:00 UTC; in summer 09:00 CEST = 07:00 UTC.
    CHECK(in_window(berlin, posix(), utc(2025, 11, 29, 8, 0)) == true);
    CHECK(in_window(berlin, posix(), utc(2025, 11, 29, 7, 59)) == false);
    CHECK(in_window(berlin, posix(), utc(2025, 7, 12, 7, 0)) == true);
    CHECK(in_window(berlin, posix(), utc(2025, 11, 28, 8, 0)) == false);  // Friday

    // Kolkata is UTC+5:30 all year: 02:00 IST = 20:30 UTC the day before.
    CHECK(in_window(kolkata, posix(), utc(2025, 11, 24, 20, 30)) == true);
    CHECK(in_window(kolkata, posix(), utc(2025, 11, 24, 20, 29)) == false);
    CHECK(in_window(kolkata, posix(), utc(2025, 11, 24, 22, 29)) == true);
    CHECK(in_window(kolkata, posix(), utc(2025, 11, 24, 22, 30)) == false);

    // Lord Howe: UTC+10:30 in winter (June), +11 in summer (January).
    CHECK(in_window(lord_howe, posix(), utc(2025, 6, 10, 15, 30)) == true);
    CHECK(in_window(lord_howe, posix(), utc(2026, 1, 10, 15, 0)) == true);
    CHECK(in_window(lord_howe, posix(), utc(2026, 1, 10, 14, 59)) == false);

    CHECK_FALSE(in_window(Window{"x", 0x7f, 0, 60, "Mars/Olympus"}, posix(), 0).has_value());
}

TEST_CASE("a window that crosses midnight belongs to the day it starts", "[core]") {
    // Fridays 22:00 to Saturday 04:00, Berlin (CET = UTC+1 in November).
    const Window w{"g", kFri, 22 * 60, 4 * 60, "Europe/Berlin"};
    CHECK(in_window(w, posix(), utc(2025, 11, 28, 20, 59)) == false);  // Fri 21:59
    CHECK(in_window(w, posix(), utc(2025, 11, 28, 21, 0)) == true);    // Fri 22:00
    CHECK(in_window(w, posix(), utc(2025, 11, 28, 23, 30)) == true);   // Sat 00:30
    CHECK(in_window(w, posix(), utc(2025, 11, 29, 2, 59)) == true);    // Sat 03:59
    CHECK(in_window(w, posix(), utc(2025, 11, 29, 3, 0)) == false);    // Sat 04:00
    CHECK(in_window(w, posix(), utc(2025, 11, 29, 21, 30)) == false);  // Sat 22:30
    // Thursday's night is not Friday's: Friday 01:00 is not in the window.
    CHECK(in_window(w, posix(), utc(2025, 11, 28, 0, 0)) == false);

    // From Wednesday noon the window next opens Friday 22:00 local.
    const std::vector<Window> ws{w};
    CHECK(next_window_open(ws, posix(), utc(2025, 11, 26, 12, 0)) == utc(2025, 11, 28, 21, 0));
    // Sundays 23:00 - 01:00 reaches into Monday.
    const Window sunday{"g", kSun, 23 * 60, 60, "UTC"};
    CHECK(in_window(sunday, posix(), utc(2025, 11, 24, 0, 30)) == true);   // Monday 00:30
    CHECK(in_window(sunday, posix(), utc(2025, 11, 25, 0, 30)) == false);  // Tuesday
}

TEST_CASE("on the spring-forward night a 02:00-04:00 window opens when the clock shows 03:00",
          "[core]") {
    // New York, Sunday 2025-03-09: 02:00 EST (07:00 UTC) becomes 03:00 EDT.
    const Window w{"g", kSun, 2 * 60, 4 * 60, "America/New_York"};
    const std::vector<Window> ws{w};
    const std::int64_t jump = utc(2025, 3, 9, 7, 0);
    CHECK(in_window(w, posix(), jump - 1) == false);  // 01:59:59 EST
    CHECK(in_window(w, posix(), jump) == true);       // 03:00:00 EDT
    CHECK(in_window(w, posix(), jump + kHour - 1) == true);
    CHECK(in_window(w, posix(), jump + kHour) == false);  // 04:00 EDT: one real hour
    CHECK(next_window_open(ws, posix(), utc(2025, 3, 9, 5, 0)) == jump);
    // A week later, 02:00 EDT is 06:00 UTC.
    CHECK(next_window_open(ws, posix(), jump + kHour) == utc(2025, 3, 16, 6, 0));

    // A window wholly inside the skipped hour does not happen that night.
    const std::vector<Window> skipped{Window{"g", kSun, 2 * 60, 2 * 60 + 30, "Europe/Berlin"}};
    // Berlin, Sunday 2025-03-30: 02:00 CET (01:00 UTC) becomes 03:00 CEST.
    CHECK(next_window_open(skipped, posix(), utc(2025, 3, 30, 0, 0)) == utc(2025, 4, 6, 0, 0));

    // Lord Howe moves its clocks by half an hour: 02:00 +10:30 (15:30 UTC on 2025-10-04)
    // becomes 02:30 +11, so a 02:00-03:00 window lasts 30 real minutes.
    const Window howe{"g", kSun, 2 * 60, 3 * 60, "Australia/Lord_Howe"};
    const std::int64_t howe_jump = utc(2025, 10, 4, 15, 30);
    CHECK(in_window(howe, posix(), howe_jump - 1) == false);
    CHECK(in_window(howe, posix(), howe_jump) == true);
    CHECK(in_window(howe, posix(), howe_jump + 30 * 60) == false);
    CHECK(next_window_open(std::vector<Window>{howe}, posix(), utc(2025, 10, 4, 12, 0)) ==
          howe_jump);
}

TEST_CASE("on the fall-back night a 01:00-02:00 window holds through both 01:00 hours", "[core]") {
    // New York, Sunday 2025-11-02: 02:00 EDT (06:00 UTC) becomes 01:00 EST.
    const std::int64_t back = utc(2025, 11, 2, 6, 0);
    const Window w{"g", kSun, 60, 2 * 60, "America/New_York"};
    CHECK(in_window(w, posix(), back - kHour - 1) == false);  // 00:59:59 EDT
    CHECK(in_window(w, posix(), back - kHour) == true);       // 01:00 EDT
    CHECK(in_window(w, posix(), back) == true);               // 01:00 EST, again
    CHECK(in_window(w, posix(), back + kHour - 1) == true);   // 01:59:59 EST
    CHECK(in_window(w, posix(), back + kHour) == false);      // 02:00 EST
    CHECK(next_window_open(std::vector<Window>{w}, posix(), utc(2025, 11, 2, 0, 0)) ==
          back - kHour);

    // A quarter hour inside the repeated hour happens twice; the second time is found too.
    const std::vector<Window> quarter{Window{"g", kSun, 90, 105, "America/New_York"}};
    CHECK(next_window_open(quarter, posix(), utc(2025, 11, 2, 0, 0)) == back - kHour + 30 * 60);
    CHECK(next_window_open(quarter, posix(), back - 10 * 60) == back + 30 * 60);

    // 00:30-01:30: closed at 01:30 EDT, and re-entered when the clock falls back to 01:00.
    const std::vector<Window> early{Window{"g", kSun, 30, 90, "America/New_York"}};
    CHECK(next_window_open(early, posix(), back - 20 * 60) == back);
}

TEST_CASE("next_window_open picks the earliest of several windows and gives up on unknown zones",
          "[core]") {
    const std::vector<Window> ws{Window{"g", kMon, 22 * 60, 23 * 60, "America/New_York"},
                                 Window{"g", kMon, 9 * 60, 10 * 60, "Asia/Kolkata"}};
    // Sunday 2025-11-23 12:00 UTC: Kolkata's Monday 09:00 is Monday 03:30 UTC; New York's
    // Monday 22:00 EST is Tuesday 03:00 UTC.
    CHECK(next_window_open(ws, posix(), utc(2025, 11, 23, 12, 0)) == utc(2025, 11, 24, 3, 30));
    CHECK(next_window_open(ws, posix(), utc(2025, 11, 24, 3, 45)) ==
          utc(2025, 11, 24, 3, 45));  // inside already
    CHECK(next_window_open(ws, posix(), utc(2025, 11, 24, 4, 30)) == utc(2025, 11, 25, 3, 0));
    const std::vector<Window> unknown{Window{"g", kMon, 0, 60, "Nowhere/Nothing"}};
    CHECK_FALSE(next_window_open(unknown, posix(), 0).has_value());
}

// --- install and reboot decisions --------------------------------------------------------------

namespace {

// finance: weekdays 22:00-04:00 New York; "*": Sundays 02:00-05:00 UTC; deadline 2025-12-01.
Rollout windowed() {
    Rollout r;
    r.deadline = utc(2025, 12, 1, 12, 0);
    r.windows = {
        Window{"finance", kMon | kTue | kWed | kThu | kFri, 22 * 60, 4 * 60, "America/New_York"},
        Window{"*", kSun, 2 * 60, 5 * 60, "UTC"}};
    return r;
}

const std::vector<std::string> kFinance{"laptops", "finance"};
const std::vector<std::string> kOther{"laptops"};

}  // namespace

TEST_CASE("an endpoint installs inside its group's window once its ring is open", "[core]") {
    const Rollout r = windowed();
    // Monday 2025-11-24 22:30 EST.
    const std::int64_t inside = utc(2025, 11, 25, 3, 30);
    auto d = may_install(r, posix(), true, false, std::nullopt, inside, kFinance);
    CHECK(d.allowed);
    CHECK_FALSE(d.by_deadline);
    CHECK(d.cause == WaitCause::none);
    CHECK(d.wait_reason.empty());
    CHECK_FALSE(d.next_check_at.has_value());

    // Monday 12:00 EST: wait for 22:00 EST (03:00 UTC Tuesday).
    d = may_install(r, posix(), true, false, std::nullopt, utc(2025, 11, 24, 17, 0), kFinance);
    CHECK_FALSE(d.allowed);
    CHECK(d.cause == WaitCause::outside_window);
    CHECK(d.next_check_at == utc(2025, 11, 25, 3, 0));
    CHECK(d.wait_reason ==
          "outside maintenance window, next opens 2025-11-25T03:00:00Z "
          "(deadline 2025-12-01T12:00:00Z)");

    // Its ring is not open: no window matters, and only the feed can change that.
    d = may_install(r, posix(), false, false, std::nullopt, inside, kFinance);
    CHECK_FALSE(d.allowed);
    CHECK(d.cause == WaitCause::ring_closed);
    CHECK_FALSE(d.next_check_at.has_value());

    // Group without windows of its own: the "*" window, Sundays 02:00-05:00 UTC.
    d = may_install(r, posix(), true, false, std::nullopt, inside, kOther);
    CHECK_FALSE(d.allowed);
    CHECK(d.next_check_at == utc(2025, 11, 30, 2, 0));
    CHECK(may_install(r, posix(), true, false, std::nullopt, utc(2025, 11, 30, 4, 59), kOther)
              .allowed);

    // No windows at all: any time.
    Rollout anytime = r;
    anytime.windows.clear();
    CHECK(
        may_install(anytime, posix(), true, false, std::nullopt, utc(2025, 11, 24, 17, 0), kFinance)
            .allowed);
}

TEST_CASE("the deadline overrides window and deferral but never a halt", "[core]") {
    const Rollout r = windowed();
    const std::int64_t deadline = *r.deadline;  // Monday 2025-12-01 07:00 EST: outside window
    auto d = may_install(r, posix(), true, false, std::nullopt, deadline - 1, kFinance);
    CHECK_FALSE(d.allowed);
    CHECK(d.next_check_at == deadline);  // next window (22:00 EST) is later than the deadline

    d = may_install(r, posix(), true, false, std::nullopt, deadline, kFinance);
    CHECK(d.allowed);
    CHECK(d.by_deadline);

    d = may_install(r, posix(), true, false, deadline + 7 * kDay, deadline + 1, kFinance);
    CHECK(d.allowed);
    CHECK(d.by_deadline);

    d = may_install(r, posix(), true, true, std::nullopt, deadline + 1, kFinance);
    CHECK_FALSE(d.allowed);
    CHECK(d.cause == WaitCause::halted);
    CHECK(d.wait_reason == "release halted");
    CHECK_FALSE(d.next_check_at.has_value());

    d = may_reboot(r, posix(), true, std::nullopt, deadline + 1, kFinance);
    CHECK_FALSE(d.allowed);
    CHECK(d.cause == WaitCause::halted);
    d = may_reboot(r, posix(), false, deadline + kDay, deadline + 1, kFinance);
    CHECK(d.allowed);
    CHECK(d.by_deadline);
}

TEST_CASE("a deferral holds until it ends, then the next window, and never past the deadline",
          "[core]") {
    const Rollout r = windowed();
    // Monday 2025-11-24 22:30 EST, inside the window, but deferred until Wednesday 12:00 UTC.
    const std::int64_t inside = utc(2025, 11, 25, 3, 30);
    const std::int64_t until = utc(2025, 11, 26, 12, 0);
    auto d = may_install(r, posix(), true, false, until, inside, kFinance);
    CHECK_FALSE(d.allowed);
    CHECK(d.cause == WaitCause::deferred);
    CHECK(d.wait_reason ==
          "install deferred until 2025-11-26T12:00:00Z (deadline 2025-12-01T12:00:00Z)");
    // Wednesday 22:00 EST = Thursday 03:00 UTC: the first window after the deferral.
    CHECK(d.next_check_at == utc(2025, 11, 27, 3, 0));

    // A deferral that has ended no longer counts.
    CHECK(may_install(r, posix(), true, false, until, utc(2025, 11, 27, 3, 0), kFinance).allowed);

    // Deferred past the deadline: clamped to it.
    CHECK(clamp_deferral(r, *r.deadline + kDay) == *r.deadline);
    CHECK(clamp_deferral(r, until) == until);
    CHECK(clamp_deferral(Rollout{}, until) == until);
    d = may_install(r, posix(), true, false, *r.deadline + 30 * kDay, *r.deadline - kHour,
                    kFinance);
    CHECK_FALSE(d.allowed);
    CHECK(d.cause == WaitCause::deferred);
    CHECK(d.next_check_at == *r.deadline);
    CHECK(d.wait_reason.starts_with("install deferred until 2025-12-01T12:00:00Z"));

    // Reboots follow the same rules but ignore the ring (the install already passed it).
    d = may_reboot(r, posix(), false, until, inside, kFinance);
    CHECK_FALSE(d.allowed);
    CHECK(d.wait_reason.starts_with("reboot deferred until"));
    CHECK(may_reboot(r, posix(), false, std::nullopt, inside, kFinance).allowed);
    CHECK_FALSE(
        may_reboot(r, posix(), false, std::nullopt, utc(2025, 11, 24, 17, 0), kFinance).allowed);
}

TEST_CASE("a window in an unknown zone never holds, and the deadline still applies", "[core]") {
    Rollout r = windowed();
    r.windows = {Window{"finance", 0x7f, 0, 24 * 60, "Nowhere/Nothing"}};
    auto d = may_install(r, posix(), true, false, std::nullopt, utc(2025, 11, 25, 3, 30), kFinance);
    CHECK_FALSE(d.allowed);
    CHECK(d.cause == WaitCause::unknown_zone);
    CHECK(d.next_check_at == *r.deadline);
    CHECK(d.wait_reason.starts_with("maintenance window in unknown time zone \"Nowhere/Nothing\""));
    CHECK(may_install(r, posix(), true, false, std::nullopt, *r.deadline, kFinance).by_deadline);

    // With a known zone beside it, the known window decides.
    r.windows.push_back(Window{"finance", kSun, 2 * 60, 5 * 60, "UTC"});
    d = may_install(r, posix(), true, false, std::nullopt, utc(2025, 11, 25, 3, 30), kFinance);
    CHECK(d.cause == WaitCause::outside_window);
    CHECK(d.next_check_at == utc(2025, 11, 30, 2, 0));
}

TEST_CASE("the wait causes have stable names", "[core]") {
    CHECK(to_string(WaitCause::none) == "none");
    CHECK(to_string(WaitCause::halted) == "halted");
    CHECK(to_string(WaitCause::ring_closed) == "ring_closed");
    CHECK(to_string(WaitCause::deferred) == "deferred");
    CHECK(to_string(WaitCause::outside_window) == "outside_window");
    CHECK(to_string(WaitCause::unknown_zone) == "unknown_zone");
    CHECK(format_utc(0) == "1970-01-01T00:00:00Z");
    CHECK(format_utc(-1) == "1969-12-31T23:59:59Z");
    CHECK(format_utc(utc(2038, 1, 19, 3, 14, 8)) == "2038-01-19T03:14:08Z");
}

// --- the endpoint's tick and the command-line times ------------------------------------------

TEST_CASE("the endpoint's verdict combines ring, feed, halt, deferral and deadline", "[core]") {
    Rollout r = staged();
    r.deadline = kPublished + kDay;
    const std::vector<std::string> early{"early"};
    const std::int64_t now = kPublished + kHour;

    // A canary with only ring 0 open installs; an "early" endpoint waits, naming its ring.
    auto v = endpoint_verdict(&r, posix(), 1u, false, std::nullopt, now, device(1), kNoGroups);
    CHECK(v.ring == 0);
    CHECK(v.ring_name == "canary");
    CHECK(v.install.allowed);
    v = endpoint_verdict(&r, posix(), 1u, false, std::nullopt, now, device(9), early);
    CHECK(v.ring == 1);
    CHECK_FALSE(v.install.allowed);
    CHECK(v.install.cause == WaitCause::ring_closed);
    CHECK(v.install.wait_reason == "waiting for rollout ring early to open");
    // Reboots are not gated by the ring (the install already passed it).
    CHECK(v.reboot.allowed);
    // Everyone else is in the implicit last ring.
    v = endpoint_verdict(&r, posix(), 2u, false, std::nullopt, now, device(9), kNoGroups);
    CHECK(v.ring == 2);
    CHECK(v.ring_name == kRestRingName);
    CHECK_FALSE(v.install.allowed);
    // No open_rings in the feed: every ring is open.
    CHECK(
        endpoint_verdict(&r, posix(), std::nullopt, false, std::nullopt, now, device(9), kNoGroups)
            .install.allowed);
    // The signed deadline opens every ring even when the feed still says otherwise...
    CHECK(endpoint_verdict(&r, posix(), 1u, false, std::nullopt, *r.deadline, device(9), early)
              .install.allowed);
    // ...but never lifts a halt, for installs or reboots.
    v = endpoint_verdict(&r, posix(), 3u, true, std::nullopt, *r.deadline, device(1), kNoGroups);
    CHECK_FALSE(v.install.allowed);
    CHECK(v.install.cause == WaitCause::halted);
    CHECK_FALSE(v.reboot.allowed);
    // A deferral holds both until the deadline.
    v = endpoint_verdict(&r, posix(), 3u, false, *r.deadline + kDay, now, device(1), kNoGroups);
    CHECK(v.install.cause == WaitCause::deferred);
    CHECK(v.reboot.cause == WaitCause::deferred);
    CHECK(v.install.next_check_at == r.deadline);
    // A release without a rollout section: only a halt holds it back.
    CHECK(endpoint_verdict(nullptr, posix(), std::nullopt, false, std::nullopt, now, device(9),
                           kNoGroups)
              .install.allowed);
    CHECK_FALSE(
        endpoint_verdict(nullptr, posix(), std::nullopt, true, std::nullopt, now, device(9), early)
            .install.allowed);
}

TEST_CASE("command-line times: unix seconds, UTC ISO 8601 and relative", "[core]") {
    const std::int64_t now = kPublished;
    CHECK(parse_time_spec("1763800000", now).value_or(-1) == 1763800000);
    CHECK(parse_time_spec("2025-11-25T03:30:00Z", now).value_or(-1) == utc(2025, 11, 25, 3, 30));
    CHECK(parse_time_spec("2025-11-25T03:30Z", now).value_or(-1) == utc(2025, 11, 25, 3, 30));
    CHECK(parse_time_spec("+90s", now).value_or(-1) == now + 90);
    CHECK(parse_time_spec("+15m", now).value_or(-1) == now + 900);
    CHECK(parse_time_spec("+48h", now).value_or(-1) == now + 48 * kHour);
    CHECK(parse_time_spec("+2d", now).value_or(-1) == now + 2 * kDay);
    CHECK(parse_time_spec("now", now).value_or(-1) == now);
    CHECK(format_utc(*parse_time_spec("2024-02-29T23:59:59Z", now)) == "2024-02-29T23:59:59Z");
    for (const char* bad : {"", "+", "+5", "+5y", "-5m", "+-5m", "12ab", "2025-02-30T00:00:00Z",
                            "2025-11-25T24:00:00Z", "2025-11-25 03:30:00Z", "2025-11-25T03:30:00",
                            "99999999999999999999", "+999999999999d", "tomorrow"}) {
        INFO(bad);
        auto r = parse_time_spec(bad, now);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == patchswarm::Errc::invalid_argument);
    }
}

TEST_CASE("a rollout section parses on its own, strictly", "[core]") {
    const std::string text =
        R"({"rings":[{"name":"canary","groups":["canary"],"success_threshold":1,"soak_s":60,)"
        R"("max_failure_rate":0.2}],"deadline":1763900000,)"
        R"("windows":[{"group":"office","days":["mon","fri"],"start":"22:00","end":"02:00",)"
        R"("tz":"Europe/Berlin"}]})";
    auto r = parse_rollout(text);
    REQUIRE(r.has_value());
    REQUIRE(r->rings.size() == 1);
    CHECK(r->rings[0].max_failure_bp == 2000);
    CHECK(r->deadline == 1763900000);
    CHECK(r->windows[0].days == (kMon | kFri));
    CHECK(parse_rollout(serialize_rollout(*r)).value_or(Rollout{}) == *r);
    auto unknown = parse_rollout(R"({"rings":[],"windws":[]})");
    REQUIRE_FALSE(unknown.has_value());
    CHECK(unknown.error().message.find("rollout.windws") != std::string::npos);
    CHECK_FALSE(parse_rollout(R"({"rings":[{"name":"a"}],"rings":[]})").has_value());
    CHECK_FALSE(parse_rollout("[]").has_value());
}

// ---- Deadlines from policy ------------------------------------------------------------------

TEST_CASE("every severity has a default maximum time to deadline", "[core]") {
    const DeadlinePolicy p = default_deadline_policy();
    CHECK(p.for_severity(Severity::emergency) == 24 * kHour);
    CHECK(p.for_severity(Severity::critical) == 72 * kHour);
    CHECK(p.for_severity(Severity::normal) == 14 * kDay);
    CHECK(p.for_severity(Severity::important).has_value());
    CHECK(p.for_severity(Severity::low).has_value());
}

TEST_CASE("publish without --deadline gets the severity's deadline, never past expiry", "[core]") {
    const std::int64_t now = utc(2026, 3, 4, 12);
    const DeadlinePolicy p = default_deadline_policy();
    const auto e = apply_deadline_policy(p, Severity::emergency, std::nullopt, std::nullopt, now,
                                         now + 30 * kDay);
    CHECK(e.at == now + 24 * kHour);
    CHECK(e.source == DeadlineSource::severity_policy);
    CHECK(e.explanation == "emergency: at most 24h after publishing");
    // A manifest that expires in 7 days cannot carry a 14-day deadline.
    const auto n =
        apply_deadline_policy(p, Severity::normal, std::nullopt, std::nullopt, now, now + 7 * kDay);
    CHECK(n.at == now + 7 * kDay);
    CHECK(n.explanation == "normal: at most 14d after publishing, cut to the manifest's expiry");
}

TEST_CASE("a --deadline given wins, a policy file's own deadline is cut to the maximum", "[core]") {
    const std::int64_t now = utc(2026, 3, 4, 12);
    const DeadlinePolicy p = default_deadline_policy();
    const std::int64_t exp = now + 30 * kDay;
    const auto given =
        apply_deadline_policy(p, Severity::emergency, now + 5 * kDay, std::nullopt, now, exp);
    CHECK(given.at == now + 5 * kDay);
    CHECK(given.source == DeadlineSource::flag);
    const auto earlier =
        apply_deadline_policy(p, Severity::emergency, std::nullopt, now + 3 * kHour, now, exp);
    CHECK(earlier.at == now + 3 * kHour);
    CHECK(earlier.source == DeadlineSource::policy_file);
    const auto later =
        apply_deadline_policy(p, Severity::emergency, std::nullopt, now + 3 * kDay, now, exp);
    CHECK(later.at == now + 24 * kHour);
    CHECK(later.source == DeadlineSource::severity_policy);
}

TEST_CASE("a policy file's deadlines override the defaults, null removes one", "[core]") {
    auto p = parse_deadline_policy(R"({"emergency":"6h","normal":"21d","low":null,"critical":600})",
                                   default_deadline_policy());
    REQUIRE(p);
    CHECK(p->for_severity(Severity::emergency) == 6 * kHour);
    CHECK(p->for_severity(Severity::normal) == 21 * kDay);
    CHECK(p->for_severity(Severity::critical) == 600);
    CHECK_FALSE(p->for_severity(Severity::low));
    CHECK(p->for_severity(Severity::important) ==
          default_deadline_policy().for_severity(Severity::important));
    const auto none = apply_deadline_policy(*p, Severity::low, std::nullopt, std::nullopt, 0, 100);
    CHECK_FALSE(none.at);
    CHECK(none.source == DeadlineSource::none);
}

TEST_CASE("a malformed deadlines object is refused with the field named", "[core]") {
    for (const char* bad :
         {R"({"urgent":"24h"})", R"({"emergency":"24 hours"})", R"({"emergency":0})",
          R"({"emergency":"+24h"})", R"({"emergency":"3651d"})", R"({"emergency":-5})",
          R"({"emergency":true})", R"(["emergency"])", R"({"emergency":"1h","emergency":"2h"})"}) {
        INFO(bad);
        auto p = parse_deadline_policy(bad, default_deadline_policy());
        REQUIRE_FALSE(p);
        CHECK(p.error().code == patchswarm::Errc::invalid_argument);
        CHECK(p.error().message.rfind("deadlines", 0) == 0);
    }
}

TEST_CASE("a ten-year deferral of an emergency release ends at its deadline", "[core]") {
    const std::int64_t now = utc(2026, 3, 4, 12);
    Rollout r;
    r.deadline = apply_deadline_policy(default_deadline_policy(), Severity::emergency, std::nullopt,
                                       std::nullopt, now, now + 30 * kDay)
                     .at;
    const std::int64_t asked = *parse_time_spec("+3650d", now);
    CHECK(clamp_deferral(r, asked) == now + 24 * kHour);
    // Before the deadline the deferral holds and says until when; the agent looks again then.
    const std::vector<std::string> groups{"office"};
    const auto held = may_install(r, posix(), true, false, asked, now + kHour, groups);
    CHECK_FALSE(held.allowed);
    CHECK(held.cause == WaitCause::deferred);
    CHECK(held.next_check_at == now + 24 * kHour);
    // At the deadline the install and the reboot are allowed at once, deferral or not.
    const auto due = may_install(r, posix(), true, false, asked, now + 24 * kHour, groups);
    CHECK(due.allowed);
    const auto reboot = may_reboot(r, posix(), false, asked, now + 24 * kHour, groups);
    CHECK(reboot.allowed);
    // Outside every maintenance window the deadline is what lets both happen.
    r.windows.push_back({"office", kAllDays, 0, 60, "UTC"});  // 00:00-01:00; `now` is 12:00
    const auto by_deadline = may_install(r, posix(), true, false, asked, now + 24 * kHour, groups);
    CHECK(by_deadline.allowed);
    CHECK(by_deadline.by_deadline);
    CHECK(may_reboot(r, posix(), false, asked, now + 24 * kHour, groups).by_deadline);
    // A second before the deadline the window still holds it back, and says the deadline.
    const auto before =
        may_install(r, posix(), true, false, std::nullopt, now + 24 * kHour - 1, groups);
    CHECK_FALSE(before.allowed);
    CHECK(before.next_check_at == now + 24 * kHour);
    CHECK(before.wait_reason.find("(deadline 2026-03-05T12:00:00Z)") != std::string::npos);
}
