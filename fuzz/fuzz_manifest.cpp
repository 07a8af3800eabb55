// libFuzzer target for core::parse_manifest. Input: the manifest JSON (an envelope's payload).
// Beyond "no crash": an accepted manifest satisfies every documented bound, its paths pass
// validate_relative_path, and its canonical form re-parses to an equal value and re-serialises
// to the same bytes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/manifest.hpp"
#include "fuzz/fuzz_support.hpp"

namespace patchswarm::fuzz {

namespace manifest_detail {

bool is_refusal(Errc code) {
    return code == Errc::malformed || code == Errc::too_large || code == Errc::unsafe_path;
}

void check_command(const core::CommandLine& c) {
    FUZZ_CHECK(!c.argv.empty() && c.argv.size() <= core::kMaxArgs);
    FUZZ_CHECK(!c.argv[0].empty());
    for (const auto& arg : c.argv) {
        FUZZ_CHECK(arg.size() <= core::kMaxArgBytes);
        FUZZ_CHECK(arg.find('\0') == std::string::npos);
    }
    FUZZ_CHECK(c.timeout_s >= 1 && c.timeout_s <= core::kMaxTimeoutS);
}

void check_rollout(const core::Rollout& r, const core::Manifest& m) {
    FUZZ_CHECK(core::validate_rollout(r, m.created, m.expires).has_value());
    FUZZ_CHECK(r.rings.size() <= core::kMaxRings && r.windows.size() <= core::kMaxWindows);
    if (r.deadline) FUZZ_CHECK(*r.deadline >= m.created && *r.deadline <= m.expires);
    for (const auto& ring : r.rings) {
        FUZZ_CHECK(core::validate_release_id(ring.name).has_value());
        FUZZ_CHECK(!ring.groups.empty() || !ring.devices.empty() || ring.fleet_bp != 0);
        FUZZ_CHECK(ring.fleet_bp <= core::kBasisPoints && ring.success_bp <= core::kBasisPoints &&
                   ring.max_failure_bp <= core::kBasisPoints);
        FUZZ_CHECK(ring.soak_s >= 0 && ring.soak_s <= core::kMaxSoakS);
        for (const auto& group : ring.groups) {
            FUZZ_CHECK(core::validate_group_name(group).has_value());
        }
        for (const auto& device : ring.devices) {
            FUZZ_CHECK(is_lower_hex(device, core::kDeviceIdHexChars));
        }
    }
    for (const auto& w : r.windows) {
        FUZZ_CHECK(w.group == core::kAnyGroup || core::validate_group_name(w.group).has_value());
        FUZZ_CHECK(w.days != 0 && (w.days & ~core::kAllDays) == 0);
        FUZZ_CHECK(w.start_min < 24 * 60 && w.end_min >= 1 && w.end_min <= 24 * 60);
        FUZZ_CHECK(w.start_min != w.end_min);
        FUZZ_CHECK(core::validate_zone_name(w.zone).has_value());
    }
}

void check_accepted(const core::Manifest& m) {
    FUZZ_CHECK(core::validate_manifest(m).has_value());
    FUZZ_CHECK(m.format == 1);
    FUZZ_CHECK(core::validate_release_id(m.repository).has_value());
    FUZZ_CHECK(core::validate_release_id(m.id).has_value());
    FUZZ_CHECK(m.expires > m.created);
    // The torrent name becomes one folder entry.
    FUZZ_CHECK(core::validate_relative_path(m.name).has_value());
    FUZZ_CHECK(m.name.find('/') == std::string::npos);
    FUZZ_CHECK(!m.files.empty() && m.files.size() <= core::kMaxFiles);
    for (std::size_t i = 0; i < m.files.size(); ++i) {
        const core::FileEntry& f = m.files[i];
        FUZZ_CHECK(core::validate_relative_path(f.path).has_value());
        FUZZ_CHECK(f.path.size() <= core::kMaxPathBytes);
        FUZZ_CHECK(is_lower_hex(f.sha256, 64));
        if (i > 0) FUZZ_CHECK(m.files[i - 1].path < f.path);  // sorted and unique
    }
    FUZZ_CHECK(m.total_size() <= core::kMaxPayloadBytes);
    FUZZ_CHECK(is_lower_hex(m.infohash_v2, 64));
    check_command(m.install);
    if (m.verify) check_command(*m.verify);
    if (m.rollout) check_rollout(*m.rollout, m);
    // Expiry is the only freshness rule: valid at `created`, expired at `expires`.
    FUZZ_CHECK(core::check_manifest_fresh(m, m.created).has_value());
    FUZZ_CHECK(!core::check_manifest_fresh(m, m.expires).has_value());
}

}  // namespace manifest_detail

bool manifest_one(const std::uint8_t* data, std::size_t size) {
    using namespace manifest_detail;
    auto m = core::parse_manifest(as_text(data, size));
    if (!m) {
        FUZZ_CHECK(is_refusal(m.error().code));
        FUZZ_CHECK(!m.error().message.empty());
        return false;
    }
    check_accepted(*m);

    // What a publisher signs is serialize_manifest(m); an endpoint must read back exactly m.
    const std::string canonical = core::serialize_manifest(*m);
    auto again = core::parse_manifest(canonical);
    FUZZ_CHECK_MSG(again.has_value(), "canonical form refused: " + again.error().message);
    FUZZ_CHECK(*again == *m);
    FUZZ_CHECK(core::serialize_manifest(*again) == canonical);
    return true;
}

}  // namespace patchswarm::fuzz

PATCHSWARM_FUZZ_ENTRY(manifest_one)
