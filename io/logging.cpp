#include "io/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <memory>

namespace patchswarm::io::logging {

namespace {

// "%*": the "<N>" priority prefix of one line.
class PriorityFlag final : public spdlog::custom_flag_formatter {
  public:
    void format(const spdlog::details::log_msg& msg, const std::tm&,
                spdlog::memory_buf_t& dest) override {
        const char text[] = {'<', static_cast<char>('0' + syslog_priority(msg.level)), '>'};
        dest.append(text, text + sizeof text);
    }
    std::unique_ptr<custom_flag_formatter> clone() const override {
        return std::make_unique<PriorityFlag>();
    }
};

std::unique_ptr<spdlog::formatter> make_formatter(bool journal) {
    if (journal) {
        auto f = std::make_unique<spdlog::pattern_formatter>();
        f->add_flag<PriorityFlag>('*').set_pattern("%*%v");
        return f;
    }
    return std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%eZ %l %v",
                                                       spdlog::pattern_time_type::utc);
}

}  // namespace

std::optional<std::string> canonical_level(std::string_view level) {
    std::string lower(level);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    for (const auto name : kLevels) {
        if (name == lower) return lower;
    }
    return std::nullopt;
}

bool stderr_is_journal() {
    const char* stream = std::getenv("JOURNAL_STREAM");
    if (stream == nullptr) return false;
    struct stat st {};
    if (::fstat(STDERR_FILENO, &st) != 0) return false;
    return std::string(stream) == std::to_string(static_cast<unsigned long long>(st.st_dev)) + ":" +
                                      std::to_string(static_cast<unsigned long long>(st.st_ino));
}

int syslog_priority(int spdlog_level) {
    switch (static_cast<spdlog::level::level_enum>(spdlog_level)) {
        case spdlog::level::trace:
        case spdlog::level::debug:
            return 7;
        case spdlog::level::info:
            return 6;
        case spdlog::level::warn:
            return 4;
        case spdlog::level::err:
            return 3;
        case spdlog::level::critical:
            return 2;
        default:
            return 6;
    }
}

Result<void> setup(std::string_view level) {
    const auto name = canonical_level(level);
    if (!name) {
        return std::unexpected(Error{
            Errc::invalid_argument,
            "unknown log level '" + std::string(level) + "' (" + std::string(kLevelHelp) + ")"});
    }
    auto logger = spdlog::get("patchswarm");
    if (!logger) {
        // Not the colour sink: journald and log files get no escape sequences either way.
        logger = spdlog::stderr_logger_mt("patchswarm");
        logger->set_formatter(make_formatter(stderr_is_journal()));
        spdlog::set_default_logger(logger);
    }
    spdlog::set_level(spdlog::level::from_str(*name));
    return {};
}

}  // namespace patchswarm::io::logging
