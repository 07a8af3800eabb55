// The Windows command building of io/win_command.hpp, on every platform: argv -> command line
// -> CommandLineToArgvW's split must give the argv back, and installers get the msiexec, wusa
// and cmd.exe lines Windows expects.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "io/win_command.hpp"

using namespace patchswarm;
using namespace patchswarm::io::win;

namespace {

const std::string kRelease = R"(C:\ProgramData\patchswarm\releases\MS08-067\KB958644)";
const std::string kSystem = R"(C:\Windows\system32)";

Launch launch_of(std::vector<std::string> argv) {
    auto l = installer_launch(argv, kRelease, kSystem);
    INFO((l ? "" : l.error().message));
    REQUIRE(l.has_value());
    return *l;
}

}  // namespace

TEST_CASE("quote_argument follows the CommandLineToArgvW escaping rules", "[core]") {
    struct Row {
        std::string arg;
        std::string quoted;
    };
    const Row rows[] = {
        {"plain", "plain"},
        {R"(C:\no\spaces\)", R"(C:\no\spaces\)"},  // backslashes are literal outside quotes
        {"", R"("")"},
        {"two words", R"("two words")"},
        {"tab\there", "\"tab\there\""},
        {R"(say "hi")", R"("say \"hi\"")"},
        {R"(trailing\ )", R"("trailing\ ")"},
        {R"(C:\Program Files\)", R"("C:\Program Files\\")"},  // doubled before the closing quote
        {R"(a\"b)", R"("a\\\"b")"},                           // 2n+1 before an escaped quote
        {R"(a\\"b c)", R"("a\\\\\"b c")"},
        {R"(")", R"("\"")"},
    };
    for (const auto& row : rows) {
        INFO(row.arg);
        CHECK(quote_argument(row.arg) == row.quoted);
    }
}

