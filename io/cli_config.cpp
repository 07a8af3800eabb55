#include "io/cli_config.hpp"

#include <toml++/toml.h>

#include <charconv>
#include <iterator>
#include <map>
#include <sstream>
#include <utility>

#include "base/version.hpp"
#include "io/logging.hpp"

namespace patchswarm::io::cli {

namespace {

struct Located {
    std::string message;
    toml::source_region where;
};

[[noreturn]] void fail(const std::string& file, const toml::source_region& where,
                       const std::string& message) {
    throw CLI::ConfigError(file + ":" + std::to_string(where.begin.line) + ":" +
                           std::to_string(where.begin.column) + ": " + message);
}

std::string dotted(const std::vector<std::string>& path) {
    std::string out;
    for (const auto& p : path) out += (out.empty() ? "" : ".") + p;
    return out;
}

const CLI::App* subcommand_named(const CLI::App& scope, const std::string& name) {
    auto found = scope.get_subcommands([&](const CLI::App* s) { return s->check_name(name); });
    return found.empty() ? nullptr : found.front();
}

// The option `--key` of `app` if a config file may set it (not --help, --version, --config).
const CLI::Option* configurable_option(const CLI::App& app, const std::string& key) {
    const CLI::Option* opt = app.get_option_no_throw("--" + key);
    if (opt == nullptr || !opt->get_configurable()) return nullptr;
    if (opt == app.get_config_ptr() || opt == app.get_help_ptr() || opt == app.get_help_all_ptr() ||
        opt == app.get_version_ptr()) {
        return nullptr;
    }
    return opt;
}

// Whether `scope` or any subcommand below it has option --key.
bool known_below(const CLI::App& scope, const std::string& key) {
    if (configurable_option(scope, key)) return true;
    for (const CLI::App* sub : scope.get_subcommands([](const CLI::App*) { return true; })) {
        if (known_below(*sub, key)) return true;
    }
    return false;
}

std::string scalar_text(const toml::node& node, const std::string& file, const std::string& key) {
    if (auto s = node.as_string()) return s->get();
    if (auto i = node.as_integer()) return std::to_string(i->get());
    if (auto b = node.as_boolean()) return b->get() ? "true" : "false";
    if (auto f = node.as_floating_point()) {
        char buf[64];
        const auto r = std::to_chars(buf, buf + sizeof buf, f->get());
        return std::string(buf, r.ptr);
    }
    std::ostringstream kind;
    kind << node.type();
    fail(
        file, node.source(),
        "'" + key + "': expected a string, number, boolean or a list of them, not a " + kind.str());
}

struct Value {
    std::size_t depth = 0;  // how specific the table it came from is (0: top level)
    std::vector<std::string> inputs;
};

class Reader {
  public:
    Reader(const CLI::App& app, std::string file) : file_(std::move(file)) {
        // The subcommands being run, outermost first (app itself at 0).
        chain_.push_back(&app);
        for (;;) {
            auto parsed = chain_.back()->get_subcommands();
            if (parsed.empty()) break;
            chain_.push_back(parsed.front());
        }
    }

    void walk(const toml::table& table, const CLI::App& scope, std::vector<std::string> path) {
        for (const auto& [k, node] : table) {
            const std::string key(k.str());
            const std::string where = path.empty() ? "" : " in [" + dotted(path) + "]";
            if (const CLI::App* sub = subcommand_named(scope, key)) {
                const toml::table* inner = node.as_table();
                if (inner == nullptr) {
                    fail(file_, k.source(),
                         "'" + key + "' is a subcommand: its keys go in a [" +
                             dotted(with(path, key)) + "] section");
                }
                walk(*inner, *sub, with(path, key));
                continue;
            }
            if (node.is_table()) {
                fail(file_, k.source(),
                     "unknown section [" + dotted(with(path, key)) + "]: no such subcommand");
            }
            if (!known_below(scope, key)) {
                fail(file_, k.source(), "unknown key '" + key + "'" + where);
            }
            apply(scope, path.size(), key, node);
        }
    }

    std::vector<CLI::ConfigItem> items() const {
        std::vector<CLI::ConfigItem> out;
        for (const auto& [at, value] : values_) {
            CLI::ConfigItem item;
            for (std::size_t i = 1; i <= at.first; ++i)
                item.parents.push_back(chain_[i]->get_name());
            item.name = at.second;
            item.inputs = value.inputs;
            out.push_back(std::move(item));
        }
        return out;
    }

  private:
    static std::vector<std::string> with(std::vector<std::string> path, const std::string& key) {
        path.push_back(key);
        return path;
    }

