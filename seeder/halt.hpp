// Halting a release by hand and lifting the halt: `patchswarm-seeder halt` / `resume`, separate
// processes that edit fleet.db while serve runs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "seeder/repo.hpp"

namespace patchswarm::seeder {

// `patchswarm-seeder halt ID [--reason TEXT]` / `resume ID`: record a manual halt (or lift
// one) in fleet.db, for the release's current manifest. A running `serve` notices at once (its
// file watch sees fleet.db's WAL change; at the latest its coarse re-check) and re-signs the
// feed; without `serve` running it takes effect when serve starts. Errc::not_found when the id
// is not published (or, for resume, not halted), Errc::invalid_argument for a bad id.
[[nodiscard]] Result<void> halt_release(const RepoPaths& paths, const std::string& id,
                                        const std::string& reason, std::int64_t now);
[[nodiscard]] Result<void> resume_release(const RepoPaths& paths, const std::string& id,
                                          std::int64_t now);

// `patchswarm-seeder retry ID [--device D | --failed | --site S]`: asks endpoints whose release
// failed (also those that gave up) to try again from attempt 1, through the signed feed (serve
// re-signs it at once, as for halt). Scope: one device (re-armed if it is failed when it sees
// the request); every failed endpoint (`failed`, the default); or the endpoints of a site that
// are failed now (resolved here, from the status view: at most core::kMaxRetryDevices).
struct RetryScope {
    std::optional<std::string> device;  // 32 lowercase hex
    std::optional<std::string> site;    // a site name as status shows it
};
struct RetryOutcome {
    std::uint32_t generation = 0;
    std::vector<std::string> devices;  // empty: every failed endpoint
};
// Errc::not_found (id not published, or no failed endpoint at the site), Errc::invalid_argument
// (bad id or device), Errc::too_large (a site with more failed endpoints than a request holds).
[[nodiscard]] Result<RetryOutcome> retry_release(const RepoPaths& paths, const std::string& id,
                                                 const RetryScope& scope, std::int64_t now);

// The `retry` command line that re-arms `devices` (empty: --failed) of release `id`, for the
// dashboard and status to show next to the endpoints that need it.
std::string retry_command(const std::string& repo, const std::string& id,
                          std::string_view scope_flag, std::string_view scope_value = {});

}  // namespace patchswarm::seeder
