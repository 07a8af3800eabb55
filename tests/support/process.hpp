// Test support: temporary folders, child processes that are always reaped, and waiting on a
// condition with a deadline (never a fixed sleep).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace patchswarm::test {

namespace fs = std::filesystem;

class TempDir {
  public:
    explicit TempDir(const std::string& tag = "ps") {
        std::string tmpl = (fs::temp_directory_path() / (tag + "-XXXXXX")).string();
        if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    ~TempDir() {
        if (!std::getenv("PATCHSWARM_KEEP_TEST_DIRS")) {
            std::error_code ec;
            fs::remove_all(path_, ec);
        }
    }
    const fs::path& path() const { return path_; }
    fs::path operator/(const std::string& p) const { return path_ / p; }

  private:
    fs::path path_;
};

// A child process with stdout+stderr sent to a log file. Killed (SIGKILL) and reaped when the
// object goes away, so a failing test never leaves processes behind.
class Child {
  public:
    Child(std::vector<std::string> argv, const fs::path& log) : argv_(std::move(argv)), log_(log) {
        pid_ = ::fork();
        if (pid_ < 0) throw std::runtime_error("fork failed");
        if (pid_ == 0) {
            ::setpgid(0, 0);
            const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) {
                ::dup2(fd, 1);
                ::dup2(fd, 2);
            }
            std::vector<char*> args;
            for (auto& a : argv_) args.push_back(a.data());
            args.push_back(nullptr);
            ::execv(args[0], args.data());
            ::_exit(127);
        }
    }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    ~Child() { kill(SIGKILL); }

    // Sends `sig` and returns at once (the child keeps running unless the signal ends it).
    void signal(int sig) {
        if (pid_ > 0) ::kill(pid_, sig);
    }
    // Sends `sig` and reaps; returns the exit status (or -1 if already reaped).
    int kill(int sig) {
        if (pid_ <= 0) return -1;
        ::kill(pid_, sig);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        return status;
    }
    // Graceful stop: SIGTERM, then SIGKILL after `grace`.
    int stop(std::chrono::seconds grace = std::chrono::seconds(10)) {
        if (pid_ <= 0) return -1;
        ::kill(pid_, SIGTERM);
        const auto deadline = std::chrono::steady_clock::now() + grace;
        int status = 0;
        while (std::chrono::steady_clock::now() < deadline) {
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                return status;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling, not sync
        }
        return kill(SIGKILL);
    }
    bool running() {
        if (pid_ <= 0) return false;
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            return false;
        }
        return true;
    }
    const fs::path& log() const { return log_; }

  private:
    std::vector<std::string> argv_;
    fs::path log_;
    pid_t pid_ = -1;
};

struct RunResult {
    int exit_code = -1;
    std::string output;
};

// Runs a command to completion, capturing stdout+stderr.
inline RunResult run(std::vector<std::string> argv) {
    int pipefd[2];
    if (::pipe(pipefd) != 0) throw std::runtime_error("pipe failed");
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(pipefd[1], 1);
        ::dup2(pipefd[1], 2);
        ::close(pipefd[0]);
        ::close(pipefd[1]);
        std::vector<char*> args;
        for (auto& a : argv) args.push_back(a.data());
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    ::close(pipefd[1]);
    RunResult r;
    char buf[4096];
    for (ssize_t n; (n = ::read(pipefd[0], buf, sizeof buf)) > 0;) r.output.append(buf, n);
    ::close(pipefd[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
}

// Polls `pred` every 100 ms until it holds or `timeout` passes. Returns whether it held.
inline bool wait_until(const std::function<bool()>& pred, std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (pred()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return pred();
}

// True while a process that is not a zombie belongs to process group `pgid` (read from /proc:
// kill(-pgid, 0) also counts zombies, which a child reparented to init may stay for a while).
inline bool process_group_alive(pid_t pgid) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/proc", ec)) {
        std::ifstream in(entry.path() / "stat");
        std::string stat;
        if (!in || !std::getline(in, stat)) continue;  // not a process, or it just went away
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        const auto close = stat.rfind(')');
        if (close == std::string::npos) continue;
        std::istringstream fields(stat.substr(close + 1));
        char state = 0;
        long ppid = 0;
        long pgrp = 0;
        if (fields >> state >> ppid >> pgrp && pgrp == pgid && state != 'Z') return true;
    }
    return false;
}

inline void write_text(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
}

inline std::string read_text(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

inline void write_random(const fs::path& p, std::size_t bytes, unsigned seed) {
    fs::create_directories(p.parent_path());
    std::mt19937_64 rng(seed);
    std::string data(bytes, '\0');
    for (std::size_t i = 0; i < bytes; i += 8) {
        const auto v = rng();
        for (std::size_t j = 0; j < 8 && i + j < bytes; ++j) data[i + j] = char(v >> (8 * j));
    }
    std::ofstream(p, std::ios::binary) << data;
}

}  // namespace patchswarm::test
