#include "io/supervise.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "io/fs.hpp"

namespace patchswarm::io {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

// The supervisor's own descriptors, set up by start_supervised before exec.
constexpr int kLockFd = 3;
constexpr int kReadyFd = 4;
constexpr std::size_t kMaxKeyBytes = 200;
constexpr std::size_t kMaxSpecBytes = 256 * 1024;
constexpr std::size_t kMaxRecordBytes = 64 * 1024;
// The record keeps the tail of the output; the agent stores at most this much anyway.
constexpr std::size_t kRecordOutputBytes = 8 * 1024;
// How long the agent waits for a started supervisor to record itself: it reads a small file and
// writes another, so only a machine in deep trouble takes this long.
constexpr int kReadyTimeoutMs = 30'000;
// Waiting for a process that is not our child: a pidfd wakes the wait when it exits; the slice
// bounds how late a stop request (agent shutdown) is seen.
constexpr int kWaitSliceMs = 200;
constexpr std::string_view kMinimalPath =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

bool valid_key(const std::string& key) {
    if (key.empty() || key.size() > kMaxKeyBytes || key == "." || key == "..") return false;
    for (char c : key) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

fs::path spec_path(const fs::path& dir, const std::string& key) {
    return dir / (key + ".spec.json");
}
fs::path lock_path(const fs::path& dir, const std::string& key) {
    return dir / (key + ".lock");
}
fs::path record_path(const fs::path& dir, const std::string& key) {
    return dir / (key + ".json");
}
fs::path log_path(const fs::path& dir, const std::string& key) {
    return dir / (key + ".log");
}

std::string errno_text(int err) {
    return std::strerror(err);
}

class Fd {
  public:
    explicit Fd(int fd = -1) : fd_(fd) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { reset(); }
    int get() const { return fd_; }
    void reset() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

  private:
    int fd_;
};

// Whether some process holds the lock now. A missing lock file is no supervisor.
bool lock_held(const fs::path& path) {
    Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    if (fd.get() < 0) return false;
    int rc = 0;
    do {
        rc = ::flock(fd.get(), LOCK_EX | LOCK_NB);
    } while (rc != 0 && errno == EINTR);
    return rc != 0 && errno == EWOULDBLOCK;  // taken here and released by the close
}

Json spec_json(const ProcessSpec& p) {
    Json j;
    j["argv"] = p.argv;
    j["cwd"] = p.cwd.string();
    j["timeout_s"] = p.timeout.count();
    j["max_output"] = p.max_output;
    j["env"] = Json::object();
    for (const auto& [k, v] : p.extra_env) j["env"][k] = v;
    return j;
}

Result<ProcessSpec> spec_from_json(const std::string& text) {
    const Json j = Json::parse(text, nullptr, false);
    if (!j.is_object() || !j.contains("argv") || !j["argv"].is_array() || !j.contains("cwd") ||
        !j["cwd"].is_string() || !j.contains("timeout_s") || !j["timeout_s"].is_number_integer()) {
        return fail(Errc::malformed, "install spec malformed");
    }
    ProcessSpec p;
    for (const auto& a : j["argv"]) {
        if (!a.is_string()) return fail(Errc::malformed, "install spec: argv not strings");
        p.argv.push_back(a.get<std::string>());
    }
    p.cwd = j["cwd"].get<std::string>();
    p.timeout = std::chrono::seconds(j["timeout_s"].get<std::int64_t>());
    if (j.contains("max_output") && j["max_output"].is_number_unsigned()) {
        p.max_output = j["max_output"].get<std::size_t>();
    }
    if (j.contains("env") && j["env"].is_object()) {
        for (const auto& [k, v] : j["env"].items()) {
            if (v.is_string()) p.extra_env[k] = v.get<std::string>();
        }
    }
    return p;
}

std::optional<Json> read_record(const fs::path& dir, const std::string& key) {
    auto text = io::read_file(record_path(dir, key), kMaxRecordBytes);
    if (!text) return std::nullopt;
    Json j = Json::parse(*text, nullptr, false);
    if (!j.is_object()) return std::nullopt;
    return j;
}

std::int64_t json_i64(const Json& j, const char* key) {
    return j.contains(key) && j[key].is_number_integer() ? j[key].get<std::int64_t>() : 0;
}
std::uint64_t json_u64(const Json& j, const char* key) {
    return j.contains(key) && j[key].is_number_unsigned() ? j[key].get<std::uint64_t>() : 0;
}

// Is `pid` the very process that started at `start` (clock ticks after boot)?
bool same_process_alive(std::int64_t pid, std::uint64_t start) {
    if (pid <= 0 || start == 0) return false;
    const auto now = process_start_time(static_cast<int>(pid));
    return now && *now == start;
}

// Waits up to `ms` for `pid` to exit (a pidfd), or just sleeps the slice without one.
void wait_for_exit(std::int64_t pid, int ms) {
    const long pidfd = pid > 0 ? ::syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0) : -1;
    if (pidfd < 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(ms > 50 ? 50 : ms));
        return;
    }
    Fd fd{static_cast<int>(pidfd)};
    pollfd p{fd.get(), POLLIN, 0};
    ::poll(&p, 1, ms);
}

