// Logging set-up shared by both programs: spdlog's default logger writes to stderr, in one of
// two shapes.
//   - Under systemd (stderr is the journal stream named by $JOURNAL_STREAM): "<N>message", the
//     sd-daemon(3) priority prefix, and no timestamp (journald stamps each line itself), so
//     `journalctl -p err` finds the errors.
//   - Elsewhere: "2026-12-04T21:30:00.123Z info message", UTC with its zone.
// Called from main() (start-up, one thread) before any other thread logs.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.hpp"

namespace patchswarm::io::logging {

// The names --log-level accepts (lower case; the CLI takes them case-insensitively).
inline constexpr std::array<std::string_view, 6> kLevels = {"trace", "debug", "info",
                                                            "warn",  "error", "off"};
inline constexpr std::string_view kLevelHelp = "trace, debug, info, warn, error or off";

// `level` as its canonical name (kLevels), matched case-insensitively; nullopt if it is none
// of them. (spdlog::level::from_str turns an unknown name into "off": never pass it raw.)
[[nodiscard]] std::optional<std::string> canonical_level(std::string_view level);

// True when stderr is the stream $JOURNAL_STREAM names ("DEVICE:INODE", as systemd sets it).
// Checking the inode (not just that the variable is set) keeps the journal format off when a
// service's child redirects stderr elsewhere.
[[nodiscard]] bool stderr_is_journal();

// Makes a stderr logger the default, with the shape above, at `level`. Errc::invalid_argument
// for a level not in kLevels (case-insensitive). May be called again to change the level.
[[nodiscard]] Result<void> setup(std::string_view level);

// The sd-daemon(3) syslog priority of a spdlog level: 7 debug/trace, 6 info, 4 warn, 3 error,
// 2 critical.
[[nodiscard]] int syslog_priority(int spdlog_level);

}  // namespace patchswarm::io::logging
