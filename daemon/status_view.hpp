// `patchswarmd status` and `patchswarmd defer`: this endpoint's releases and states, and the
// deferral of one release. The CLI asks the running daemon over its control socket
// (daemon/control.hpp), which answers with the functions here on its own state.db connection;
// when no daemon runs, the CLI calls them on state.db itself. Either way the same code builds
// the document (docs/STATUS_JSON.md) and decides the deferral.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "base/error.hpp"

namespace patchswarm::daemon {

class EndpointStore;
struct StoredRelease;

// The status document of the endpoint whose state is in `store` and `state_dir` (device.pub).
// Errc::database. The second form opens state_dir/state.db (Errc::not_found without one).
[[nodiscard]] Result<nlohmann::json> endpoint_status(EndpointStore& store,
                                                     const std::filesystem::path& state_dir);
[[nodiscard]] Result<nlohmann::json> endpoint_status(const std::filesystem::path& state_dir);
// The terminal view of that document (progress bars when `tty`).
std::string render_endpoint_status(const nlohmann::json& status, bool tty);

// Whether `release` may be deferred to `until` at `now`, and to when: `until` clamped to the
// release's deadline. Errc::invalid_argument for a time not after `now` or a release that is
// already past the point a deferral could hold (effective or rejected). Pure.
[[nodiscard]] Result<std::int64_t> plan_deferral(const StoredRelease& release, std::int64_t until,
                                                 std::int64_t now);

// `patchswarmd defer ID --until T`: holds back the install and reboot of release `id` until
// `until` (unix seconds), never past the release's deadline (plan_deferral). `until` nullopt
// clears the deferral. Writes `store`. Returns the deferral as stored (nullopt when cleared).
// Errc::not_found for an unknown release id, the errors of plan_deferral, Errc::database.
// The second form opens state_dir/state.db (Errc::not_found without one).
[[nodiscard]] Result<std::optional<std::int64_t>> defer_release(EndpointStore& store,
                                                                const std::string& id,
                                                                std::optional<std::int64_t> until,
                                                                std::int64_t now);
[[nodiscard]] Result<std::optional<std::int64_t>> defer_release(
    const std::filesystem::path& state_dir, const std::string& id,
    std::optional<std::int64_t> until, std::int64_t now);

}  // namespace patchswarm::daemon
