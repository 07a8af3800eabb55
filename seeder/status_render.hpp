// The fleet status document's three renderings: text for a terminal, the JSON document
// (docs/STATUS_JSON.md; GET /v1/status and the dashboard), and CSV for compliance reports.
// Pure: no clock, no I/O.
#pragma once

#include <string>

#include "seeder/status_model.hpp"

namespace patchswarm::seeder {

// `status --csv`: one row per endpoint per release (the quarterly compliance report):
// release,device_id,hostname,site,groups,ring,state,since,last_seen,effective,why.
// Text from reports is quoted, and a leading = + - @ is neutralised so that a spreadsheet never
// runs it as a formula.
std::string status_csv(const FleetStatus& status);

// The JSON document (one line, stable key order).
std::string status_json(const FleetStatus& status);

// Text for humans. With `tty`, progress bars and columns trimmed to fit a terminal; without,
// the same lines with plain percentages (for logs and pipes).
std::string render_status(const FleetStatus& status, bool tty);

}  // namespace patchswarm::seeder
