#include "io/win_command.hpp"

#include <algorithm>

#include "core/manifest.hpp"

namespace patchswarm::io::win {

namespace {

bool needs_quotes(std::string_view arg) {
    return arg.empty() || arg.find_first_of(" \t\n\v\"") != std::string_view::npos;
}

char ascii_lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool ends_with_nocase(std::string_view text, std::string_view suffix) {
    if (text.size() < suffix.size()) return false;
    const auto tail = text.substr(text.size() - suffix.size());
    return std::equal(tail.begin(), tail.end(), suffix.begin(),
                      [](char a, char b) { return ascii_lower(a) == b; });
}

// Characters cmd.exe gives no meaning to in a command line (see the header).
bool cmd_safe(std::string_view text) {
    return std::all_of(text.begin(), text.end(), [](char ch) {
        const auto c = static_cast<unsigned char>(ch);
        if (c >= 0x80) return true;  // UTF-8 of non-ASCII text
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
            return true;
        }
        return std::string_view(" _-.,+=@/\\:;~#$[]{}").find(ch) != std::string_view::npos;
    });
}

// The release file argv[0] names, as a Windows path below release_dir.
Result<std::string> release_file(std::string_view program, std::string_view release_dir) {
    std::string_view rel = program;
    while (rel.starts_with("./")) rel.remove_prefix(2);
    if (auto ok = core::validate_relative_path(rel); !ok) {
        return fail(Errc::invalid_argument,
                    "installer '" + std::string(program) + "': " + ok.error().message);
    }
    std::string path(release_dir);
    if (!path.empty() && path.back() != '\\') path += '\\';
    for (char c : rel) path += c == '/' ? '\\' : c;
    return path;
}

std::string join_dir(std::string_view dir, std::string_view file) {
    std::string out(dir);
    if (!out.empty() && out.back() != '\\') out += '\\';
    return out + std::string(file);
}

// msiexec reads PROPERTY=value itself and wants the quotes around the value only.
std::string msi_argument(std::string_view arg) {
    const auto eq = arg.find('=');
    const std::string_view name = arg.substr(0, eq);
    const bool property =
        eq != std::string_view::npos && eq > 0 && std::all_of(name.begin(), name.end(), [](char c) {
            return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '_' || c == '.';
        });
    if (!property) return quote_argument(arg);
    const std::string_view value = arg.substr(eq + 1);
    if (!needs_quotes(value)) return std::string(arg);
    std::string out(name);
    out += "=\"";
    for (char c : value) {
        if (c == '"') out += '"';  // msiexec's escape for a quote inside a quoted value
        out += c;
    }
    return out + '"';
}

void append_code_point(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

}  // namespace

std::string quote_argument(std::string_view arg) {
    if (!needs_quotes(arg)) return std::string(arg);
    return quoted(arg);
}

std::string quoted(std::string_view arg) {
    std::string out = "\"";
    for (std::size_t i = 0;; ++i) {
        std::size_t backslashes = 0;
        while (i < arg.size() && arg[i] == '\\') {
            ++backslashes;
            ++i;
        }
        if (i == arg.size()) {
            // Before the closing quote every backslash is doubled, so none escapes it.
            out.append(backslashes * 2, '\\');
            break;
        }
        if (arg[i] == '"') {
            out.append(backslashes * 2 + 1, '\\');
        } else {
            out.append(backslashes, '\\');
        }
        out += arg[i];
    }
    return out + '"';
}

Result<std::string> build_command_line(std::span<const std::string> argv) {
    if (argv.empty() || argv[0].empty()) {
        return fail(Errc::invalid_argument, "command line: empty program name");
    }
    if (argv[0].find('"') != std::string::npos) {
        return fail(Errc::invalid_argument, "command line: '\"' in the program name");
    }
    for (const auto& arg : argv) {
        if (arg.find('\0') != std::string::npos) {
            return fail(Errc::invalid_argument, "command line: NUL in an argument");
        }
    }
    std::string line = "\"" + argv[0] + "\"";
    for (std::size_t i = 1; i < argv.size(); ++i) line += " " + quote_argument(argv[i]);
    return line;
}

std::vector<std::string> parse_command_line(std::string_view line) {
    std::vector<std::string> argv;
    std::size_t i = 0;
    const auto blank = [&](std::size_t at) {
        return at < line.size() && (line[at] == ' ' || line[at] == '\t');
    };
    if (line.empty()) return argv;
    // The program name: up to the next quote if it starts with one, else up to a blank.
    std::string program;
    if (line[0] == '"') {
        for (i = 1; i < line.size() && line[i] != '"'; ++i) program += line[i];
        if (i < line.size()) ++i;
    } else {
        for (; i < line.size() && !blank(i); ++i) program += line[i];
    }
    argv.push_back(program);
    for (;;) {
        while (blank(i)) ++i;
        if (i >= line.size()) break;
        std::string arg;
        int quotes = 0;  // 1 inside a quoted section (Wine's and Windows' "qcount")
        std::size_t backslashes = 0;
        while (i < line.size() && !(quotes == 0 && blank(i))) {
            const char c = line[i];
            if (c == '\\') {
                arg += c;
                ++backslashes;
                ++i;
                continue;
            }
            if (c == '"') {
                if (backslashes % 2 == 0) {
                    arg.resize(arg.size() - backslashes / 2);
                    ++quotes;
                } else {
                    arg.resize(arg.size() - backslashes / 2 - 1);
                    arg += '"';
                }
                ++i;
                backslashes = 0;
                // Consecutive quotes: every third is a literal quote.
                while (i < line.size() && line[i] == '"') {
                    if (++quotes == 3) {
                        arg += '"';
                        quotes = 0;
                    }
                    ++i;
                }
                if (quotes == 2) quotes = 0;
                continue;
            }
            arg += c;
            backslashes = 0;
            ++i;
        }
        argv.push_back(std::move(arg));
    }
    return argv;
}

Result<InstallerKind> installer_kind(std::string_view program) {
    if (ends_with_nocase(program, ".msi")) return InstallerKind::msi;
    if (ends_with_nocase(program, ".msu")) return InstallerKind::msu;
    if (ends_with_nocase(program, ".exe")) return InstallerKind::exe;
    if (ends_with_nocase(program, ".cmd") || ends_with_nocase(program, ".bat")) {
        return InstallerKind::cmd;
    }
    return fail(Errc::invalid_argument,
                "installer '" + std::string(program) +
                    "': Windows runs only .msi, .msu, .exe, .cmd and .bat installers");
}

Result<Launch> installer_launch(std::span<const std::string> argv, std::string_view release_dir,
                                std::string_view system_dir) {
    if (argv.empty()) return fail(Errc::invalid_argument, "installer: empty argv");
    auto kind = installer_kind(argv[0]);
    if (!kind) return std::unexpected(kind.error());
    auto file = release_file(argv[0], release_dir);
    if (!file) return std::unexpected(file.error());
    for (const auto& arg : argv) {
        if (arg.find('\0') != std::string::npos) {
            return fail(Errc::invalid_argument, "installer: NUL in an argument");
        }
    }
    const auto args = argv.subspan(1);
    Launch launch;
    switch (*kind) {
        case InstallerKind::msi: {
            launch.application = join_dir(system_dir, "msiexec.exe");
            launch.command_line =
                "\"" + launch.application + "\" /i " + quoted(*file) + " /qn /norestart";
            for (const auto& arg : args) launch.command_line += " " + msi_argument(arg);
            return launch;
        }
        case InstallerKind::msu: {
            launch.application = join_dir(system_dir, "wusa.exe");
            launch.command_line =
                "\"" + launch.application + "\" " + quoted(*file) + " /quiet /norestart";
            for (const auto& arg : args) launch.command_line += " " + quote_argument(arg);
            return launch;
        }
        case InstallerKind::exe: {
            std::vector<std::string> full{*file};
            full.insert(full.end(), args.begin(), args.end());
            auto line = build_command_line(full);
            if (!line) return std::unexpected(line.error());
            return Launch{*file, std::move(*line)};
        }
        case InstallerKind::cmd: {
            if (!cmd_safe(*file)) {
                return fail(Errc::invalid_argument,
                            "installer '" + argv[0] + "': a character cmd.exe would interpret");
            }
            launch.application = join_dir(system_dir, "cmd.exe");
            // /d: no AutoRun commands; /v:off: no !var! expansion; /s /c: cmd strips exactly
            // the outer pair of quotes and runs the rest.
            launch.command_line =
                "\"" + launch.application + "\" /d /v:off /s /c \"\"" + *file + "\"";
            for (std::size_t i = 0; i < args.size(); ++i) {
                if (!cmd_safe(args[i])) {
                    return fail(Errc::invalid_argument,
                                "installer argv[" + std::to_string(i + 1) +
                                    "]: a character cmd.exe would interpret (only letters, "
                                    "digits, space and _-.,+=@/\\:;~#$[]{} are passed to a "
                                    ".cmd)");
                }
                const bool quote =
                    args[i].empty() || args[i].find_first_of(" ,;=") != std::string::npos;
                launch.command_line += quote ? " \"" + args[i] + "\"" : " " + args[i];
            }
            launch.command_line += "\"";
            return launch;
        }
    }
    return fail(Errc::internal, "installer: unknown kind");
}

Result<std::u16string> utf8_to_utf16(std::string_view text) {
    std::u16string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
        const auto b0 = static_cast<unsigned char>(text[i]);
        std::size_t len = 0;
        char32_t cp = 0;
        char32_t min = 0;
        if (b0 < 0x80) {
            len = 1;
            cp = b0;
        } else if ((b0 & 0xE0) == 0xC0) {
            len = 2;
            cp = b0 & 0x1F;
            min = 0x80;
        } else if ((b0 & 0xF0) == 0xE0) {
            len = 3;
            cp = b0 & 0x0F;
            min = 0x800;
        } else if ((b0 & 0xF8) == 0xF0) {
            len = 4;
            cp = b0 & 0x07;
            min = 0x10000;
        } else {
            return fail(Errc::invalid_argument, "invalid UTF-8");
        }
        if (i + len > text.size()) return fail(Errc::invalid_argument, "truncated UTF-8");
        for (std::size_t k = 1; k < len; ++k) {
            const auto b = static_cast<unsigned char>(text[i + k]);
            if ((b & 0xC0) != 0x80) return fail(Errc::invalid_argument, "invalid UTF-8");
            cp = (cp << 6) | (b & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return fail(Errc::invalid_argument, "invalid UTF-8");
        }
        if (cp >= 0x10000) {
            cp -= 0x10000;
            out += static_cast<char16_t>(0xD800 + (cp >> 10));
            out += static_cast<char16_t>(0xDC00 + (cp & 0x3FF));
        } else {
            out += static_cast<char16_t>(cp);
        }
        i += len;
    }
    return out;
}

std::string utf16_to_utf8(std::u16string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        char32_t cp = text[i];
        if (cp >= 0xD800 && cp <= 0xDBFF && i + 1 < text.size() && text[i + 1] >= 0xDC00 &&
            text[i + 1] <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (text[i + 1] - 0xDC00);
            ++i;
        } else if (cp >= 0xD800 && cp <= 0xDFFF) {
            cp = 0xFFFD;
        }
        append_code_point(out, cp);
    }
    return out;
}

}  // namespace patchswarm::io::win
