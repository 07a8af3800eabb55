// core::sanitize_output: installer output as a one-line, bounded, path-free failure reason.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "core/output_text.hpp"

using namespace patchswarm::core;

namespace {
const std::vector<std::string> kPaths{"/var/lib/patchswarm", "/var/lib/patchswarm/releases/KB1"};
}

TEST_CASE("installer output loses control characters, trailing whitespace and blank lines",
          "[core]") {
    struct Case {
        std::string raw, expected;
    };
    const std::vector<Case> cases = {
        {"error: disk full\n", "error: disk full"},
        {"error: disk full  \t\r\n\n\n", "error: disk full"},
        {"step 1\nstep 2 failed\n", "step 1 | step 2 failed"},
        {"\x1b[31mred\x1b[0m text", "red text"},
        {"title\x1b]0;pwned\x07 done", "title done"},
        {std::string("bell\a and nul\0 and del\x7f", 23), "bell and nul and del"},
        {"c1 \xc2\x9b"
         "31m here",
         "c1 31m here"},
        {"bad \xff\xfe utf8", "bad ?? utf8"},
        {"tab\there", "tab here"},
        {"r\xc3\xa9sum\xc3\xa9", "r\xc3\xa9sum\xc3\xa9"},
        {"\n\n  \n", ""},
    };
    for (const auto& c : cases) {
        INFO(c.raw);
        CHECK(sanitize_output(c.raw, {}) == c.expected);
    }
}

TEST_CASE("the state folder's path never leaves the endpoint in a reason", "[core]") {
    CHECK(sanitize_output("cannot open /var/lib/patchswarm/releases/KB1/install/x.deb\n", kPaths) ==
          "cannot open <state-dir>/install/x.deb");
    CHECK(sanitize_output("key in /var/lib/patchswarm/device.key", kPaths) ==
          "key in <state-dir>/device.key");
    CHECK(sanitize_output("/var/lib/other stays", kPaths) == "/var/lib/other stays");
    const std::vector<std::string> empty{""};
    CHECK(sanitize_output("nothing to hide", empty) == "nothing to hide");
}

TEST_CASE("long output is capped, keeping its end on a character boundary", "[core]") {
    const std::string raw = std::string(1000, 'a') + "\xc3\xa9" + "the real error\n";
    CHECK(sanitize_output(raw, {}, 16) == "...\xc3\xa9the real error");
    // 15 bytes would start inside the two-byte character: it is left out whole.
    CHECK(sanitize_output(raw, {}, 15) == "...the real error");
    CHECK(sanitize_output(std::string(5000, 'x'), {}).size() == kMaxReasonOutputBytes + 3);
    CHECK(sanitize_output("short", {}, 15) == "short");
}
