// The admin credential of `serve` (docs/SECURITY.md, "HTTP surface"): the fleet view (dashboard,
// /v1/status, /metrics) tells an attacker which machines are still unpatched, so it is for
// admins only once the seeder listens beyond loopback.
//
// The credential is a random token in REPO/keys/admin.token (mode 0600, created by the first
// `serve`); whoever can read that file administers the repository anyway. Clients send it as
// `Authorization: Bearer TOKEN`, or as the password of HTTP Basic authentication (any user name)
// so that a browser can open the dashboard with its own login prompt.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "base/error.hpp"
#include "io/http/parse.hpp"

namespace patchswarm::seeder {

// Who must present the credential: clients from outside the machine (loopback addresses are
// the seeder's own admins), or everybody.
enum class AdminAuth { remote, always };

inline constexpr std::size_t kMinAdminTokenBytes = 16;
inline constexpr std::size_t kMaxAdminTokenBytes = 256;

// Reads the token (surrounding whitespace trimmed), creating the file with a new 256-bit token
// when it does not exist. Errc::malformed for a token shorter than 16 or longer than 256
// characters or holding whitespace or control characters inside; Errc::io for OS errors.
[[nodiscard]] Result<std::string> load_or_create_admin_token(const std::filesystem::path& file);

// 127.0.0.0/8, ::1 and IPv4-mapped loopback.
bool is_loopback_address(std::string_view address);

// Whether `req` may see admin routes: from loopback when `mode` is remote, or carrying the token.
bool admin_authorized(const io::http::Request& req, std::string_view token, AdminAuth mode);

// The 401 answer, asking browsers for Basic credentials.
io::http::Response admin_unauthorized();

}  // namespace patchswarm::seeder
