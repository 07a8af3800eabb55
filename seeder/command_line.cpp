#include "seeder/command_line.hpp"

#include <optional>

#include "core/manifest.hpp"

namespace patchswarm::seeder {

namespace {

bool is_separator(char c) {
    return c == ' ' || c == '\t';
}

bool is_forbidden(char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u < 0x20 && c != '\t') || u == 0x7f;
}

}  // namespace

Result<std::vector<std::string>> split_command_line(std::string_view text) {
    std::vector<std::string> argv;
    std::optional<std::string> current;  // engaged once an argument has started (even if "")
    std::optional<char> quote;

    for (const char c : text) {
        if (is_forbidden(c)) {
            return fail(Errc::invalid_argument, "command contains a control character");
        }
        if (quote) {
            if (c == *quote) {
                quote.reset();
            } else {
                current->push_back(c);
            }
            continue;
        }
        if (is_separator(c)) {
            if (current) {
                argv.push_back(std::move(*current));
                current.reset();
            }
            continue;
        }
        if (!current) current.emplace();
        if (c == '\'' || c == '"') {
            quote = c;
        } else {
            current->push_back(c);
        }
    }
    if (quote) return fail(Errc::invalid_argument, "command has an unterminated quote");
    if (current) argv.push_back(std::move(*current));

    if (argv.empty() || argv.front().empty()) {
        return fail(Errc::invalid_argument, "command is empty");
    }
    if (argv.size() > core::kMaxArgs) {
        return fail(Errc::invalid_argument,
                    "command has more than " + std::to_string(core::kMaxArgs) + " arguments");
    }
    for (const auto& arg : argv) {
        if (arg.size() > core::kMaxArgBytes) {
            return fail(Errc::invalid_argument, "command has an argument longer than " +
                                                    std::to_string(core::kMaxArgBytes) + " bytes");
        }
    }
    return argv;
}

}  // namespace patchswarm::seeder
