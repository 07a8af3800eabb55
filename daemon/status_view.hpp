// `patchswarmd status`: this endpoint's releases and states, read straight from state.db (the
// daemon need not run). The JSON document is documented in docs/STATUS_JSON.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "base/error.hpp"

namespace patchswarm::daemon {

[[nodiscard]] Result<nlohmann::json> endpoint_status(const std::filesystem::path& state_dir);
std::string render_endpoint_status(const nlohmann::json& status, bool tty);

// `patchswarmd defer ID --until T`: holds back the install and reboot of release `id` until
// `until` (unix seconds), never past the release's deadline (the stored deferral is clamped to
// it). `until` nullopt clears the deferral. Writes state.db, which the agent reads every tick
// (the agent need not run). Returns the deferral as stored (nullopt when cleared).
// Errc::not_found for a state dir without state.db or an unknown release id,
// Errc::invalid_argument for a time not after `now` or a release that is already past the
// point a deferral could hold (effective or rejected), Errc::database.
[[nodiscard]] Result<std::optional<std::int64_t>> defer_release(
    const std::filesystem::path& state_dir, const std::string& id,
    std::optional<std::int64_t> until, std::int64_t now);

}  // namespace patchswarm::daemon
