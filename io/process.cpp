#include "io/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string_view>
#include <utility>

namespace patchswarm::io {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kMinimalPath =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
// Grace between SIGTERM and SIGKILL for a timed-out or stopped process group.
constexpr auto kKillGrace = std::chrono::seconds(2);
// After the child exits, how long to keep collecting output still sitting in the pipe. A
// background grandchild may hold the pipe open forever; its output is not ours to wait for.
constexpr auto kDrainGrace = std::chrono::milliseconds(100);
// Without a pidfd (or a stop eventfd), how often to look whether the child has exited (or a stop
// was requested).
constexpr int kPollSliceMs = 50;

std::string errno_text(int err) {
    return std::strerror(err);
}

// Closes a descriptor exactly once, retrying nothing (close is not restartable on Linux).
class Fd {
  public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    Fd& operator=(Fd&& other) noexcept {
        if (this != &other) {
            reset();
            fd_ = std::exchange(other.fd_, -1);
        }
        return *this;
    }
    ~Fd() { reset(); }
    int get() const { return fd_; }
    void reset() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

  private:
    int fd_ = -1;
};

// Every descriptor we hand to the child must be above 2: otherwise a daemon started with a
// closed stdin/stdout would see our dup2() onto 0..2 overwrite its own pipe ends.
Result<Fd> above_stdio(int fd) {
    if (fd > 2) return Fd{fd};
    const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
    const int err = errno;
    ::close(fd);
    if (moved < 0) return fail(Errc::process, "fcntl(F_DUPFD_CLOEXEC): " + errno_text(err));
    return Fd{moved};
}

Result<std::pair<Fd, Fd>> make_pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return fail(Errc::process, "pipe2: " + errno_text(errno));
    auto read_end = above_stdio(fds[0]);
    auto write_end = above_stdio(fds[1]);
    if (!read_end) return std::unexpected(read_end.error());
    if (!write_end) return std::unexpected(write_end.error());
    return std::pair{std::move(*read_end), std::move(*write_end)};
}

bool is_executable_file(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
           ::access(path.c_str(), X_OK) == 0;
}

// Resolved in the parent, because the child may only call async-signal-safe functions.
Result<std::string> resolve_program(const ProcessSpec& spec, std::string_view path_var) {
    const std::string& name = spec.argv.front();
    if (name.empty()) return fail(Errc::process, "empty program name");
    if (name.find('/') != std::string::npos) {
        if (name.front() == '/' || spec.cwd.empty()) return name;
        return (spec.cwd / name).string();
    }
    while (true) {
        const auto colon = path_var.find(':');
        const auto dir = path_var.substr(0, colon);
        // An empty PATH entry means "the current directory": never search it implicitly.
        if (!dir.empty()) {
            std::string candidate{dir};
            candidate += '/';
            candidate += name;
            if (is_executable_file(candidate)) return candidate;
        }
        if (colon == std::string_view::npos) break;
        path_var.remove_prefix(colon + 1);
    }
    return fail(Errc::process, "program not found in PATH: " + name);
}

bool has_nul(std::string_view s) {
    return s.find('\0') != std::string_view::npos;
}

Result<std::map<std::string, std::string>> build_env(const ProcessSpec& spec) {
    std::map<std::string, std::string> env{{"PATH", std::string{kMinimalPath}},
                                           {"LANG", "C.UTF-8"}};
    for (const auto& [key, value] : spec.extra_env) {
        if (key.empty() || key.find('=') != std::string::npos || has_nul(key) || has_nul(value)) {
            return fail(Errc::invalid_argument, "bad environment variable name: " + key);
        }
        env.insert_or_assign(key, value);
    }
    return env;
}

// Everything the child needs, laid out before fork() so the child allocates nothing.
struct ChildPlan {
    std::string program;
    std::string cwd;
    std::vector<std::string> env_strings;
    std::vector<char*> argv;
    std::vector<char*> envp;
    int max_fd = 0;
};

Result<ChildPlan> plan_child(const ProcessSpec& spec) {
    if (spec.argv.empty()) return fail(Errc::invalid_argument, "empty argv");
    for (const auto& arg : spec.argv) {
        if (has_nul(arg)) return fail(Errc::invalid_argument, "argv element contains NUL");
    }
    auto env = build_env(spec);
    if (!env) return std::unexpected(env.error());
    auto program = resolve_program(spec, env->at("PATH"));
    if (!program) return std::unexpected(program.error());

    ChildPlan plan;
    plan.program = std::move(*program);
    plan.cwd = spec.cwd.string();
    for (const auto& [key, value] : *env) plan.env_strings.push_back(key + "=" + value);
    for (const auto& arg : spec.argv) plan.argv.push_back(const_cast<char*>(arg.c_str()));
    plan.argv.push_back(nullptr);
    for (auto& entry : plan.env_strings) plan.envp.push_back(entry.data());
    plan.envp.push_back(nullptr);
    struct rlimit lim {};
    plan.max_fd = ::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY &&
                          lim.rlim_cur < 1048576
                      ? static_cast<int>(lim.rlim_cur)
                      : 1048576;
    return plan;
}