std::int64_t unix_now() {
    return static_cast<std::int64_t>(::time(nullptr));
}

// Stays in memory of the supervisor; each write replaces KEY.json atomically.
class Recorder {
  public:
    Recorder(fs::path dir, std::string key) : dir_(std::move(dir)), key_(std::move(key)) {}
    Json& doc() { return doc_; }
    bool write() {
        // Installer output is arbitrary bytes; JSON wants UTF-8: invalid sequences become U+FFFD.
        auto ok = io::write_file_atomic(record_path(dir_, key_),
                                        doc_.dump(-1, ' ', false, Json::error_handler_t::replace),
                                        fs::perms::owner_read | fs::perms::owner_write);
        if (!ok) {
            const std::string line =
                "supervisor: cannot write the record: " + ok.error().message + "\n";
            [[maybe_unused]] auto n = ::write(2, line.data(), line.size());
        }
        return ok.has_value();
    }

  private:
    fs::path dir_;
    std::string key_;
    Json doc_ = Json::object();
};

std::string tail(const std::string& s, std::size_t n) {
    return s.size() <= n ? s : s.substr(s.size() - n);
}

}  // namespace

std::optional<std::uint64_t> process_start_time(int pid) {
    if (pid <= 0) return std::nullopt;
    auto text = io::read_file("/proc/" + std::to_string(pid) + "/stat", 4096);
    if (!text) return std::nullopt;
    // "pid (comm) state ppid ..." where comm may itself contain ')' and spaces: the fields
    // after the last ')' are fixed; starttime is field 22, the 20th after it.
    const auto close = text->rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::size_t pos = close + 1;
    std::string field;
    for (int i = 0; i < 20; ++i) {
        while (pos < text->size() && (*text)[pos] == ' ') ++pos;
        const auto end = text->find(' ', pos);
        field = text->substr(pos, end == std::string::npos ? std::string::npos : end - pos);
        if (end == std::string::npos && i < 19) return std::nullopt;
        pos = end;
    }
    // A zombie has exited: its exit status is the supervisor's to record, not a live installer.
    const auto state_at = text->find_first_not_of(' ', close + 1);
    if (state_at != std::string::npos && (*text)[state_at] == 'Z') return std::nullopt;
    try {
        return static_cast<std::uint64_t>(std::stoull(field));
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

Result<void> start_supervised(const fs::path& supervisor_program, const SupervisedSpec& s) {
    if (!valid_key(s.key)) return fail(Errc::invalid_argument, "bad install key: " + s.key);
    if (s.process.argv.empty()) return fail(Errc::invalid_argument, "empty argv");
    std::error_code ec;
    fs::create_directories(s.dir, ec);
    if (ec) return fail(Errc::io, "create " + s.dir.string() + ": " + ec.message());
    if (auto ok = io::write_file_atomic(spec_path(s.dir, s.key), spec_json(s.process).dump(),
                                        fs::perms::owner_read | fs::perms::owner_write);
        !ok) {
        return std::unexpected(ok.error());
    }
    const fs::path lock = lock_path(s.dir, s.key);
    Fd lock_fd{::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)};
    if (lock_fd.get() < 0)
        return fail(Errc::io, "open " + lock.string() + ": " + errno_text(errno));
    if (::flock(lock_fd.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) {
            return fail(Errc::already_exists, "an install supervisor for " + s.key + " is running");
        }
        return fail(Errc::io, "flock " + lock.string() + ": " + errno_text(errno));
    }
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) != 0) return fail(Errc::process, "pipe2: " + errno_text(errno));
    Fd ready_read{ready[0]};
    Fd ready_write{ready[1]};
    const fs::path log = log_path(s.dir, s.key);
    Fd log_fd{::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)};
    Fd null_fd{::open("/dev/null", O_RDONLY | O_CLOEXEC)};
    if (log_fd.get() < 0 || null_fd.get() < 0)
        return fail(Errc::io, "open " + log.string() + ": " + errno_text(errno));

    // Everything the children use is laid out before fork: they may only call
    // async-signal-safe functions (the agent has other threads).
    std::vector<std::string> args{supervisor_program.string(), "supervise", s.dir.string(), s.key};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_strings{"PATH=" + std::string(kMinimalPath), "LANG=C.UTF-8"};
    // The crash points (io/crash_point.hpp) follow the agent into its supervisor only when the
    // test names a supervisor point; the variable is inert otherwise.
    if (const char* crash = ::getenv("PATCHSWARM_CRASH_AT"))
        env_strings.push_back(std::string("PATCHSWARM_CRASH_AT=") + crash);
    std::vector<char*> envp;
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    const std::string program = supervisor_program.string();

    const pid_t first = ::fork();
    if (first < 0) return fail(Errc::process, "fork: " + errno_text(errno));
    if (first == 0) {
        // A session of its own: no terminal, no process group the agent's killer signals.
        ::setsid();
        const pid_t second = ::fork();
        if (second != 0) ::_exit(second < 0 ? 1 : 0);
        // The grandchild: adopted by init (or the subreaper) once the first child exits.
        const int lock_high = ::fcntl(lock_fd.get(), F_DUPFD, 10);
        const int ready_high = ::fcntl(ready_write.get(), F_DUPFD, 10);
        if (lock_high < 0 || ready_high < 0) ::_exit(126);
        if (::dup2(null_fd.get(), 0) < 0 || ::dup2(log_fd.get(), 1) < 0 ||
            ::dup2(log_fd.get(), 2) < 0 || ::dup2(lock_high, kLockFd) < 0 ||
            ::dup2(ready_high, kReadyFd) < 0) {
            ::_exit(126);
        }
        ::syscall(SYS_close_range, 5U, ~0U, 0U);
        ::signal(SIGPIPE, SIG_DFL);
        sigset_t none;
        ::sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::execve(program.c_str(), argv.data(), envp.data());
        ::_exit(127);
    }
    int status = 0;
    while (::waitpid(first, &status, 0) < 0 && errno == EINTR) {
    }
    ready_write.reset();
    // One byte once the supervisor has recorded itself; EOF if it died first.
    pollfd p{ready_read.get(), POLLIN, 0};
    int polled = 0;
    do {
        polled = ::poll(&p, 1, kReadyTimeoutMs);
    } while (polled < 0 && errno == EINTR);
    char byte = 0;
    const auto n = polled > 0 ? ::read(ready_read.get(), &byte, 1) : 0;
    if (n != 1) {
        return fail(Errc::process,
                    "the install supervisor did not start (see " + log.string() + ")");
    }
    return {};  // our copy of the lock closes here; the supervisor's keeps it
}