    // The key is valid in `scope`; it takes effect on each running subcommand at or below
    // `scope` that has the option, unless a more specific table already set it there.
    void apply(const CLI::App& scope, std::size_t depth, const std::string& key,
               const toml::node& node) {
        std::size_t start = 0;
        while (start < chain_.size() && chain_[start] != &scope) ++start;
        for (std::size_t i = start; i < chain_.size(); ++i) {
            const CLI::Option* opt = configurable_option(*chain_[i], key);
            if (opt == nullptr) continue;
            Value v{depth, {}};
            if (const toml::array* list = node.as_array()) {
                for (const auto& element : *list)
                    v.inputs.push_back(scalar_text(element, file_, key));
                const int most = opt->get_items_expected_max();
                if (opt->get_expected_min() == 0 || static_cast<int>(v.inputs.size()) > most) {
                    fail(file_, node.source(),
                         "'" + key + "' takes " +
                             (opt->get_expected_min() == 0 ? std::string("true or false")
                                                           : "one value") +
                             ", not a list");
                }
            } else {
                v.inputs.push_back(scalar_text(node, file_, key));
                if (opt->get_expected_min() == 0 && !node.is_boolean()) {
                    fail(file_, node.source(), "'" + key + "' takes true or false");
                }
            }
            auto [it, fresh] = values_.try_emplace({i, key}, v);
            if (!fresh && it->second.depth < depth) it->second = std::move(v);
        }
    }

    std::string file_;
    std::vector<const CLI::App*> chain_;
    std::map<std::pair<std::size_t, std::string>, Value> values_;
};

}  // namespace

std::vector<CLI::ConfigItem> TomlConfig::from_config(std::istream& input) const {
    std::string file = "config";
    if (const CLI::Option* opt = app_.get_config_ptr(); opt && !opt->results().empty()) {
        file = opt->results().front();
    }
    const std::string text{std::istreambuf_iterator<char>(input), {}};
    toml::table doc;
    try {
        doc = toml::parse(text, file);
    } catch (const toml::parse_error& e) {
        fail(file, e.source(), std::string(e.description()));
    }
    Reader reader(app_, file);
    reader.walk(doc, app_, {});
    return reader.items();
}

void add_config_option(CLI::App& app) {
    app.footer(kConfigFooter);
    app.set_config("--config", "", "TOML file with options (see below)");
    app.config_formatter(std::make_shared<TomlConfig>(app));
    app.allow_config_extras(CLI::config_extras_mode::error);
    app.fallthrough();  // so --config may also follow the subcommand
}

namespace {

// Option `name` ("--x", "-x") of `scope` or of a parent (fallthrough), or nullptr.
const CLI::Option* option_in_scope(const CLI::App* scope, const std::string& name) {
    for (; scope != nullptr; scope = scope->get_parent()) {
        if (const CLI::Option* opt = scope->get_option_no_throw(name)) return opt;
    }
    return nullptr;
}

}  // namespace

std::string usage_message(const CLI::App& app, const CLI::ParseError& error, int argc,
                          const char* const* argv) {
    const CLI::App* scope = &app;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--") break;
        if (arg.starts_with("-")) {
            // Skip an option's separate value, so that `--repo R` does not read R as a word.
            const CLI::Option* opt = option_in_scope(scope, arg);
            if (opt != nullptr && arg.find('=') == std::string::npos &&
                opt->get_expected_min() > 0) {
                ++i;
            }
            continue;
        }
        const auto subs = scope->get_subcommands([](const CLI::App*) { return true; });
        if (subs.empty()) break;  // a positional argument of a leaf subcommand
        const CLI::App* next = nullptr;
        std::string names;
        for (const CLI::App* sub : subs) {
            if (sub->check_name(arg)) next = sub;
            names += (names.empty() ? "" : ", ") + sub->get_name();
        }
        if (next == nullptr) {
            return "unknown subcommand '" + arg + "'" +
                   (scope == &app ? std::string() : " of " + scope->get_name()) +
                   " (one of: " + names + ")";
        }
        scope = next;
    }
    return error.what();
}

void add_version_flag(CLI::App& app, const std::string& program) {
    app.set_version_flag("--version", program + " " + std::string(kVersion),
                         "print the version and exit");
}

CLI::Validator log_level_transform() {
    std::vector<std::string> names(logging::kLevels.begin(), logging::kLevels.end());
    return CLI::IsMember(names, CLI::ignore_case);
}

}  // namespace patchswarm::io::cli
