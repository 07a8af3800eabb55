#include "io/crash_point.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>

namespace patchswarm::io {

namespace {

struct Armed {
    std::string name;
    long count = 1;
    mutable std::atomic<long> hits{0};
};

// Read once: the variable is a property of the run, not of the moment.
const Armed* armed() {
    static const Armed* a = []() -> const Armed* {
        const char* spec = std::getenv("PATCHSWARM_CRASH_AT");
        if (!spec || !*spec) return nullptr;
        auto* out = new Armed;  // lives for the process; a crash point may fire at exit
        std::string text = spec;
        const auto comma = text.find(',');
        out->name = text.substr(0, comma);
        if (comma != std::string::npos) {
            const long n = std::strtol(text.c_str() + comma + 1, nullptr, 10);
            out->count = n > 0 ? n : 1;
        }
        return out;
    }();
    return a;
}

}  // namespace

void crash_point(std::string_view name) {
    const Armed* a = armed();
    if (!a || a->name != name) return;
    if (a->hits.fetch_add(1) + 1 < a->count) return;
    const std::string msg = "patchswarm: crash point " + a->name + " reached: SIGKILL\n";
    [[maybe_unused]] auto n = ::write(2, msg.data(), msg.size());
    ::kill(::getpid(), SIGKILL);
    ::_exit(137);  // not reached
}

}  // namespace patchswarm::io
