// libFuzzer target for seeder::parse_report, the parser behind POST /v1/report.
// Input, two forms (see fuzz/README.md):
// - "P" followed by a report *payload*: the harness signs it with the throwaway device key into
//   a report envelope first, so mutations reach the payload decoder behind the signature check;
// - anything else: the raw request body (a report envelope), as a client would send it.
// Beyond "no crash": an accepted report satisfies every bound of docs/PROTOCOL.md ("Report"),
// its device id belongs to its key, and the same envelope signed by another key, or carrying
// another payload type, is refused.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <set>
#include <string>

#include "core/envelope.hpp"
#include "core/manifest.hpp"
#include "crypto/crypto.hpp"
#include "fuzz/fuzz_support.hpp"
#include "seeder/report.hpp"

namespace patchswarm::fuzz {

namespace report_detail {

constexpr std::uint64_t kMaxCounter = std::numeric_limits<std::int64_t>::max();

bool is_refusal(Errc code) {
    return code == Errc::malformed || code == Errc::too_large || code == Errc::bad_signature ||
           code == Errc::unsafe_path;
}

void check_accepted(const seeder::Report& r) {
    FUZZ_CHECK(r.device_id == seeder::device_id_for(r.device_key));
    FUZZ_CHECK(r.device_id.size() == seeder::kDeviceIdHexChars);
    FUZZ_CHECK(r.hostname.size() <= seeder::kMaxHostnameBytes && !has_control_char(r.hostname));
    FUZZ_CHECK(r.boot_id.size() <= seeder::kMaxBootIdBytes && !has_control_char(r.boot_id));
    FUZZ_CHECK(r.counter <= kMaxCounter);
    FUZZ_CHECK(r.releases.size() <= seeder::kMaxReportReleases);
    std::set<std::string> ids;
    for (const auto& rel : r.releases) {
        FUZZ_CHECK(core::validate_release_id(rel.id).has_value());
        FUZZ_CHECK(ids.insert(rel.id).second);
        FUZZ_CHECK(rel.manifest_sha256.empty() || is_lower_hex(rel.manifest_sha256, 64));
        FUZZ_CHECK(rel.progress >= 0.0 && rel.progress <= 1.0);
        FUZZ_CHECK(rel.bytes_from_peers <= kMaxCounter && rel.bytes_from_seeder <= kMaxCounter);
        FUZZ_CHECK(!rel.bytes_from_lan || *rel.bytes_from_lan <= kMaxCounter);
        FUZZ_CHECK(!rel.bytes_from_wan || *rel.bytes_from_wan <= kMaxCounter);
        FUZZ_CHECK(rel.reason.size() <= seeder::kMaxReasonBytes);
        FUZZ_CHECK(rel.reason.find('\0') == std::string::npos);
    }
}

// The accepted payload signed by a key other than its device key, or under another type.
void check_binding(const crypto::Bytes& payload, const seeder::Report&) {
    // (Only called for payloads the harness signed: their device key is device_key().)
    FUZZ_CHECK(
        !seeder::parse_report(signed_envelope(core::payload_type::report, payload, release_key()))
             .has_value());
    FUZZ_CHECK(
        !seeder::parse_report(signed_envelope(core::payload_type::manifest, payload, device_key()))
             .has_value());
}

}  // namespace report_detail

bool report_one(const std::uint8_t* data, std::size_t size) {
    using namespace report_detail;
    return device_signed_one(
        data, size, core::payload_type::report,
        [](const std::string& body) { return seeder::parse_report(body); }, is_refusal,
        check_accepted, check_binding);
}

}  // namespace patchswarm::fuzz

PATCHSWARM_FUZZ_ENTRY(report_one)