// Tells the parent why the child could not exec, then dies. Async-signal-safe only.
[[noreturn]] void child_fail(int error_fd, int err) {
    [[maybe_unused]] auto n = ::write(error_fd, &err, sizeof err);
    ::_exit(127);
}

void close_other_fds(int keep, int max_fd) {
    if (keep > 3 && ::syscall(SYS_close_range, 3U, static_cast<unsigned>(keep - 1), 0U) != 0) {
        for (int fd = 3; fd < keep; ++fd) ::close(fd);
    }
    if (::syscall(SYS_close_range, static_cast<unsigned>(keep + 1), ~0U, 0U) != 0) {
        for (int fd = keep + 1; fd < max_fd; ++fd) ::close(fd);
    }
}

// Runs in the forked child: async-signal-safe calls only (no allocation, no locks).
[[noreturn]] void exec_child(const ChildPlan& plan, int null_fd, int out_fd, int error_fd) {
    ::setpgid(0, 0);
    // Dispositions set to "ignore" and blocked signals survive exec. A daemon that ignores
    // SIGPIPE or blocks SIGTERM must not pass that on: installers expect the defaults, and the
    // timeout relies on SIGTERM working.
    ::signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (::dup2(null_fd, 0) < 0 || ::dup2(out_fd, 1) < 0 || ::dup2(out_fd, 2) < 0) {
        child_fail(error_fd, errno);
    }
    if (!plan.cwd.empty() && ::chdir(plan.cwd.c_str()) != 0) child_fail(error_fd, errno);
    // The error pipe is close-on-exec, so it is the one descriptor kept open until exec.
    close_other_fds(error_fd, plan.max_fd);
    ::execve(plan.program.c_str(), plan.argv.data(), plan.envp.data());
    child_fail(error_fd, errno);
}

// Waits until exec succeeded (the close-on-exec error pipe reaches EOF) or the child reported
// why it failed. Returns the child's errno in the latter case.
std::optional<int> exec_error(int error_fd) {
    int err = 0;
    std::size_t got = 0;
    while (got < sizeof err) {
        const auto n = ::read(error_fd, reinterpret_cast<char*>(&err) + got, sizeof err - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
    }
    if (got == sizeof err) return err;
    return std::nullopt;
}

// -1 when the status is unknowable (someone else reaped the child, e.g. SIGCHLD set to
// SIG_IGN): an unknown outcome must never read as success.
int reap(pid_t pid) {
    int status = 0;
    pid_t got = 0;
    do {
        got = ::waitpid(pid, &status, 0);
    } while (got < 0 && errno == EINTR);
    if (got != pid) return -1;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

// True once the child has exited; it stays a zombie (WNOWAIT), so its pid, which is also the
// process group id, cannot be reused while we may still signal the group.
bool has_exited(pid_t pid) {
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
        return errno != EINTR;  // ECHILD: nothing left to wait for
    }
    return info.si_pid == pid;
}

int remaining_ms(Clock::time_point deadline) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return 0;
    return left.count() > 60'000 ? 60'000 : static_cast<int>(left.count());
}

// Collects the child's merged output, keeping only the newest max_output bytes.
class OutputTail {
  public:
    explicit OutputTail(std::size_t max_output) : max_(max_output) {}

    // Reads what is available. Returns false at end of file or on a read error.
    bool read_from(int fd) {
        char buf[65536];
        const auto n = ::read(fd, buf, sizeof buf);
        if (n < 0) return errno == EINTR || errno == EAGAIN;
        if (n == 0) return false;
        append(std::string_view{buf, static_cast<std::size_t>(n)});
        return true;
    }

    std::string take() && { return std::move(data_); }

  private:
    void append(std::string_view chunk) {
        if (chunk.size() >= max_) {
            data_.assign(chunk.substr(chunk.size() - max_));
            return;
        }
        data_.append(chunk);
        if (data_.size() > max_) data_.erase(0, data_.size() - max_);
    }

    std::size_t max_;
    std::string data_;
};

// Turns a stop request into a readable descriptor, so the poll() that waits for the child wakes
// up for it. The callback runs on the thread that requests the stop.
class StopWake {
  public:
    explicit StopWake(std::stop_token stop) : stop_(std::move(stop)) {
        if (!stop_.stop_possible()) return;
        const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd >= 0) fd_ = Fd{fd};
        callback_.emplace(stop_, [this] { notify(); });
    }
    StopWake(const StopWake&) = delete;
    StopWake& operator=(const StopWake&) = delete;

    bool requested() const { return stop_.stop_requested(); }
    // -1 when there is nothing to watch (no stop possible) or no eventfd could be made.
    int fd() const { return fd_.get(); }
    // True when a stop needs no polling to be seen.
    bool wakes_poll() const { return !stop_.stop_possible() || fd_.get() >= 0; }

  private:
    void notify() {
        if (fd_.get() < 0) return;
        const std::uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(fd_.get(), &one, sizeof one);
    }

    std::stop_token stop_;
    Fd fd_;
    // Last: destroyed first, and its destructor waits for a callback running on another thread.
    std::optional<std::stop_callback<std::function<void()>>> callback_;
};

