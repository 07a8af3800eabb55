// A process's CPU seconds, RSS, threads and open fds from /proc (Linux), for the benchmark
// summaries. Empty object when the pid file or the process is gone.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace patchswarm::fleetsim {

inline nlohmann::json sample_process(const std::filesystem::path& pid_file) {
    if (pid_file.empty()) return nlohmann::json::object();
    std::ifstream pf(pid_file);
    long pid_value = 0;
    if (!(pf >> pid_value) || pid_value <= 0) return nlohmann::json::object();
    const std::string pid = std::to_string(pid_value);
    std::ifstream stat("/proc/" + pid + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return nlohmann::json::object();
    const auto close = line.rfind(')');
    if (close == std::string::npos || close + 2 > line.size()) return nlohmann::json::object();
    std::istringstream fields(line.substr(close + 2));
    std::vector<std::string> f;
    for (std::string x; fields >> x;) f.push_back(x);
    if (f.size() < 13) return nlohmann::json::object();
    const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
    const double cpu = (std::strtod(f[11].c_str(), nullptr) + std::strtod(f[12].c_str(), nullptr)) /
                       tick;  // utime + stime
    std::ifstream status("/proc/" + pid + "/status");
    long long rss = 0;
    int threads = 0;
    for (std::string l; std::getline(status, l);) {
        if (l.starts_with("VmRSS:")) rss = std::atoll(l.c_str() + 6);
        if (l.starts_with("Threads:")) threads = std::atoi(l.c_str() + 8);
    }
    long long fds = 0;
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator("/proc/" + pid + "/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
        ++fds;
    return {{"pid", pid_value},
            {"cpu_s", cpu},
            {"rss_kib", rss},
            {"threads", threads},
            {"open_fds", fds}};
}

}  // namespace patchswarm::fleetsim
