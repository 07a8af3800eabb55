// How the Windows agent turns a manifest's argv into a process: the command line that
// CreateProcessW takes, the installer programs (msiexec, wusa, cmd) that .msi, .msu and .cmd
// payloads run under, and UTF-8 <-> UTF-16. Pure string functions, compiled and tested on every
// platform (tests/io/test_win_command.cpp); io/win_env.cpp is their only production caller.
// Any thread.
//
// Windows has no argv at the system level: a process gets one string and splits it itself,
// almost always with CommandLineToArgvW's rules (or the MSVC runtime's, the same for what
// build_command_line produces). Getting the quoting wrong turns one argument into several, so
// every argument goes through quote_argument and nothing here ever builds a shell string.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"

namespace patchswarm::io::win {

// `arg` quoted so that CommandLineToArgvW gives it back unchanged: as is when it is non-empty and
// has no space, tab, newline, vertical tab or '"'; otherwise in quotes, with each '"' escaped as
// \" and the backslashes before a '"' (or before the closing quote) doubled.
[[nodiscard]] std::string quote_argument(std::string_view arg);
// The same, always in quotes (installer paths: quoted whether or not they hold a space).
[[nodiscard]] std::string quoted(std::string_view arg);

// The command line for argv: argv[0] in quotes (program names follow a simpler rule: no escapes,
// so it may not contain '"'), then every other argument through quote_argument, separated by
// one space. Errc::invalid_argument for an empty argv, an empty argv[0], a '"' in argv[0] or a
// NUL anywhere (CreateProcessW would cut the line there).
[[nodiscard]] Result<std::string> build_command_line(std::span<const std::string> argv);

// CommandLineToArgvW's split of `line`, rule for rule (argv[0] by the program-name rule; then
// 2n backslashes + '"' give n backslashes and toggle quoting, 2n+1 give n and a literal '"',
// other backslashes are literal, and the "triple quote" rule for consecutive quotes). Tests use
// it to check build_command_line; an empty line gives an empty vector.
[[nodiscard]] std::vector<std::string> parse_command_line(std::string_view line);

// What a manifest's argv[0] is, by its extension (any case).
enum class InstallerKind { msi, msu, exe, cmd };
// Errc::invalid_argument for anything else (".ps1", ".sh", no extension): the agent does not
// guess how to run it.
[[nodiscard]] Result<InstallerKind> installer_kind(std::string_view program);

// The program CreateProcessW starts (lpApplicationName, a full path, so no search path is ever
// consulted) and its full command line.
struct Launch {
    std::string application;
    std::string command_line;
};

// Turns a manifest argv into a Launch. argv[0] names a file of the release ("./KB958644.msi",
// "setup/setup.exe": '/'-separated, relative, checked with core::validate_relative_path) found
// in `release_dir` (a Windows path); `system_dir` is the System32 folder.
//   .msi        <system_dir>\msiexec.exe /i "<file>" /qn /norestart args...
//               (args of the form NAME=value become NAME="value" when the value needs quotes,
//               the form msiexec parses; "/qn" and "/norestart" are always there)
//   .msu        <system_dir>\wusa.exe "<file>" /quiet /norestart args...
//   .exe        "<file>" args...
//   .cmd, .bat  <system_dir>\cmd.exe /d /v:off /s /c ""<file>" args..."
//               cmd.exe parses this line itself (with %var% expansion and & | < > ^ as
//               operators, even inside quotes for some), so the script path and every argument
//               must consist of letters, digits, space and _ - . , + = @ / \ : ; ~ # $ [ ] { }
//               or non-ASCII UTF-8; anything else is Errc::invalid_argument.
// Errc::invalid_argument for an empty argv, an unsafe path or an unknown kind.
[[nodiscard]] Result<Launch> installer_launch(std::span<const std::string> argv,
                                              std::string_view release_dir,
                                              std::string_view system_dir);

// UTF-8 -> UTF-16 for the W functions. Errc::invalid_argument for invalid UTF-8 (overlong
// forms, surrogates, code points past U+10FFFF, truncated sequences).
[[nodiscard]] Result<std::u16string> utf8_to_utf16(std::string_view text);
// UTF-16 -> UTF-8; an unpaired surrogate becomes U+FFFD (Windows file names may hold them).
[[nodiscard]] std::string utf16_to_utf8(std::u16string_view text);

}  // namespace patchswarm::io::win