// Why ChildWatch::run_until returned.
enum class Outcome { exited, deadline, stopped };

// Watches one child: its output pipe, its exit through a pidfd when the kernel has them, and a
// stop request.
class ChildWatch {
  public:
    ChildWatch(pid_t pid, Fd out, std::size_t max_output, std::stop_token stop)
        : pid_(pid), out_(std::move(out)), tail_(max_output), stop_(std::move(stop)) {
        const auto pidfd = ::syscall(SYS_pidfd_open, pid, 0);
        if (pidfd >= 0) pidfd_ = Fd{static_cast<int>(pidfd)};
    }

    // Reads output until the child exits, the deadline passes or (with `heed_stop`) a stop is
    // requested.
    Outcome run_until(Clock::time_point deadline, bool heed_stop) {
        while (!has_exited(pid_)) {
            if (heed_stop && stop_.requested()) return Outcome::stopped;
            const int left = remaining_ms(deadline);
            if (left == 0) return Outcome::deadline;
            const bool woken = pidfd_.get() >= 0 && (!heed_stop || stop_.wakes_poll());
            wait_for_activity(woken ? left : std::min(left, kPollSliceMs), heed_stop);
        }
        return Outcome::exited;
    }

    // After exit: take what is still buffered in the pipe, without waiting for descendants
    // that inherited it.
    void drain() {
        if (out_.get() < 0) return;
        ::fcntl(out_.get(), F_SETFL, ::fcntl(out_.get(), F_GETFL) | O_NONBLOCK);
        const auto until = Clock::now() + kDrainGrace;
        while (Clock::now() < until) {
            pollfd p{out_.get(), POLLIN, 0};
            if (::poll(&p, 1, 0) <= 0 || !tail_.read_from(out_.get())) break;
        }
        out_.reset();
    }

    std::string take_output() && { return std::move(tail_).take(); }

  private:
    void wait_for_activity(int timeout_ms, bool heed_stop) {
        pollfd fds[3];
        nfds_t count = 0;
        if (out_.get() >= 0) fds[count++] = pollfd{out_.get(), POLLIN, 0};
        if (pidfd_.get() >= 0) fds[count++] = pollfd{pidfd_.get(), POLLIN, 0};
        // Never read: once a stop is requested it stays readable, and the caller stops watching.
        if (heed_stop && stop_.fd() >= 0) fds[count++] = pollfd{stop_.fd(), POLLIN, 0};
        const int ready = ::poll(fds, count, timeout_ms);
        if (ready <= 0 || out_.get() < 0) return;
        if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0 && !tail_.read_from(out_.get())) {
            out_.reset();  // EOF: every writer is gone; only the exit is left to see
        }
    }

    pid_t pid_;
    Fd out_;
    Fd pidfd_;
    OutputTail tail_;
    StopWake stop_;
};

}  // namespace

Result<ProcessResult> run_process(const ProcessSpec& spec) {
    auto plan = plan_child(spec);
    if (!plan) return std::unexpected(plan.error());
    // Stopped before it started (a shutdown that began while the job was being picked up): an
    // install must not start then.
    if (spec.stop.stop_requested()) {
        ProcessResult stopped;
        stopped.stopped = true;
        return stopped;
    }
    auto out_pipe = make_pipe();
    if (!out_pipe) return std::unexpected(out_pipe.error());
    auto error_pipe = make_pipe();
    if (!error_pipe) return std::unexpected(error_pipe.error());
    auto null_fd = above_stdio(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!null_fd) return std::unexpected(null_fd.error());

    const auto deadline = Clock::now() + spec.timeout;
    const pid_t pid = ::fork();
    if (pid < 0) return fail(Errc::process, "fork: " + errno_text(errno));
    if (pid == 0)
        exec_child(*plan, null_fd->get(), out_pipe->second.get(), error_pipe->second.get());

    // Also from the parent, so the group exists before we might signal it (no race with exec).
    ::setpgid(pid, pid);
    out_pipe->second.reset();
    error_pipe->second.reset();
    null_fd->reset();

    if (const auto err = exec_error(error_pipe->first.get())) {
        reap(pid);
        return fail(Errc::process, "cannot run " + plan->program + ": " + errno_text(*err));
    }
    if (spec.on_started) spec.on_started(static_cast<int>(pid));

    ProcessResult result;
    ChildWatch watch{pid, std::move(out_pipe->first), spec.max_output, spec.stop};
    if (const auto outcome = watch.run_until(deadline, true); outcome != Outcome::exited) {
        result.timed_out = outcome == Outcome::deadline;
        result.stopped = outcome == Outcome::stopped;
        ::kill(-pid, SIGTERM);
        watch.run_until(Clock::now() + kKillGrace, false);
        // Whether or not the leader obeyed, nothing it started may outlive the timeout or stop.
        ::kill(-pid, SIGKILL);
    }
    watch.drain();
    result.exit_code = reap(pid);
    result.output = std::move(watch).take_output();
    return result;
}

}  // namespace patchswarm::io
