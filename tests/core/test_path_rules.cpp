#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/path_rules.hpp"

using namespace patchswarm;
using namespace patchswarm::core;

TEST_CASE("reserved Windows device names are found in any case and with any extension", "[core]") {
    for (std::string_view name : {"CON", "con", "Prn", "aux", "NUL", "nul.txt", "NUL.tar.gz",
                                  "con .txt", "CON  ", "COM0", "com9", "LPT1", "lpt9.log", "CONIN$",
                                  "conout$.x", "COM\xc2\xb9", "lpt\xc2\xb3.txt", "COM\xc2\xb2"}) {
        INFO(name);
        CHECK(is_windows_reserved_name(name));
    }
    for (std::string_view name : {"", "CONS", "CONSOLE", "COM", "COM10", "LPT", "LPTX", "xCON",
                                  "a.CON", "NUL_", " NUL", "COM\xc2\xb4", "CO"}) {
        INFO(name);
        CHECK_FALSE(is_windows_reserved_name(name));
    }
}

TEST_CASE("validate_windows_path names the rule a path breaks", "[core]") {
    struct Row {
        std::string_view path;
        std::string_view rule;
    };
    const Row rows[] = {
        {"\\\\server\\share\\x", "UNC path"},
        {"//server/share", "UNC path"},
        {"\\\\?\\C:\\x", "UNC path"},
        {"C:", "drive letter \"C:\""},
        {"z:evil", "drive letter \"z:\""},
        {"a/b:stream", "alternate data stream"},
        {"ab:$DATA", "alternate data stream"},  // "a:$DATA" would be drive A:
        {"a\\b", "backslash"},
        {"x/AUX.c/y", "\"AUX.c\" is a reserved device name"},
        {"x/y.", "\"y.\" ends with a dot or space"},
        {"x /y", "\"x \" ends with a dot or space"},
    };
    for (const auto& row : rows) {
        INFO(row.path);
        auto r = validate_windows_path(row.path);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::unsafe_path);
        CHECK(r.error().message.find(row.rule) != std::string::npos);
    }
    // "." and ".." and empty components are validate_relative_path's to refuse.
    for (std::string_view ok : {"a/b.c", "a/./b", "../a", "a..b", ".hidden", "1:", "\xc3\xa9"}) {
        INFO(ok);
        // "1:" has a colon, so it is refused; every other one passes.
        CHECK(validate_windows_path(ok).has_value() == (ok != "1:"));
    }
}

TEST_CASE("case folding keeps the byte length and folds the scripts NTFS folds", "[core]") {
    CHECK(fold_case_for_windows("Setup.EXE") == "setup.exe");
    CHECK(fold_case_for_windows("R\xc3\x89SUM\xc3\x89") == "r\xc3\xa9sum\xc3\xa9");  // RÉSUMÉ
    CHECK(fold_case_for_windows("\xc3\x9f") == "\xc3\x9f");                          // ß stays
    CHECK(fold_case_for_windows("\xc3\x97") == "\xc3\x97");  // × is not a letter
    CHECK(fold_case_for_windows("\xc4\x80") == "\xc4\x81");  // Ā → ā
    CHECK(fold_case_for_windows("\xc5\xbd") == "\xc5\xbe");  // Ž → ž
    CHECK(fold_case_for_windows("\xce\xa9") == "\xcf\x89");  // Ω → ω
    CHECK(fold_case_for_windows("\xd0\x96") == "\xd0\xb6");  // Ж → ж
    CHECK(fold_case_for_windows("\xd0\x81") == "\xd1\x91");  // Ё → ё
    CHECK(fold_case_for_windows("\xe6\x97\xa5\xff\x80") == "\xe6\x97\xa5\xff\x80");  // untouched
}

TEST_CASE("find_case_collision finds names and folders that differ only in case", "[core]") {
    auto collide = [](std::vector<std::string_view> paths) { return find_case_collision(paths); };
    CHECK_FALSE(collide({"a", "b/c", "b/d", "B1"}).has_value());
    CHECK_FALSE(collide({}).has_value());
    // The same spelling twice is a duplicate, not a case collision.
    CHECK_FALSE(collide({"a/x", "a/y"}).has_value());

    auto c = collide({"Setup.exe", "readme", "setup.exe"});
    REQUIRE(c.has_value());
    CHECK(c->first == 0);
    CHECK(c->second == 2);
    CHECK(c->first_name == "Setup.exe");
    CHECK(c->second_name == "setup.exe");

    c = collide({"Docs/a", "docs/b"});
    REQUIRE(c.has_value());
    CHECK(c->first_name == "Docs");
    CHECK(c->second_name == "docs");

    // A file and a folder of another file, in different case.
    c = collide({"DATA", "data/x"});
    REQUIRE(c.has_value());
    CHECK(c->second == 1);

    c = collide({"x/\xd0\x96", "x/\xd0\xb6"});  // Ж and ж
    REQUIRE(c.has_value());
    CHECK(c->second_name == "x/\xd0\xb6");
}
