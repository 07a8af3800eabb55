// The root document model (core/root.hpp): canonical bytes, and every malicious root file in
// tests/data/roots refused with the right error naming the field. The chain rules (rotation,
// thresholds, freeze) are in test_trust.cpp.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>

#include "core/root.hpp"

namespace fs = std::filesystem;
using namespace patchswarm;
using namespace patchswarm::core;

namespace {

const fs::path kDataDir = fs::path(PATCHSWARM_TEST_DATA) / "roots";

std::string read_data(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in.good());
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("the valid root file parses and survives serialise and parse unchanged", "[core]") {
    auto r = parse_root(read_data(kDataDir / "valid_root.json"));
    REQUIRE(r.has_value());
    CHECK(r->version == 1);
    CHECK(r->keys.size() == 7);
    CHECK(r->root.threshold == 2);
    CHECK(r->release.keyids.size() == 3);
    CHECK(r->feed.keyids.size() == 1);
    const std::string canonical = serialize_root(*r);
    CHECK(canonical.rfind(R"({"format":1,"version":1,"expires":1795336000,"keys":{)", 0) == 0);
    auto again = parse_root(canonical);
    REQUIRE(again.has_value());
    CHECK(*again == *r);
    CHECK(serialize_root(*again) == canonical);
    CHECK(key_set(*r, r->release).keys.size() == 3);
    CHECK(key_set(*r, r->release).threshold == 2);
}

TEST_CASE("malicious root documents are refused with the right error", "[core]") {
    struct Row {
        const char* file;
        Errc code;
        const char* field;  // the error message must name it
    };
    const Row rows[] = {
        {"root_unknown_field.json", Errc::malformed, "root.consistent_snapshot"},
        {"root_unknown_role.json", Errc::malformed, "root.roles.mirror"},
        {"root_missing_feed_role.json", Errc::malformed, "root.roles.feed"},
        {"root_threshold_zero.json", Errc::malformed, "root.roles.root.threshold"},
        {"root_threshold_over_keys.json", Errc::malformed, "root.roles.release.threshold"},
        {"root_threshold_over_eight.json", Errc::malformed, "root.roles.release.threshold"},
        {"root_keyid_not_hash_of_key.json", Errc::malformed, "root.keys."},
        {"root_unsorted_keyids.json", Errc::malformed, "root.roles.root.keyids"},
        {"root_duplicate_keyid_in_role.json", Errc::malformed, "root.roles.release.keyids"},
        {"root_feed_key_is_release_key.json", Errc::malformed, "root.roles.feed"},
        {"root_feed_key_is_root_key.json", Errc::malformed, "root.roles.feed"},
        {"root_unknown_keyid.json", Errc::malformed, "root.roles.release"},
        {"root_version_zero.json", Errc::malformed, "root.version"},
        {"root_expires_as_string.json", Errc::malformed, "root.expires"},
        {"root_unknown_format.json", Errc::malformed, "root.format"},
        {"root_uppercase_key.json", Errc::malformed, "root.keys."},
        {"root_short_key.json", Errc::malformed, "root.keys."},
        {"root_too_many_keys.json", Errc::too_large, "root.keys"},
        {"root_duplicate_key.json", Errc::malformed, "\"version\""},
        {"root_not_object.json", Errc::malformed, "root"},
    };
    std::set<std::string> covered{"valid_root.json"};
    for (const auto& row : rows) {
        INFO(row.file);
        covered.insert(row.file);
        auto r = parse_root(read_data(kDataDir / row.file));
        REQUIRE_FALSE(r.has_value());
        INFO(r.error().message);
        CHECK(r.error().code == row.code);
        CHECK(r.error().message.find(row.field) != std::string::npos);
    }
    // Every attack file in the folder has a row: a new file cannot be silently skipped.
    for (const auto& entry : fs::directory_iterator(kDataDir)) {
        INFO(entry.path().filename());
        CHECK(covered.contains(entry.path().filename().string()));
    }
}

TEST_CASE("root input over the byte bound is refused before parsing", "[core]") {
    auto r = parse_root(std::string(kMaxRootBytes + 1, '{'));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::too_large);
}

TEST_CASE("roots are fresh until their expiry second", "[core]") {
    auto r = parse_root(read_data(kDataDir / "valid_root.json"));
    REQUIRE(r.has_value());
    CHECK(check_root_fresh(*r, r->expires - 1).has_value());
    CHECK(check_root_fresh(*r, r->expires).error().code == Errc::expired);
}

TEST_CASE("root routes are exactly /v1/root/<N>.json", "[core]") {
    CHECK(root_route(7) == "/v1/root/7.json");
    CHECK(root_route_version("/v1/root/7.json") == 7u);
    CHECK(root_route_version("/v1/root/123456.json") == 123456u);
    for (const char* bad : {"/v1/root/0.json", "/v1/root/07.json", "/v1/root/.json",
                            "/v1/root/staged.json", "/v1/root/7", "/v1/root/7.json/",
                            "/v1/root/-7.json", "/v1/root/99999999999999999999.json",
                            "/v1/root/9223372036854775808.json", "/v1/roots/7.json"}) {
        INFO(bad);
        CHECK_FALSE(root_route_version(bad).has_value());
    }
}
