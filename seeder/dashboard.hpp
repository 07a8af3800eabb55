// The read-only fleet dashboard that `serve` answers at GET / and GET /dashboard: one
// self-contained HTML page (inline CSS and JS, nothing fetched from elsewhere) that polls
// GET /v1/status every 2 s and draws it. It shows only what /v1/status already exposes.
#pragma once

#include <string_view>

namespace patchswarm::seeder {

// The page, a static string (no allocation, any thread). Data from reports is put into the page
// with textContent only, never parsed as HTML.
std::string_view dashboard_html();

// Headers to send with the page: no caching, and a Content-Security-Policy that lets it talk
// only to its own origin (a script injected despite the escaping could not load or send out
// anything).
inline constexpr std::string_view kDashboardCsp =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'";

}  // namespace patchswarm::seeder
