// Turns the --install / --verify strings given to `publish` into an argv list.
//
// The manifest carries an argv list and endpoints never run it through a shell, so the split
// happens here, once, with deliberately small rules:
//   - runs of spaces and tabs separate arguments;
//   - '...' keeps everything up to the next ' literally (spaces included);
//   - "..." keeps everything up to the next " literally (no escapes, no variables);
//   - quoted and unquoted parts that touch form one argument (a'b c' -> "ab c");
//   - '' or "" on its own is an empty argument.
// There are no backslash escapes, globs, variables, redirections or pipes: `a | b` is three
// arguments "a", "|", "b".
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"

namespace patchswarm::seeder {

// Errc::invalid_argument for an empty command, an unterminated quote, a NUL or other control
// character (other than tab), or more arguments / longer arguments than a manifest allows
// (core::kMaxArgs, core::kMaxArgBytes).
[[nodiscard]] Result<std::vector<std::string>> split_command_line(std::string_view text);

}  // namespace patchswarm::seeder
