// The Windows Env (io/win_env.hpp) on Windows itself: built only by the Windows cross-build
// (cmake/windows.cmake) and run under Wine there (ctest -L windows in build-win/). What Wine
// cannot show (a real SCM, real ACL enforcement, wusa, msiexec) is listed in docs/WINDOWS.md.
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
// After windows.h:
#include <shellapi.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "io/fs.hpp"
#include "io/process.hpp"
#include "io/win_command.hpp"
#include "io/win_env.hpp"

namespace fs = std::filesystem;
using namespace patchswarm;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        path = fs::temp_directory_path() / ("ps-win-" + std::to_string(::GetCurrentProcessId()) +
                                            "-" + std::to_string(::GetTickCount64()));
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

void write(const fs::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary);
    out << text;
}

// The real CommandLineToArgvW (shell32) on `line`, in UTF-8.
std::vector<std::string> system_split(const std::string& line) {
    auto wide = io::win::utf8_to_utf16(line);
    REQUIRE(wide.has_value());
    int argc = 0;
    LPWSTR* argv = ::CommandLineToArgvW(reinterpret_cast<const wchar_t*>(wide->c_str()), &argc);
    REQUIRE(argv != nullptr);
    std::vector<std::string> out;
    for (int i = 0; i < argc; ++i) {
        std::wstring_view arg(argv[i]);
        out.push_back(io::win::utf16_to_utf8(
            std::u16string_view(reinterpret_cast<const char16_t*>(arg.data()), arg.size())));
    }
    ::LocalFree(argv);
    return out;
}

}  // namespace

TEST_CASE("build_command_line agrees with the system's CommandLineToArgvW", "[windows]") {
    const std::vector<std::string> pieces = {"a",
                                             " ",
                                             "\t",
                                             "\"",
                                             "\\",
                                             "\\\\",
                                             "\\\"",
                                             "a b",
                                             "x\\",
                                             "\"\"",
                                             "C:\\Program Files\\",
                                             "\xc3\xa9\xe6\x97\xa5"};
    std::size_t checked = 0;
    for (const auto& p : pieces) {
        for (const auto& q : pieces) {
            const std::vector<std::string> argv = {R"(C:\dir with space\setup.exe)", p + q, q,
                                                   p + "\\" + q};
            auto line = io::win::build_command_line(argv);
            REQUIRE(line.has_value());
            INFO(*line);
            CHECK(system_split(*line) == argv);
            // And our model of the system's rules says the same.
            CHECK(io::win::parse_command_line(*line) == system_split(*line));
            ++checked;
        }
    }
    CHECK(checked == pieces.size() * pieces.size());
}

TEST_CASE("a .cmd installer runs in a job with captured output and its exit code", "[windows]") {
    TempDir dir;
    const int code = GENERATE(0, 3010, 1641, 2);
    write(dir.path / "install.cmd",
          "@echo off\r\necho installing %1 %~2\r\nexit /b " + std::to_string(code) + "\r\n");
    io::ProcessSpec spec;
    spec.argv = {"./install.cmd", "--quiet", "two words"};
    spec.cwd = dir.path;
    spec.timeout = std::chrono::seconds(60);
    auto r = io::run_process(spec);
    REQUIRE(r.has_value());
    INFO(r->output);
    CHECK(r->exit_code == code);
    CHECK_FALSE(r->timed_out);
    CHECK(r->output.find("installing --quiet two words") != std::string::npos);
}

TEST_CASE("an installer past its timeout is killed with its job", "[windows]") {
    TempDir dir;
    write(dir.path / "hang.cmd", "@echo off\r\necho started\r\n:loop\r\ngoto loop\r\n");
    io::ProcessSpec spec;
    spec.argv = {"hang.cmd"};
    spec.cwd = dir.path;
    spec.timeout = std::chrono::seconds(2);
    const auto start = std::chrono::steady_clock::now();
    auto r = io::run_process(spec);
    REQUIRE(r.has_value());
    CHECK(r->timed_out);
    // Returned: the wait ended at the timeout, not at the (never coming) exit.
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(60));
}

TEST_CASE("what cannot be run is an error, not a shell command", "[windows]") {
    io::ProcessSpec spec;
    spec.cwd = fs::temp_directory_path();
    for (std::vector<std::string> argv : std::vector<std::vector<std::string>>{
             {}, {"install.sh"}, {"relative\\tool.exe"}, {"x.cmd", "a&calc"}}) {
        spec.argv = argv;
        auto r = io::run_process(spec);
        CHECK_FALSE(r.has_value());
    }
    spec.argv = {"missing.exe"};
    auto r = io::run_process(spec);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::process);
}

TEST_CASE("the boot id is stable, and a boot id file overrides it", "[windows]") {
    auto env = io::make_windows_env();
    const std::string id = env->boot_id();
    CHECK_FALSE(id.empty());
    CHECK(env->boot_id() == id);
    TempDir dir;
    write(dir.path / "boot_id", "boot-A\r\n");
    auto faked = io::make_windows_env(dir.path / "boot_id");
    CHECK(faked->boot_id() == "boot-A");
    write(dir.path / "boot_id", "boot-B\n");
    CHECK(faked->boot_id() == "boot-B");
    CHECK_FALSE(env->hostname().empty());
}

TEST_CASE("files are written atomically, read within bounds and copied with their hash",
          "[windows]") {
    TempDir dir;
    auto env = io::make_windows_env();
    const fs::path f = dir.path / "state.json";
    REQUIRE(env->write_file_atomic(f, "one", fs::perms::owner_all));
    REQUIRE(env->write_file_atomic(f, "second", fs::perms::owner_all));
    CHECK(env->read_file(f, 100).value() == "second");
    CHECK(env->read_file(f, 3).error().code == Errc::too_large);
    CHECK(env->read_file(dir.path / "absent", 10).error().code == Errc::not_found);

    auto copied = env->copy_file_hashed(f, dir.path / "copy", 100, false);
    REQUIRE(copied.has_value());
    CHECK(copied->size == 6);
    CHECK(copied->sha256 == crypto::sha256(crypto::as_bytes("second")));
    // The copy is exclusive and bounded.
    CHECK_FALSE(env->copy_file_hashed(f, dir.path / "copy", 100, false).has_value());
    CHECK(env->copy_file_hashed(f, dir.path / "copy2", 5, false).error().code == Errc::too_large);
}

TEST_CASE("the state folder is ProgramData\\patchswarm and gets a private ACL", "[windows]") {
    auto dir = io::windows_state_dir();
    REQUIRE(dir.has_value());
    CHECK(dir->filename() == "patchswarm");
    TempDir tmp;
    CHECK(io::make_private_dir(tmp.path / "state" / "nested").has_value());
    CHECK(fs::is_directory(tmp.path / "state" / "nested"));
}
