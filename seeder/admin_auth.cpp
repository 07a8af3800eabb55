#include "seeder/admin_auth.hpp"

#include <algorithm>
#include <cctype>

#include "base/text.hpp"
#include "core/sites.hpp"
#include "crypto/crypto.hpp"
#include "io/fs.hpp"

namespace patchswarm::seeder {

namespace {

// Spaces, tabs and line ends: an editor's newline after the token is not part of it.
constexpr std::string_view kBlanks = " \t\r\n";

Result<std::string> check_token(std::string_view token, const std::filesystem::path& file) {
    if (token.size() < kMinAdminTokenBytes || token.size() > kMaxAdminTokenBytes) {
        return fail(Errc::malformed, file.string() + ": the admin token must be " +
                                         std::to_string(kMinAdminTokenBytes) + " to " +
                                         std::to_string(kMaxAdminTokenBytes) + " characters");
    }
    const bool printable = std::all_of(token.begin(), token.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u > 0x20 && u < 0x7f;
    });
    if (!printable) {
        return fail(Errc::malformed,
                    file.string() + ": the admin token holds spaces or control characters");
    }
    return std::string(token);
}

// "Basic base64(user:password)" gives the password; "Bearer T" gives T; else empty.
std::string presented_token(const io::http::Request& req) {
    if (auto basic = io::http::basic_credentials(req)) return basic->second;
    const auto it = req.headers.find("authorization");
    if (it == req.headers.end()) return {};
    const std::string_view value = trim(it->second, kBlanks);
    const auto space = value.find(' ');
    if (space == std::string_view::npos) return {};
    std::string scheme(value.substr(0, space));
    std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (scheme != "bearer") return {};
    return std::string(trim(value.substr(space + 1), kBlanks));
}

}  // namespace

Result<std::string> load_or_create_admin_token(const std::filesystem::path& file) {
    auto existing = io::read_file(file, kMaxAdminTokenBytes + 64);
    if (existing) return check_token(trim(*existing, kBlanks), file);
    if (existing.error().code != Errc::not_found) return std::unexpected(existing.error());
    const std::string token = crypto::to_hex(crypto::random_bytes(32));
    std::error_code ec;
    std::filesystem::create_directories(file.parent_path(), ec);
    if (ec) return fail(Errc::io, file.parent_path().string() + ": " + ec.message());
    if (auto ok = io::write_file_atomic(
            file, token + "\n",
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
        !ok) {
        return std::unexpected(ok.error());
    }
    return token;
}

bool is_loopback_address(std::string_view address) {
    const auto ip = core::parse_ip(address);
    if (!ip) return false;
    if (!ip->v6) return ip->bytes[0] == 127;
    return std::all_of(ip->bytes.begin(), ip->bytes.begin() + 15, [](auto b) { return b == 0; }) &&
           ip->bytes[15] == 1;
}

bool admin_authorized(const io::http::Request& req, std::string_view token, AdminAuth mode) {
    if (mode == AdminAuth::remote && is_loopback_address(req.remote_address)) return true;
    const std::string presented = presented_token(req);
    if (presented.empty() || token.empty()) return false;
    // Hash both sides first: equal lengths for the constant-time compare, whatever was sent.
    const auto a = crypto::sha256(crypto::as_bytes(presented));
    const auto b = crypto::sha256(crypto::as_bytes(token));
    return crypto::equal_constant_time(a, b);
}

io::http::Response admin_unauthorized() {
    auto res = io::http::json_response(
        401,
        R"({"error":"unauthorized","message":"admin credential required: send the token from )"
        R"(REPO/keys/admin.token as 'Authorization: Bearer TOKEN' or as the Basic password"})");
    res.headers["WWW-Authenticate"] = R"(Basic realm="patchswarm admin", charset="UTF-8")";
    return res;
}

}  // namespace patchswarm::seeder
