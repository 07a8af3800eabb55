// Halting a release by hand and lifting the halt: `patchswarm-seeder halt` / `resume`, separate
// processes that edit fleet.db while serve runs.
#pragma once

#include <string>

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

}  // namespace patchswarm::seeder