core::InstallObservation probe_supervised(const fs::path& dir, const std::string& key) {
    core::InstallObservation seen;
    if (!valid_key(key)) return seen;
    seen.supervisor_running = lock_held(lock_path(dir, key));
    auto rec = read_record(dir, key);
    if (!rec) return seen;
    const Json& j = *rec;
    seen.recorded = true;
    const std::string phase = j.value("phase", "");
    const std::int64_t installer = json_i64(j, "installer_pid");
    seen.launching = phase == "launching";
    seen.installer_started = installer > 0;
    seen.finished = phase == "finished";
    if (seen.installer_started) {
        seen.detail = "installer pid " + std::to_string(installer);
        if (!seen.finished) {
            seen.installer_running = same_process_alive(installer, json_u64(j, "installer_start"));
        }
    } else if (seen.launching) {
        seen.detail = "the supervisor died while starting the installer";
    }
    if (seen.finished) {
        seen.exit_code = static_cast<int>(json_i64(j, "exit_code"));
        seen.timed_out = j.value("timed_out", false);
        seen.output_tail = j.value("output", "");
    }
    return seen;
}

bool wait_supervised(const fs::path& dir, const std::string& key, std::stop_token stop) {
    while (!stop.stop_requested()) {
        const auto seen = probe_supervised(dir, key);
        if (!seen.supervisor_running && !seen.installer_running) return true;
        std::int64_t pid = 0;
        if (auto rec = read_record(dir, key)) {
            const Json& j = *rec;
            if (seen.supervisor_running && same_process_alive(json_i64(j, "supervisor_pid"),
                                                              json_u64(j, "supervisor_start"))) {
                pid = json_i64(j, "supervisor_pid");
            } else if (seen.installer_running) {
                pid = json_i64(j, "installer_pid");
            }
        }
        wait_for_exit(pid, kWaitSliceMs);
    }
    return false;
}

