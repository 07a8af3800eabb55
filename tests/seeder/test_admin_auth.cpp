// The admin credential of `serve`: the token file, who must present it, and how.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "crypto/crypto.hpp"
#include "seeder/admin_auth.hpp"
#include "support/process.hpp"

using namespace patchswarm;
using namespace patchswarm::seeder;
using patchswarm::test::read_text;
using patchswarm::test::TempDir;
using patchswarm::test::write_text;

namespace {

io::http::Request request_from(const std::string& address, const std::string& authorization = "") {
    io::http::Request req;
    req.method = "GET";
    req.path = "/v1/status";
    req.remote_address = address;
    if (!authorization.empty()) req.headers["authorization"] = authorization;
    return req;
}

std::string basic(const std::string& user_password) {
    return "Basic " + crypto::to_base64(crypto::as_bytes(user_password));
}

}  // namespace

TEST_CASE("the admin token is created once, private, and read back the same", "[core]") {
    crypto::init();
    TempDir dir("ps-admin");
    const auto file = dir / "keys" / "admin.token";
    auto first = load_or_create_admin_token(file);
    REQUIRE(first);
    CHECK(first->size() == 64);
    struct stat st {};
    REQUIRE(::stat(file.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    auto again = load_or_create_admin_token(file);
    REQUIRE(again);
    CHECK(*again == *first);
    // Another repository gets another token.
    auto other = load_or_create_admin_token(dir / "other.token");
    REQUIRE(other);
    CHECK(*other != *first);
}

TEST_CASE("an admin token file that is short, oversized or holds spaces is refused unchanged",
          "[core]") {
    TempDir dir("ps-admin");
    const struct {
        const char* name;
        std::string content;
    } cases[] = {{"empty", ""},
                 {"too_short", "abc123\n"},
                 {"inner_space", "0123456789abcdef 0123456789abcdef"},
                 {"control_character",
                  "0123456789abcdef\x01"
                  "0123456789abcdef"},
                 {"oversized", std::string(300, 'a')}};
    for (const auto& c : cases) {
        INFO(c.name);
        const auto file = dir / c.name;
        write_text(file, c.content);
        auto token = load_or_create_admin_token(file);
        REQUIRE_FALSE(token);
        CHECK(token.error().code == Errc::malformed);
        CHECK(read_text(file) == c.content);
    }
    // Surrounding whitespace (an editor's newline) is not part of the token.
    write_text(dir / "padded", "  0123456789abcdef0123\n\n");
    auto padded = load_or_create_admin_token(dir / "padded");
    REQUIRE(padded);
    CHECK(*padded == "0123456789abcdef0123");
}

TEST_CASE("loopback addresses are told apart from everything else", "[core]") {
    for (const char* a : {"127.0.0.1", "127.70.0.5", "::1", "::ffff:127.0.0.1"}) {
        INFO(a);
        CHECK(is_loopback_address(a));
    }
    for (const char* a : {"10.0.0.1", "128.0.0.1", "::2", "::", "fe80::1", "", "localhost"}) {
        INFO(a);
        CHECK_FALSE(is_loopback_address(a));
    }
}

TEST_CASE("admin routes need the token from beyond loopback, or always when so configured",
          "[core]") {
    crypto::init();
    const std::string token = "0123456789abcdef0123456789abcdef";
    // remote: the machine itself is trusted, a LAN client is not.
    CHECK(admin_authorized(request_from("127.0.0.1"), token, AdminAuth::remote));
    CHECK(admin_authorized(request_from("::1"), token, AdminAuth::remote));
    CHECK_FALSE(admin_authorized(request_from("10.0.0.7"), token, AdminAuth::remote));
    CHECK_FALSE(admin_authorized(request_from("127.0.0.1"), token, AdminAuth::always));

    const struct {
        const char* name;
        std::string header;
        bool ok;
    } cases[] = {
        {"bearer", "Bearer " + token, true},
        {"bearer_scheme_case", "bEaReR " + token, true},
        {"basic_any_user", basic("alice:" + token), true},
        {"basic_empty_user", basic(":" + token), true},
        {"bearer_wrong_token", "Bearer " + token.substr(1) + "x", false},
        {"bearer_prefix_of_token", "Bearer " + token.substr(0, 16), false},
        {"bearer_token_with_suffix", "Bearer " + token + "0", false},
        {"bearer_empty", "Bearer ", false},
        {"basic_token_as_user", basic(token + ":"), false},
        {"basic_no_colon", basic(token), false},
        {"basic_not_base64", "Basic %%%", false},
        {"unknown_scheme", "Digest " + token, false},
        {"token_alone", token, false},
    };
    for (const auto& c : cases) {
        INFO(c.name);
        CHECK(admin_authorized(request_from("10.0.0.7", c.header), token, AdminAuth::remote) ==
              c.ok);
        CHECK(admin_authorized(request_from("127.0.0.1", c.header), token, AdminAuth::always) ==
              c.ok);
    }
    // No token configured (never the case in serve): nothing is accepted from beyond loopback.
    CHECK_FALSE(admin_authorized(request_from("10.0.0.7", "Bearer "), "", AdminAuth::remote));

    const auto res = admin_unauthorized();
    CHECK(res.status == 401);
    CHECK(res.headers.at("WWW-Authenticate").starts_with("Basic realm="));
}
