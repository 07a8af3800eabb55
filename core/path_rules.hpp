// Windows file-name rules, enforced on every platform. A release is signed once and installed on
// Linux and Windows desktops alike, so a name that Windows would read differently (a device,
// another drive, a data stream, a silently shortened or case-folded name) is refused everywhere:
// by the seeder when it publishes and by every endpoint when it parses a manifest. Pure
// functions of their arguments; any thread.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "base/error.hpp"

namespace patchswarm::core {

// Checks a '/'-separated relative path against the Windows rules (Errc::unsafe_path, with a
// message that names the rule):
//   - no UNC prefix ("\\server\share", "//server/share", "\\?\C:\...")
//   - no backslash (a folder separator on Windows)
//   - no drive letter ("C:", "C:file") and no ':' at all (an NTFS alternate data stream "a:b")
//   - no reserved device name as a component, in any case and with any extension or trailing
//     spaces before it: CON, PRN, AUX, NUL, CONIN$, CONOUT$, COM0-COM9, LPT0-LPT9 and the
//     superscript forms COM¹ COM² COM³ LPT¹ LPT² LPT³
//   - no component that ends with a dot or a space (Windows strips them, so "a." is "a")
// Empty, "." and ".." components are left to validate_relative_path, which calls this.
[[nodiscard]] Result<void> validate_windows_path(std::string_view path);

// The rules above for one component (no '/' in it).
[[nodiscard]] Result<void> validate_windows_component(std::string_view component);

// True if `name` (one component, extension included) is a reserved Windows device name.
[[nodiscard]] bool is_windows_reserved_name(std::string_view name);

// A case-folded copy of `text` that maps names Windows treats as the same file to the same
// string: ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic letters are folded to lower case.
// NTFS folds with its full $UpCase table; outside these blocks this is an approximation (two
// names that differ there in case only are not found to collide).
[[nodiscard]] std::string fold_case_for_windows(std::string_view text);

// Two entries of a list of '/'-separated paths whose names, or the names of folders on their
// way, differ only in case: "Setup.exe" and "setup.exe", or "Docs/a" and "docs/b" (one folder on
// Windows, two on Linux). `first` < `second` index into the list; `first_name` and
// `second_name` are the colliding prefixes ("Docs" and "docs").
struct CaseCollision {
    std::size_t first = 0;
    std::size_t second = 0;
    std::string first_name;
    std::string second_name;
};

// The first such collision in `paths`, or nullopt. Identical paths are not a case collision
// (duplicates are the caller's rule). O(total length) expected time.
[[nodiscard]] std::optional<CaseCollision> find_case_collision(
    std::span<const std::string_view> paths);

}  // namespace patchswarm::core
