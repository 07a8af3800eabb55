// Terminal helpers for the status views: a progress bar and byte formatting.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace patchswarm::io::term {

inline bool stdout_is_tty() {
    return ::isatty(STDOUT_FILENO) == 1;
}

// "[########------------]  40%" with `width` cells; plain "40%" when not on a terminal.
inline std::string progress_bar(double fraction, int width, bool tty) {
    if (fraction < 0) fraction = 0;
    if (fraction > 1) fraction = 1;
    char pct[8];
    std::snprintf(pct, sizeof pct, "%3d%%", static_cast<int>(fraction * 100 + 0.5));
    if (!tty) return pct;
    const int filled = static_cast<int>(fraction * width + 0.5);
    return "[" + std::string(filled, '#') + std::string(width - filled, '-') + "] " + pct;
}

// 1536 -> "1.5 KiB"
inline std::string human_bytes(std::uint64_t n) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(n);
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
    return buf;
}

}  // namespace patchswarm::io::term
