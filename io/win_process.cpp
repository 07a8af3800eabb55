// io/process.hpp on Windows: CreateProcessW inside a job object, so that a timeout or a stop
// ends the installer and everything it started (msiexec and setup.exe spawn helpers); output
// captured through one pipe for stdout and stderr; only that pipe and NUL are inherited.
//
// How argv becomes a process (io/win_command.hpp): an argv[0] naming an .msi, .msu, .exe, .cmd
// or .bat file is a release file below spec.cwd, run through installer_launch (msiexec /i ...
// /qn /norestart, wusa ... /quiet /norestart, cmd.exe /d /v:off /s /c for scripts); any other
// argv[0] must be an absolute path to an .exe (the configured reboot or helper commands) and is
// run with build_command_line. Exit codes come back as the full 32-bit value, so 3010 (reboot
// required) and 1641 (reboot started) reach the core as they are.
#include <algorithm>
#include <chrono>
#include <cwctype>
#include <map>
#include <stop_token>
#include <utility>
#include <vector>

#include "io/process.hpp"
#include "io/win_command.hpp"
#include "io/win_system.hpp"

namespace patchswarm::io {

namespace {

struct Handle {
    HANDLE h = nullptr;
    Handle() = default;
    explicit Handle(HANDLE handle) : h(handle == INVALID_HANDLE_VALUE ? nullptr : handle) {}
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle() {
        if (h != nullptr) ::CloseHandle(h);
    }
    void reset() {
        if (h != nullptr) ::CloseHandle(h);
        h = nullptr;
    }
};

std::wstring env_var(const wchar_t* name) {
    wchar_t buf[32768];
    const DWORD n = ::GetEnvironmentVariableW(name, buf, static_cast<DWORD>(std::size(buf)));
    if (n == 0 || n >= std::size(buf)) return {};
    return std::wstring(buf, n);
}

std::wstring system_dir() {
    wchar_t buf[MAX_PATH];
    const UINT n = ::GetSystemDirectoryW(buf, MAX_PATH);
    if (n == 0 || n >= MAX_PATH) return L"C:\\Windows\\system32";
    return std::wstring(buf, n);
}

// The environment block: what Windows programs need to run at all, then spec.extra_env. Sorted
// without regard to case, as CreateProcessW documents.
Result<std::wstring> environment_block(const std::map<std::string, std::string>& extra) {
    auto less = [](const std::wstring& a, const std::wstring& b) {
        return std::lexicographical_compare(
            a.begin(), a.end(), b.begin(), b.end(),
            [](wchar_t x, wchar_t y) { return std::towupper(x) < std::towupper(y); });
    };
    std::map<std::wstring, std::wstring, decltype(less)> vars(less);
    for (const wchar_t* name : {L"SystemRoot", L"windir", L"SystemDrive", L"ComSpec", L"PATHEXT",
                                L"ProgramData", L"ProgramFiles", L"TEMP", L"TMP"}) {
        if (auto value = env_var(name); !value.empty()) vars[name] = value;
    }
    const std::wstring root = vars.count(L"SystemRoot") ? vars[L"SystemRoot"] : L"C:\\Windows";
    vars[L"PATH"] = root + L"\\system32;" + root + L";" + root + L"\\System32\\Wbem";
    for (const auto& [name, value] : extra) {
        if (name.empty() || name.find_first_of("=\0", 0, 2) != std::string::npos ||
            value.find('\0') != std::string::npos) {
            return fail(Errc::invalid_argument, "bad environment variable name: " + name);
        }
        auto wname = win::wide(name);
        auto wvalue = win::wide(value);
        if (!wname || !wvalue) return fail(Errc::invalid_argument, "environment: invalid UTF-8");
        vars[*wname] = *wvalue;
    }
    std::wstring block;
    for (const auto& [name, value] : vars) block += name + L"=" + value + L'\0';
    block += L'\0';
    return block;
}

Result<win::Launch> launch_for(const ProcessSpec& spec) {
    if (spec.argv.empty()) return fail(Errc::invalid_argument, "empty argv");
    const std::string sys = win::narrow(system_dir());
    if (win::installer_kind(spec.argv[0])) {
        return win::installer_launch(spec.argv, spec.cwd.string(), sys);
    }
    const std::filesystem::path program(spec.argv[0]);
    if (!program.is_absolute()) {
        return fail(Errc::invalid_argument,
                    "'" + spec.argv[0] +
                        "': not a release installer (.msi .msu .exe .cmd .bat) nor an absolute "
                        "path");
    }
    auto line = win::build_command_line(spec.argv);
    if (!line) return std::unexpected(line.error());
    return win::Launch{spec.argv[0], std::move(*line)};
}

// Appends what the pipe holds now, without blocking, keeping only the last `max` bytes.
void drain(HANDLE pipe, std::string& out, std::size_t max) {
    for (;;) {
        DWORD available = 0;
        if (!::PeekNamedPipe(pipe, nullptr, 0, nullptr, &available, nullptr) || available == 0) {
            return;
        }
        char buf[16384];
        DWORD got = 0;
        const DWORD want = std::min<DWORD>(available, sizeof buf);
        if (!::ReadFile(pipe, buf, want, &got, nullptr) || got == 0) return;
        out.append(buf, got);
        if (out.size() > max) out.erase(0, out.size() - max);
    }
}

}  // namespace

Result<ProcessResult> run_process(const ProcessSpec& spec) {
    auto launch = launch_for(spec);
    if (!launch) return std::unexpected(launch.error());
    auto env = environment_block(spec.extra_env);
    if (!env) return std::unexpected(env.error());
    auto application = win::wide(launch->application);
    auto command_line = win::wide(launch->command_line);
    auto cwd = win::wide(spec.cwd.string());
    if (!application || !command_line || !cwd) {
        return fail(Errc::invalid_argument, "process: invalid UTF-8 in argv or cwd");
    }

    ProcessResult result;
    if (spec.stop.stop_requested()) {
        result.stopped = true;
        return result;
    }

    SECURITY_ATTRIBUTES inherit{sizeof(SECURITY_ATTRIBUTES), nullptr, TRUE};
    HANDLE read_raw = nullptr;
    HANDLE write_raw = nullptr;
    if (!::CreatePipe(&read_raw, &write_raw, &inherit, 0)) {
        return fail(Errc::process, "cannot create a pipe: " + win::last_error_message());
    }
    Handle read_end(read_raw);
    Handle write_end(write_raw);
    ::SetHandleInformation(read_end.h, HANDLE_FLAG_INHERIT, 0);
    Handle null_in(::CreateFileW(L"NUL", GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, &inherit,
                                 OPEN_EXISTING, 0, nullptr));
    if (null_in.h == nullptr) {
        return fail(Errc::process, "cannot open NUL: " + win::last_error_message());
    }

    // Only these two handles reach the child, whatever else this process holds inheritable.
    HANDLE inherited[] = {null_in.h, write_end.h};
    SIZE_T attr_size = 0;
    ::InitializeProcThreadAttributeList(nullptr, 1, 0, &attr_size);
    std::vector<char> attr_storage(attr_size);
    auto attrs = reinterpret_cast<LPPROC_THREAD_ATTRIBUTE_LIST>(attr_storage.data());
    if (!::InitializeProcThreadAttributeList(attrs, 1, 0, &attr_size) ||
        !::UpdateProcThreadAttribute(attrs, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, inherited,
                                     sizeof inherited, nullptr, nullptr)) {
        return fail(Errc::process, "cannot limit inherited handles: " + win::last_error_message());
    }
    struct AttrGuard {
        LPPROC_THREAD_ATTRIBUTE_LIST a;
        ~AttrGuard() { ::DeleteProcThreadAttributeList(a); }
    } attr_guard{attrs};

    STARTUPINFOEXW si{};
    si.StartupInfo.cb = sizeof si;
    si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
    si.StartupInfo.hStdInput = null_in.h;
    si.StartupInfo.hStdOutput = write_end.h;
    si.StartupInfo.hStdError = write_end.h;
    si.lpAttributeList = attrs;

    // The job exists before the process runs a single instruction (CREATE_SUSPENDED), so
    // nothing it starts can escape it. KILL_ON_JOB_CLOSE is not set: as on POSIX, what a
    // program leaves running after a normal exit is not touched.
    Handle job(::CreateJobObjectW(nullptr, nullptr));
    if (job.h == nullptr) {
        return fail(Errc::process, "cannot create a job object: " + win::last_error_message());
    }

    PROCESS_INFORMATION pi{};
    std::wstring mutable_line = *command_line;  // CreateProcessW may write to it
    const BOOL started =
        ::CreateProcessW(application->c_str(), mutable_line.data(), nullptr, nullptr, TRUE,
                         CREATE_SUSPENDED | CREATE_UNICODE_ENVIRONMENT |
                             EXTENDED_STARTUPINFO_PRESENT | CREATE_NO_WINDOW,
                         env->data(), cwd->empty() ? nullptr : cwd->c_str(), &si.StartupInfo, &pi);
    if (!started) {
        return fail(Errc::process,
                    "cannot start " + launch->application + ": " + win::last_error_message());
    }
    Handle process(pi.hProcess);
    Handle thread(pi.hThread);
    if (!::AssignProcessToJobObject(job.h, process.h)) {
        const std::string why = win::last_error_message();
        ::TerminateProcess(process.h, 1);
        return fail(Errc::process, "cannot put " + launch->application + " in a job: " + why);
    }
    ::ResumeThread(thread.h);
    thread.reset();
    write_end.reset();  // the child holds the only write end now
    null_in.reset();

    Handle stop_event(::CreateEventW(nullptr, TRUE, FALSE, nullptr));
    std::stop_callback on_stop(spec.stop, [&] { ::SetEvent(stop_event.h); });

    const auto deadline = std::chrono::steady_clock::now() + spec.timeout;
    HANDLE waits[] = {process.h, stop_event.h};
    for (;;) {
        drain(read_end.h, result.output, spec.max_output);
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            result.timed_out = true;
            break;
        }
        // Short slices: the pipe is drained between them (an anonymous pipe cannot be waited
        // on), so a chatty installer never blocks on a full pipe.
        const DWORD slice = static_cast<DWORD>(std::min<std::int64_t>(left.count(), 50));
        const DWORD w = ::WaitForMultipleObjects(2, waits, FALSE, slice);
        if (w == WAIT_OBJECT_0) break;
        if (w == WAIT_OBJECT_0 + 1) {
            result.stopped = true;
            break;
        }
        if (w == WAIT_FAILED) {
            ::TerminateJobObject(job.h, 1);
            return fail(Errc::process, "waiting failed: " + win::last_error_message());
        }
    }
    if (result.timed_out || result.stopped) {
        ::TerminateJobObject(job.h, 1);
        ::WaitForSingleObject(process.h, 10'000);
        drain(read_end.h, result.output, spec.max_output);
        result.exit_code = -1;
        return result;
    }
    drain(read_end.h, result.output, spec.max_output);
    DWORD code = 0;
    ::GetExitCodeProcess(process.h, &code);
    result.exit_code = static_cast<int>(code);
    return result;
}

}  // namespace patchswarm::io
