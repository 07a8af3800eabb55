#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "io/fs.hpp"
#include "support/process.hpp"

namespace fs = std::filesystem;
using namespace patchswarm;

namespace {

using patchswarm::test::TempDir;

std::size_t entries_in(const fs::path& dir) {
    return static_cast<std::size_t>(
        std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

}  // namespace

TEST_CASE("write_file_atomic writes, replaces, and leaves no temporary file", "[core]") {
    TempDir dir;
    const fs::path file = dir.path() / "index.json";

    REQUIRE(io::write_file_atomic(file, "first").has_value());
    CHECK(io::read_file(file, 100).value() == "first");
    REQUIRE(io::write_file_atomic(file, std::string(100'000, 'x')).has_value());
    CHECK(io::read_file(file, 100'000).value() == std::string(100'000, 'x'));
    REQUIRE(io::write_file_atomic(file, "").has_value());
    CHECK(io::read_file(file, 100).value().empty());
    CHECK(entries_in(dir.path()) == 1);
}

TEST_CASE("write_file_atomic applies the requested permissions exactly", "[core]") {
    TempDir dir;
    const fs::path secret = dir.path() / "secret";
    const auto owner_only = fs::perms::owner_read | fs::perms::owner_write;
    REQUIRE(io::write_file_atomic(secret, "s", owner_only).has_value());
    CHECK(fs::status(secret).permissions() == owner_only);

    const fs::path pub = dir.path() / "public";
    REQUIRE(io::write_file_atomic(pub, "p").has_value());
    CHECK(fs::status(pub).permissions() ==
          (owner_only | fs::perms::group_read | fs::perms::others_read));
}

TEST_CASE("write_file_atomic into a missing folder fails cleanly", "[core]") {
    TempDir dir;
    auto r = io::write_file_atomic(dir.path() / "absent" / "file", "x");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::not_found);
    CHECK(entries_in(dir.path()) == 0);
}

TEST_CASE("read_file enforces its bound and reports missing files", "[core]") {
    TempDir dir;
    const fs::path file = dir.path() / "f";
    REQUIRE(io::write_file_atomic(file, "12345").has_value());

    CHECK(io::read_file(file, 5).value() == "12345");
    auto over = io::read_file(file, 4);
    REQUIRE_FALSE(over.has_value());
    CHECK(over.error().code == Errc::too_large);

    auto missing = io::read_file(dir.path() / "absent", 10);
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().code == Errc::not_found);

    auto folder = io::read_file(dir.path(), 10);
    REQUIRE_FALSE(folder.has_value());
    CHECK(folder.error().code == Errc::io);
}

TEST_CASE("read_file stops at its bound on files without a size", "[core]") {
    // /dev/zero never ends: the bound, not the stat size, must stop the read.
    auto r = io::read_file("/dev/zero", 1000);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::too_large);
}