TEST_CASE("parse_command_line splits as CommandLineToArgvW does", "[core]") {
    using V = std::vector<std::string>;
    CHECK(parse_command_line("") == V{});
    CHECK(parse_command_line(R"("C:\Program Files\a.exe" x)") ==
          V{R"(C:\Program Files\a.exe)", "x"});
    // The program name takes no escapes: a backslash before its closing quote is literal.
    CHECK(parse_command_line(R"("C:\dir\" x)") == V{R"(C:\dir\)", "x"});
    CHECK(parse_command_line(R"(p a\\b "c d" e\"f)") == V{"p", R"(a\\b)", "c d", R"(e"f)"});
    CHECK(parse_command_line(R"(p a\\\\"b c" d)") == V{"p", R"(a\\b c)", "d"});
    CHECK(parse_command_line("p  \t a   b ") == V{"p", "a", "b"});
    CHECK(parse_command_line(R"(p "")") == V{"p", ""});
    // Documented examples (Microsoft, "Parsing C++ command-line arguments").
    CHECK(parse_command_line(R"(p "abc" d e)") == V{"p", "abc", "d", "e"});
    CHECK(parse_command_line(R"(p a\\\b d"e f"g h)") == V{"p", R"(a\\\b)", "de fg", "h"});
    CHECK(parse_command_line(R"(p a\\\"b c d)") == V{"p", R"(a\"b)", "c", "d"});
    CHECK(parse_command_line(R"(p a\\\\"b c" d e)") == V{"p", R"(a\\b c)", "d", "e"});
    // Consecutive quotes: the undocumented rule Windows and Wine share.
    CHECK(parse_command_line(R"(p """a b""")") == V{"p", R"("a)", R"(b")"});
    CHECK(parse_command_line(R"(p "a""b")") == V{"p", R"(a"b)"});
}

TEST_CASE("build_command_line round-trips every argv through CommandLineToArgvW", "[core]") {
    const std::vector<std::string> pieces = {
        "",
        "a",
        " ",
        "\t",
        "\"",
        "\\",
        "\\\\",
        "\\\"",
        "a b",
        "\xc3\xa9\xe6\x97\xa5",
        "x\\",
        "\"\"",
        "C:\\Program Files\\",
        "/qn",
        "PROP=a b",
    };
    // Every argument of one or two pieces, alone and after others.
    std::size_t checked = 0;
    for (const auto& p : pieces) {
        for (const auto& q : pieces) {
            const std::vector<std::string> argv = {R"(C:\dir with space\setup.exe)", p + q, q,
                                                   p + "\\" + q};
            auto line = build_command_line(argv);
            REQUIRE(line.has_value());
            INFO(*line);
            CHECK(parse_command_line(*line) == argv);
            ++checked;
        }
    }
    CHECK(checked == pieces.size() * pieces.size());
}

TEST_CASE("build_command_line refuses what cannot be passed", "[core]") {
    using V = std::vector<std::string>;
    CHECK(build_command_line(V{}).error().code == Errc::invalid_argument);
    CHECK(build_command_line(V{""}).error().code == Errc::invalid_argument);
    CHECK(build_command_line(V{"a\"b.exe"}).error().code == Errc::invalid_argument);
    CHECK(build_command_line(V{"a.exe", std::string("x\0y", 3)}).error().code ==
          Errc::invalid_argument);
}

TEST_CASE("an .msi runs through msiexec /i /qn /norestart", "[core]") {
    const auto l = launch_of({"./KB958644.msi", "REBOOT=ReallySuppress",
                              "TARGETDIR=C:\\Program Files\\X", "/l*v", "C:\\log dir\\x.log"});
    CHECK(l.application == R"(C:\Windows\system32\msiexec.exe)");
    CHECK(l.command_line ==
          R"("C:\Windows\system32\msiexec.exe" /i )"
          R"("C:\ProgramData\patchswarm\releases\MS08-067\KB958644\KB958644.msi" /qn /norestart )"
          R"(REBOOT=ReallySuppress TARGETDIR="C:\Program Files\X" /l*v "C:\log dir\x.log")");
    // A quote inside a property value is doubled, as msiexec expects.
    CHECK(launch_of({"a.MSI", "P=say \"x\""}).command_line.ends_with(R"(P="say ""x""")"));
}

TEST_CASE("an .msu runs through wusa /quiet /norestart", "[core]") {
    const auto l = launch_of({"updates/windows6.1-kb958644-x64.msu"});
    CHECK(l.application == R"(C:\Windows\system32\wusa.exe)");
    CHECK(
        l.command_line ==
        R"("C:\Windows\system32\wusa.exe" )"
        R"("C:\ProgramData\patchswarm\releases\MS08-067\KB958644\updates\windows6.1-kb958644-x64.msu")"
        R"( /quiet /norestart)");
}

TEST_CASE("an .exe runs as given, its argv quoted for CommandLineToArgvW", "[core]") {
    const auto l = launch_of({"setup/Setup.EXE", "/S", "--dir=C:\\Program Files\\A\\", "a\"b"});
    const std::string exe = kRelease + R"(\setup\Setup.EXE)";
    CHECK(l.application == exe);
    CHECK(parse_command_line(l.command_line) ==
          std::vector<std::string>{exe, "/S", "--dir=C:\\Program Files\\A\\", "a\"b"});
}

TEST_CASE("a .cmd runs under cmd.exe /d /v:off /s /c with only inert characters", "[core]") {
    const auto l = launch_of({"./install.cmd", "--quiet", "two words", "k=v"});
    CHECK(l.application == R"(C:\Windows\system32\cmd.exe)");
    CHECK(l.command_line == R"("C:\Windows\system32\cmd.exe" /d /v:off /s /c "")" + kRelease +
                                R"(\install.cmd" --quiet "two words" "k=v"")");
    CHECK(launch_of({"fix.BAT"}).application == R"(C:\Windows\system32\cmd.exe)");
    // Each of these would be an operator, an expansion or an escape to cmd.exe.
    for (std::string bad :
         {"a&calc", "a|b", "a>b", "a<b", "%PATH%", "!x!", "a^b", "\"", "(x)", "a\nb", "*", "?"}) {
        INFO(bad);
        auto r = installer_launch(std::vector<std::string>{"install.cmd", bad}, kRelease, kSystem);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::invalid_argument);
    }
    // The script's own name is on the line too.
    CHECK_FALSE(installer_launch(std::vector<std::string>{"a%b%.cmd"}, kRelease, kSystem));
}

TEST_CASE("installers outside the release folder or of unknown kinds are refused", "[core]") {
    for (std::vector<std::string> argv :
         std::vector<std::vector<std::string>>{{},
                                               {"install.sh"},
                                               {"script.ps1"},
                                               {"noext"},
                                               {"../escape.exe"},
                                               {"C:/Windows/evil.exe"},
                                               {"/abs/x.msi"},
                                               {"a\\b.exe"},
                                               {"CON.exe"},
                                               {"x.exe", std::string("a\0b", 3)}}) {
        INFO((argv.empty() ? "(empty)" : argv[0]));
        auto r = installer_launch(argv, kRelease, kSystem);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::invalid_argument);
    }
    CHECK(installer_kind("A.Msi").value() == InstallerKind::msi);
    CHECK(installer_kind("x.cmd").value() == InstallerKind::cmd);
}

TEST_CASE("UTF-8 and UTF-16 convert both ways and invalid UTF-8 is refused", "[core]") {
    const std::string text = "a\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80";  // a é 日 😀
    auto wide = utf8_to_utf16(text);
    REQUIRE(wide.has_value());
    CHECK(*wide == std::u16string{u'a', 0xE9, 0x65E5, 0xD83D, 0xDE00});
    CHECK(utf16_to_utf8(*wide) == text);
    for (std::string bad :
         {"\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc3", "\x80", "\xff"}) {
        INFO(bad.size());
        CHECK_FALSE(utf8_to_utf16(bad).has_value());
    }
    CHECK(utf16_to_utf8(std::u16string{0xD800, u'x'}) == "\xef\xbf\xbdx");
}