int supervise_main(const fs::path& dir, const std::string& key) {
    // The agent may be gone when we tell it we are up: a closed pipe is not our death.
    ::signal(SIGPIPE, SIG_IGN);
    ::signal(SIGHUP, SIG_IGN);
    auto say_ready = [] {
        const char one = '1';
        [[maybe_unused]] auto n = ::write(kReadyFd, &one, 1);
        ::close(kReadyFd);
    };
    if (!valid_key(key)) return 2;
    Recorder rec(dir, key);
    auto& doc = rec.doc();
    doc["key"] = key;
    doc["supervisor_pid"] = static_cast<std::int64_t>(::getpid());
    doc["supervisor_start"] = process_start_time(static_cast<int>(::getpid())).value_or(0);
    doc["started_at"] = unix_now();
    doc["phase"] = "supervising";
    doc["installer_pid"] = 0;
    auto finish = [&](int exit_code, bool timed_out, const std::string& output) {
        doc["phase"] = "finished";
        doc["exit_code"] = exit_code;
        doc["timed_out"] = timed_out;
        doc["output"] = tail(output, kRecordOutputBytes);
        doc["finished_at"] = unix_now();
        return rec.write() ? 0 : 1;
    };
    auto text = io::read_file(spec_path(dir, key), kMaxSpecBytes);
    auto spec = text ? spec_from_json(*text) : Result<ProcessSpec>(std::unexpected(text.error()));
    if (!spec) {
        // Nothing ran: say so as a failed install (exit 127, like a program not found).
        const int rc = finish(127, false, "install supervisor: " + spec.error().message);
        say_ready();
        return rc;
    }
    if (!rec.write()) {
        // Without a record the agent could not tell a running install from none: do not start.
        return 1;
    }
    say_ready();
    // From here until the installer's pid is recorded, a supervisor that dies leaves
    // "launching": the installer may or may not have started, and the agent treats it as dead.
    doc["phase"] = "launching";
    if (!rec.write()) return 1;
    spec->on_started = [&](int pid) {
        doc["phase"] = "running";
        doc["installer_pid"] = pid;
        doc["installer_start"] = process_start_time(pid).value_or(0);
        rec.write();
    };
    auto res = io::run_process(*spec);
    if (!res) return finish(127, false, res.error().message);
    return finish(res->exit_code, res->timed_out, res->output);
}

}  // namespace patchswarm::io
