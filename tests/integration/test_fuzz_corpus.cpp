// Replays every fuzz seed (fuzz/corpus/<target>/) and every minimised crash reproducer
// (fuzz/regressions/<target>/) through the same harnesses the libFuzzer targets run, compiled
// here with GCC and without libFuzzer: each input must come back as a value or an error, with
// the harness's invariants holding (a broken one throws and names its check).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

// The harnesses are compiled into this test rather than linked: each fuzz_<target>.cpp defines
// libFuzzer's entry point unless PATCHSWARM_FUZZ_REPLAY is set.
#define PATCHSWARM_FUZZ_REPLAY 1
#include "fuzz/fuzz_enrolment.cpp"
#include "fuzz/fuzz_envelope.cpp"
#include "fuzz/fuzz_feed.cpp"
#include "fuzz/fuzz_http.cpp"
#include "fuzz/fuzz_manifest.cpp"
#include "fuzz/fuzz_report.cpp"
#include "fuzz/fuzz_torrent.cpp"
#include "fuzz/fuzz_tracker.cpp"

namespace fs = std::filesystem;

namespace {

using Harness = bool (*)(const std::uint8_t*, std::size_t);

struct Target {
    const char* name;
    Harness run;
};

constexpr Target kTargets[] = {
    {"envelope", patchswarm::fuzz::envelope_one},   {"manifest", patchswarm::fuzz::manifest_one},
    {"feed", patchswarm::fuzz::feed_one},           {"report", patchswarm::fuzz::report_one},
    {"tracker", patchswarm::fuzz::tracker_one},     {"torrent", patchswarm::fuzz::torrent_one},
    {"enrolment", patchswarm::fuzz::enrolment_one}, {"http", patchswarm::fuzz::http_one},
};

const fs::path kFuzzDir = PATCHSWARM_FUZZ_CORPUS;

std::vector<std::uint8_t> read_bytes(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in.good());
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Regular files of `dir`, sorted so that failures are reported in a stable order.
std::vector<fs::path> files_in(const fs::path& dir) {
    std::vector<fs::path> out;
    if (!fs::is_directory(dir)) return out;
    for (const auto& entry : fs::directory_iterator(dir)) {
        if (entry.is_regular_file()) out.push_back(entry.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

TEST_CASE("every fuzz seed and crash reproducer is parsed without a crash or broken invariant",
          "[core]") {
    for (const Target& target : kTargets) {
        const auto seeds = files_in(kFuzzDir / "corpus" / target.name);
        INFO("target " << target.name);
        // A missing or emptied corpus must fail here, not pass by replaying nothing.
        REQUIRE(!seeds.empty());
        std::size_t accepted = 0;
        for (const auto& path : seeds) {
            INFO("seed " << path.string());
            const auto bytes = read_bytes(path);
            bool ok = false;
            REQUIRE_NOTHROW(ok = target.run(bytes.data(), bytes.size()));
            accepted += ok ? 1 : 0;
        }
        // Valid seeds keep the fuzzer past the first checks; a format change that makes every
        // seed invalid needs new seeds (fuzz/README.md).
        CHECK(accepted > 0);
        for (const auto& path : files_in(kFuzzDir / "regressions" / target.name)) {
            INFO("reproducer " << path.string());
            const auto bytes = read_bytes(path);
            REQUIRE_NOTHROW(target.run(bytes.data(), bytes.size()));
        }
    }
}
