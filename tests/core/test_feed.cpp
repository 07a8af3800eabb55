#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <set>
#include <string>

#include "core/feed.hpp"

namespace fs = std::filesystem;
using namespace patchswarm;
using namespace patchswarm::core;

namespace {

const fs::path kDataDir = fs::path(PATCHSWARM_TEST_DATA) / "feeds";

std::string read_data(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in.good());
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

Feed sample_feed() {
    Feed f;
    f.repository = "repo";
    f.sequence = 17;
    f.issued = 1763800000;
    f.expires = 1763886400;
    // Order is the seeder's to choose and is kept as is.
    f.releases = {{"MS10-001", 4, std::string(64, 'b'), 2},
                  {"MS08-067", 3, std::string(64, 'a'), std::nullopt}};
    f.halted = {"MS07-001"};
    return f;
}

Feed feed_with_releases(std::size_t count) {
    Feed f = sample_feed();
    f.releases.clear();
    for (std::size_t i = 0; i < count; ++i) {
        f.releases.push_back({"R" + std::to_string(i), i, std::string(64, 'e'), std::nullopt});
    }
    return f;
}

template <typename T>
std::optional<Error> error_of(const Result<T>& r) {
    if (r) return std::nullopt;
    return r.error();
}

}  // namespace

TEST_CASE("a feed survives serialise and parse unchanged", "[core]") {
    const Feed f = sample_feed();
    const std::string text = serialize_feed(f);
    CHECK(text.rfind(R"({"format":1,"repository":"repo","sequence":17,"issued":)", 0) == 0);
    auto parsed = parse_feed(text);
    REQUIRE(parsed.has_value());
    CHECK(*parsed == f);
    CHECK(serialize_feed(*parsed) == text);

    Feed empty = f;
    empty.releases.clear();
    empty.halted.clear();
    auto parsed_empty = parse_feed(serialize_feed(empty));
    REQUIRE(parsed_empty.has_value());
    CHECK(*parsed_empty == empty);
}

TEST_CASE("open_rings appears in the feed only for staged releases", "[core]") {
    const std::string text = serialize_feed(sample_feed());
    CHECK(text.find(R"("manifest_sha256":")" + std::string(64, 'b') + R"(","open_rings":2})") !=
          std::string::npos);
    // A release without a staged rollout serialises exactly as before open_rings existed.
    CHECK(text.find(R"("manifest_sha256":")" + std::string(64, 'a') + R"("})") !=
          std::string::npos);
    Feed f = sample_feed();
    f.releases[0].open_rings = kMaxOpenRings;
    CHECK(validate_feed(f).has_value());
    f.releases[0].open_rings = kMaxOpenRings + 1;
    CHECK_FALSE(validate_feed(f).has_value());
}

TEST_CASE("the valid feed file parses", "[core]") {
    auto f = parse_feed(read_data(kDataDir / "valid_feed.json"));
    REQUIRE(f.has_value());
    CHECK(f->sequence == 17);
    REQUIRE(f->releases.size() == 2);
    CHECK(f->releases[0].id == "MS08-067");
    CHECK(f->halted == std::vector<std::string>{"MS07-001"});
}

TEST_CASE("malicious feeds are refused with the right error", "[core]") {
    struct Row {
        const char* file;
        Errc code;
        const char* field;  // the error message must name it
    };
    const Row rows[] = {
        {"feed_unknown_format.json", Errc::malformed, "feed.format"},
        {"feed_missing_expires.json", Errc::malformed, "feed.expires"},
        {"feed_expires_before_issued.json", Errc::malformed, "feed.expires"},
        {"feed_negative_sequence.json", Errc::malformed, "feed.sequence"},
        {"feed_sequence_float.json", Errc::malformed, "feed.sequence"},
        {"feed_unknown_field.json", Errc::malformed, "feed.install_now"},
        {"feed_bad_repository.json", Errc::malformed, "feed.repository"},
        {"feed_bad_manifest_hash_length.json", Errc::malformed, "feed.releases[0].manifest_sha256"},
        {"feed_uppercase_manifest_hash.json", Errc::malformed, "feed.releases[0].manifest_sha256"},
        {"feed_dotdot_release_id.json", Errc::unsafe_path, "feed.releases[0].id"},
        {"feed_slash_in_release_id.json", Errc::malformed, "feed.releases[0].id"},
        {"feed_oversize_release_id.json", Errc::too_large, "feed.releases[0].id"},
        {"feed_duplicate_release.json", Errc::malformed, "feed.releases[1].id"},
        {"feed_unknown_release_field.json", Errc::malformed, "feed.releases[0].url"},
        {"feed_releases_not_array.json", Errc::malformed, "feed.releases"},
        {"feed_halted_not_array.json", Errc::malformed, "feed.halted"},
        {"feed_halted_not_string.json", Errc::malformed, "feed.halted[0]"},
        {"feed_bad_halted_id.json", Errc::malformed, "feed.halted[0]"},
        {"feed_duplicate_halted.json", Errc::malformed, "feed.halted[1]"},
        {"feed_duplicate_key.json", Errc::malformed, "\"sequence\""},
        {"feed_not_json.json", Errc::malformed, "feed"},
        {"feed_open_rings_zero.json", Errc::malformed, "feed.releases[0].open_rings"},
        {"feed_open_rings_over_bound.json", Errc::malformed, "feed.releases[0].open_rings"},
        {"feed_open_rings_negative.json", Errc::malformed, "feed.releases[0].open_rings"},
        {"feed_open_rings_as_string.json", Errc::malformed, "feed.releases[0].open_rings"},
        {"feed_open_rings_huge.json", Errc::malformed, "feed.releases[0].open_rings"},
    };

    std::set<std::string> covered{"valid_feed.json"};
    for (const auto& row : rows) {
        INFO(row.file);
        covered.insert(row.file);
        const std::string text = read_data(kDataDir / row.file);
        const std::optional<Error> error = error_of(parse_feed(text));
        REQUIRE(error.has_value());
        INFO(error->message);
        CHECK(error->code == row.code);
        CHECK(error->message.find(row.field) != std::string::npos);
    }
    // Every attack file in the folder has a row: a new file cannot be silently skipped.
    for (const auto& entry : fs::directory_iterator(kDataDir)) {
        INFO(entry.path().filename());
        CHECK(covered.contains(entry.path().filename().string()));
    }
}

