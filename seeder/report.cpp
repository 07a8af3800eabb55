#include "seeder/report.hpp"

#include <algorithm>
#include <limits>
#include <set>

#include "core/envelope.hpp"
#include "core/json_strict.hpp"
#include "core/manifest.hpp"

namespace patchswarm::seeder {

namespace js = core::json_strict;

namespace {

constexpr std::uint64_t kMaxCounter = std::numeric_limits<std::int64_t>::max();

bool has_control_char(std::string_view s) {
    return std::any_of(s.begin(), s.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u < 0x20 || u == 0x7f;
    });
}

// A string field with a length bound; `single_line` also refuses control characters, so that
// a host name cannot carry terminal escape sequences into `status`.
std::string bounded_string(js::ObjectReader& r, std::string_view key, std::size_t max_bytes,
                           bool single_line) {
    std::string value = r.string(key);
    if (!r.ok()) return {};
    if (value.size() > max_bytes) {
        r.fail_at(r.field(key), Errc::too_large, "longer than " + std::to_string(max_bytes));
    } else if (value.find('\0') != std::string::npos || (single_line && has_control_char(value))) {
        r.fail_at(r.field(key), Errc::malformed, "contains control characters");
    }
    return value;
}

double read_progress(js::ObjectReader& r, const js::Json& obj) {
    if (!r.ok()) return 0;
    const auto it = obj.find("progress");
    if (it == obj.end() || !it->is_number()) {
        r.fail_at(r.field("progress"), Errc::malformed, "expected a number");
        return 0;
    }
    const double p = it->get<double>();
    if (!(p >= 0.0 && p <= 1.0)) r.fail_at(r.field("progress"), Errc::malformed, "not in 0..1");
    return p;
}

std::uint64_t bounded_u64(js::ObjectReader& r, std::string_view key, std::uint64_t max) {
    const std::uint64_t v = r.u64(key);
    if (r.ok() && v > max) r.fail_at(r.field(key), Errc::too_large, "too large");
    return v;
}

ReleaseReport read_release(const js::Json& item, const std::string& where,
                           std::optional<Error>& error) {
    js::ObjectReader r(item, where, error);
    ReleaseReport rel;
    rel.id = r.string("id");
    if (r.ok()) {
        if (auto ok = core::validate_release_id(rel.id); !ok) {
            r.fail_at(r.field("id"), ok.error().code, ok.error().message);
        }
    }
    rel.manifest_sha256 = r.string("manifest_sha256");
    if (r.ok() && !rel.manifest_sha256.empty() && !js::is_lower_hex(rel.manifest_sha256, 64)) {
        r.fail_at(r.field("manifest_sha256"), Errc::malformed, "expected 64 lowercase hex");
    }
    const std::string state = r.string("state");
    if (r.ok()) {
        if (const auto s = core::parse_state(state)) {
            rel.state = *s;
        } else {
            r.fail_at(r.field("state"), Errc::malformed, "unknown state");
        }
    }
    rel.entered_at = r.i64("entered_at");
    rel.progress = read_progress(r, item);
    rel.bytes_from_peers = bounded_u64(r, "bytes_from_peers", kMaxCounter);
    rel.bytes_from_seeder = bounded_u64(r, "bytes_from_seeder", kMaxCounter);
    if (r.ok() && r.has("bytes_from_lan")) {
        rel.bytes_from_lan = bounded_u64(r, "bytes_from_lan", kMaxCounter);
    }
    if (r.ok() && r.has("bytes_from_wan")) {
        rel.bytes_from_wan = bounded_u64(r, "bytes_from_wan", kMaxCounter);
    }
    rel.attempts = static_cast<std::uint32_t>(
        bounded_u64(r, "attempts", std::numeric_limits<std::uint32_t>::max()));
    rel.reason = bounded_string(r, "reason", kMaxReasonBytes, /*single_line=*/false);
    if (r.ok() && r.has("failed_phase")) {
        const std::string phase = r.string("failed_phase");
        rel.failed_phase = core::parse_phase(phase);
        if (r.ok() && !rel.failed_phase) {
            r.fail_at(r.field("failed_phase"), Errc::malformed, "unknown phase");
        }
    }
    if (r.ok() && r.has("deferred_until")) rel.deferred_until = r.i64("deferred_until");
    if (r.ok() && r.has("next_attempt_at")) rel.next_attempt_at = r.i64("next_attempt_at");
    if (r.ok() && r.has("max_attempts")) {
        rel.max_attempts = static_cast<std::uint32_t>(bounded_u64(r, "max_attempts", 1000));
    }
    if (r.ok() && r.has("deferred_by")) {
        rel.deferred_by = bounded_string(r, "deferred_by", kMaxHostnameBytes, /*single_line=*/true);
    }
    return rel;
}

Result<Report> decode_report(std::string_view payload) {
    auto doc = js::parse(payload, "report");
    if (!doc) return std::unexpected(doc.error());
    std::optional<Error> error;
    js::ObjectReader r(*doc, "report", error);
    Report report;
    if (r.u64("format") != 1 && r.ok()) r.fail_at(r.field("format"), Errc::malformed, "expected 1");
    report.device_id = r.string("device_id");
    const std::string key_hex = r.string("device_key");
    report.hostname = bounded_string(r, "hostname", kMaxHostnameBytes, /*single_line=*/true);
    report.sent_at = r.i64("sent_at");
    report.counter = bounded_u64(r, "counter", kMaxCounter);
    report.boot_id = bounded_string(r, "boot_id", kMaxBootIdBytes, /*single_line=*/true);
    if (r.ok() && r.has("agent_version")) {
        report.agent_version =
            bounded_string(r, "agent_version", kMaxAgentVersionBytes, /*single_line=*/true);
    }
    if (r.ok() && r.has("groups")) {
        if (const js::Json* groups = r.array("groups", core::kMaxRingGroups)) {
            std::set<std::string> seen;
            for (std::size_t i = 0; i < groups->size() && r.ok(); ++i) {
                const std::string where = r.field("groups") + "[" + std::to_string(i) + "]";
                std::string g = r.as_string((*groups)[i], where);
                if (!r.ok()) break;
                if (auto ok = core::validate_group_name(g); !ok) {
                    r.fail_at(where, ok.error().code, ok.error().message);
                } else if (!seen.insert(g).second) {
                    r.fail_at(where, Errc::malformed, "listed twice");
                }
                report.groups.push_back(std::move(g));
            }
        }
    }
    if (const js::Json* releases = r.array("releases", kMaxReportReleases)) {
        std::set<std::string> seen;
        for (std::size_t i = 0; i < releases->size() && r.ok(); ++i) {
            const std::string where = r.field("releases") + "[" + std::to_string(i) + "]";
            auto rel = read_release((*releases)[i], where, error);
            if (r.ok() && !seen.insert(rel.id).second) {
                r.fail_at(where + ".id", Errc::malformed, "listed twice");
            }
            report.releases.push_back(std::move(rel));
        }
    }
    if (error) return std::unexpected(*error);

    auto key = crypto::from_hex(key_hex);
    if (!key || key->size() != report.device_key.size()) {
        return fail(Errc::malformed, "report.device_key: expected 64 lowercase hex");
    }
    std::copy(key->begin(), key->end(), report.device_key.begin());
    return report;
}

}  // namespace

Result<Report> parse_report(std::string_view envelope_json) {
    auto env = core::parse_envelope(envelope_json, kMaxReportBytes);
    if (!env) return std::unexpected(env.error());
    if (env->payload_type != core::payload_type::report) {
        return fail(Errc::malformed, "payload_type is not a report");
    }
    const std::string_view payload(reinterpret_cast<const char*>(env->payload.data()),
                                   env->payload.size());
    auto report = decode_report(payload);
    if (!report) return report;
    if (report->device_id != device_id_for(report->device_key)) {
        return fail(Errc::malformed,
                    "report.device_id must be the first 32 hex characters of the device key id");
    }
    const crypto::PublicKey trusted[] = {report->device_key};
    if (auto ok = core::verify_envelope(*env, core::payload_type::report, trusted); !ok) {
        return fail(Errc::bad_signature, "report is not signed by its device key");
    }
    return report;
}

}  // namespace patchswarm::seeder
