// Installer and verify output made fit for a status line: what an endpoint reports as the reason
// of a failure, and what the seeder's every view shows to an admin.
//
// Pure: no I/O. Thread-safe.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace patchswarm::core {

// What an endpoint keeps of a command's output for its failure reason.
inline constexpr std::size_t kMaxReasonOutputBytes = 300;

// Placeholder for a private folder's path in sanitised output.
inline constexpr std::string_view kStateDirPlaceholder = "<state-dir>";

// Returns `raw` as one line of valid UTF-8, at most `max_bytes` bytes (plus the "..." that marks
// a cut; the end is kept, where installers say what went wrong):
//  - each occurrence of a path in `private_paths` (the agent's state folder: where it keeps its
//    keys, which a report has no business naming) becomes kStateDirPlaceholder, longest first;
//    empty paths are ignored;
//  - terminal escape sequences (ESC [ ... final byte, ESC ] ... BEL/ST) are dropped, as are
//    other C0/C1 control characters and DEL; a tab is a space; invalid UTF-8 becomes '?';
//  - lines lose their trailing whitespace, blank lines are dropped, and the rest are joined
//    with " | ", so "error: disk full\n\n" becomes "error: disk full".
std::string sanitize_output(std::string_view raw, std::span<const std::string> private_paths,
                            std::size_t max_bytes = kMaxReasonOutputBytes);

}  // namespace patchswarm::core