TEST_CASE("a feed may list kMaxFeedReleases releases but not one more", "[core]") {
    const std::string at_bound = serialize_feed(feed_with_releases(kMaxFeedReleases));
    const std::string over = serialize_feed(feed_with_releases(kMaxFeedReleases + 1));
    REQUIRE(over.size() <= kMaxFeedBytes);  // the count bound must trip on its own

    CHECK(parse_feed(at_bound).has_value());
    auto r = parse_feed(over);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::too_large);
    CHECK(r.error().message.find("feed.releases") != std::string::npos);

    Feed halted_over = sample_feed();
    for (std::size_t i = 0; i <= kMaxFeedReleases; ++i) {
        halted_over.halted.push_back("H" + std::to_string(i));
    }
    CHECK(parse_feed(serialize_feed(halted_over)).error().code == Errc::too_large);
}

TEST_CASE("feed input over the byte bound is refused before parsing", "[core]") {
    auto feed = parse_feed(std::string(kMaxFeedBytes + 1, '{'));
    REQUIRE_FALSE(feed.has_value());
    CHECK(feed.error().code == Errc::too_large);
}

TEST_CASE("feeds are fresh until their expiry second", "[core]") {
    const Feed f = sample_feed();
    CHECK(check_feed_fresh(f, f.issued).has_value());
    CHECK(check_feed_fresh(f, f.expires - 1).has_value());
    CHECK(check_feed_fresh(f, f.expires).error().code == Errc::expired);
}

TEST_CASE("validate_feed refuses a model the seeder built wrongly", "[core]") {
    CHECK(validate_feed(sample_feed()).has_value());

    Feed duplicate = sample_feed();
    duplicate.releases.push_back(duplicate.releases.front());
    CHECK(validate_feed(duplicate).error().code == Errc::malformed);

    Feed stale = sample_feed();
    stale.expires = stale.issued;
    CHECK(validate_feed(stale).error().code == Errc::malformed);
}

TEST_CASE("a feed entry may carry a retry request, bounded and checked", "[core]") {
    Feed f;
    f.repository = "repo";
    f.sequence = 7;
    f.issued = 100;
    f.expires = 200;
    FeedEntry e;
    e.id = "KB1";
    e.sequence = 1;
    e.manifest_sha256 = std::string(64, 'a');
    e.retry = RetryRequest{3, {std::string(32, 'b')}};
    f.releases.push_back(e);
    const std::string text = serialize_feed(f);
    CHECK(text.find(R"("retry":{"generation":3,"devices":[")") != std::string::npos);
    auto back = parse_feed(text);
    REQUIRE(back);
    CHECK(*back == f);
    f.releases[0].retry->devices.clear();  // every device: the list is left out
    CHECK(serialize_feed(f).find(R"("retry":{"generation":3})") != std::string::npos);
    REQUIRE(parse_feed(serialize_feed(f)));

    const auto refused = [&](RetryRequest r) {
        Feed g = f;
        g.releases[0].retry = std::move(r);
        return !parse_feed(serialize_feed(g));
    };
    CHECK(refused({0, {}}));
    CHECK(refused({1, {"not-hex"}}));
    CHECK(refused({1, {std::string(32, 'c'), std::string(32, 'c')}}));
    CHECK(refused({1, std::vector<std::string>(kMaxRetryDevices + 1, std::string(32, 'd'))}));
    std::string unknown = serialize_feed(f);
    unknown.replace(unknown.find(R"("generation")"), 12, R"("everyone":1,"generation")");
    CHECK_FALSE(parse_feed(unknown));
}
