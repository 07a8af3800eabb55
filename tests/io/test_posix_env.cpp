// io/posix_env: the POSIX implementation of the Env seam.
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>

#include "io/env.hpp"
#include "support/process.hpp"

using patchswarm::test::TempDir;
namespace io = patchswarm::io;
namespace fs = std::filesystem;

TEST_CASE("the POSIX env reads the boot id file, trimmed, and empty when it is missing", "[io]") {
    TempDir dir;
    const fs::path file = dir / "boot_id";
    std::ofstream(file) << "3f1c0e5a-5b7e-4c43-9a55-0d7f6f1d2b11\n";
    auto env = io::make_posix_env(file);
    CHECK(env->boot_id() == "3f1c0e5a-5b7e-4c43-9a55-0d7f6f1d2b11");
    std::ofstream(file) << "second-boot";
    CHECK(env->boot_id() == "second-boot");
    fs::remove(file);
    CHECK(env->boot_id().empty());
}

TEST_CASE("the POSIX env's clocks are the system's", "[io]") {
    auto env = io::make_posix_env();
    const auto sys = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    CHECK(env->now_unix() >= sys);
    CHECK(env->now_unix() <= sys + 5);
    const auto a = env->now_steady();
    CHECK(env->now_steady() >= a);
}

TEST_CASE("the POSIX env writes atomically and reads back with a bound", "[io]") {
    TempDir dir;
    auto env = io::make_posix_env();
    REQUIRE(
        env->write_file_atomic(dir / "f", "hello", fs::perms::owner_read | fs::perms::owner_write)
            .has_value());
    auto back = env->read_file(dir / "f", 16);
    REQUIRE(back.has_value());
    CHECK(*back == "hello");
    CHECK_FALSE(env->read_file(dir / "f", 3).has_value());
    CHECK(env->read_file(dir / "absent", 16).error().code == patchswarm::Errc::not_found);
}
