// The endpoint's status report (docs/PROTOCOL.md, "Report"): parsed, bounded and verified as a
// pure function, before anything is stored.
//
// Identity: an endpoint's device id is the first 32 hex characters (128 bits) of the key id of
// its Ed25519 device public key, i.e. hex(SHA-256(public key))[0:32]. A report is accepted only
// if its device_id is exactly that for its device_key and the envelope is signed by that key;
// which key a device id may use is pinned by the fleet database (trust on first use).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "core/manifest.hpp"
#include "core/state_machine.hpp"
#include "crypto/crypto.hpp"

namespace patchswarm::seeder {

inline constexpr std::size_t kMaxReportBytes = 64 * 1024;
inline constexpr std::size_t kMaxReportReleases = 1000;
inline constexpr std::size_t kMaxHostnameBytes = 255;
inline constexpr std::size_t kMaxBootIdBytes = 128;
inline constexpr std::size_t kMaxAgentVersionBytes = 64;
inline constexpr std::size_t kMaxReasonBytes = 4096;
using core::device_id_for;  // core/manifest.hpp
using core::kDeviceIdHexChars;

struct ReleaseReport {
    std::string id;
    std::string manifest_sha256;  // 64 lowercase hex, or empty when the endpoint has none
    core::State state = core::State::announced;
    std::int64_t entered_at = 0;
    double progress = 0;  // 0..1
    std::uint64_t bytes_from_peers = 0;
    std::uint64_t bytes_from_seeder = 0;
    // Received from peers of the endpoint's own site vs. from outside it (the seeder
    // included). Optional: endpoints before sites do not send them.
    std::optional<std::uint64_t> bytes_from_lan;
    std::optional<std::uint64_t> bytes_from_wan;
    std::uint32_t attempts = 0;
    std::string reason;
    // Optional (agents before rollouts do not send them): which step failed, when failed
    // (auto-halt counts install and verify failures only); a local deferral still holding.
    std::optional<core::Phase> failed_phase;
    std::optional<std::int64_t> deferred_until;
    // Optional (agents before these do not send them): when failed, the next retry (0: none
    // left) and the attempts the endpoint allows in all; who set the deferral ("alice", or
    // "root"), when one holds.
    std::optional<std::int64_t> next_attempt_at;
    std::optional<std::uint32_t> max_attempts;
    std::optional<std::string> deferred_by;
};

struct Report {
    std::string device_id;
    crypto::PublicKey device_key{};
    std::string hostname;  // no control characters
    std::int64_t sent_at = 0;
    std::uint64_t counter = 0;  // strictly increasing per device (replay defence)
    std::string boot_id;
    // The endpoint's configured groups (rollout rings and windows). Optional; at most
    // core::kMaxRingGroups valid, unique group names.
    std::vector<std::string> groups;
    std::vector<ReleaseReport> releases;  // ids unique
    // The agent's version (patchswarmd --version). Optional: "" from agents before 0.1.0.
    std::string agent_version;
};

// Parses the report envelope (the POST body), checks its type, decodes and bounds every field,
// then verifies the signature with the payload's own device_key and that device_id matches it.
// Unknown fields are ignored (a report is a status snapshot, not an authority), duplicate keys
// are refused. Errc::too_large, Errc::malformed or Errc::bad_signature; nothing is stored.
[[nodiscard]] Result<Report> parse_report(std::string_view envelope_json);

}  // namespace patchswarm::seeder
