// The Windows Env: the system clocks, the boot identity, io/fs.hpp and io/process.hpp (their
// Windows implementations in win_fs.cpp and win_process.cpp), the private state folder.
#include "io/win_env.hpp"

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
// After windows.h:
#include <aclapi.h>
#include <sddl.h>
#include <shlobj.h>

#include <string>
#include <utility>

#include "base/text.hpp"
#include "io/fs.hpp"
#include "io/win_command.hpp"
#include "io/win_system.hpp"

namespace patchswarm::io {

namespace {

constexpr std::size_t kMaxBootIdBytes = 4096;

// ntdll's SystemTimeOfDayInformation (class 3): the layout is stable since NT 4 but only
// declared in the DDK, hence here.
struct TimeOfDay {
    LARGE_INTEGER boot_time;  // FILETIME units (100 ns since 1601)
    LARGE_INTEGER current_time;
    LARGE_INTEGER time_zone_bias;
    ULONG time_zone_id;
    ULONG reserved;
    ULONGLONG boot_time_bias;
    ULONGLONG sleep_time_bias;
};
using NtQuerySystemInformationFn = LONG(WINAPI*)(int, void*, ULONG, ULONG*);

// The boot counter the kernel increments at every boot (ETW and the prefetcher use it).
std::string registry_boot_counter() {
    DWORD value = 0;
    DWORD size = sizeof value;
    const LSTATUS rc =
        ::RegGetValueW(HKEY_LOCAL_MACHINE,
                       L"SYSTEM\\CurrentControlSet\\Control\\Session Manager\\Memory "
                       L"Management\\PrefetchParameters",
                       L"BootId", RRF_RT_REG_DWORD, nullptr, &value, &size);
    if (rc != ERROR_SUCCESS) return {};
    return "bootid-" + std::to_string(value);
}

// The last boot time, to the second. Windows moves it when the clock is set (it keeps boot time
// + uptime = now), so this is the fallback where the counter is missing (Wine).
std::string last_boot_time() {
    HMODULE ntdll = ::GetModuleHandleW(L"ntdll.dll");
    if (ntdll == nullptr) return {};
    auto query = reinterpret_cast<NtQuerySystemInformationFn>(
        reinterpret_cast<void*>(::GetProcAddress(ntdll, "NtQuerySystemInformation")));
    if (query == nullptr) return {};
    TimeOfDay tod{};
    ULONG got = 0;
    if (query(3, &tod, sizeof tod, &got) != 0 || tod.boot_time.QuadPart == 0) return {};
    return "boottime-" + std::to_string(tod.boot_time.QuadPart / 10'000'000);
}

class WindowsEnv final : public Env {
  public:
    explicit WindowsEnv(std::filesystem::path boot_id_file)
        : boot_id_file_(std::move(boot_id_file)) {}

    std::int64_t now_unix() override {
        return std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
    }

    std::chrono::steady_clock::time_point now_steady() override {
        return std::chrono::steady_clock::now();
    }

    std::string hostname() override {
        wchar_t buf[256] = {};
        DWORD size = static_cast<DWORD>(std::size(buf));
        if (!::GetComputerNameExW(ComputerNameDnsHostname, buf, &size)) return {};
        return win::utf16_to_utf8(std::u16string_view(reinterpret_cast<char16_t*>(buf), size));
    }

    std::string boot_id() override {
        if (!boot_id_file_.empty()) {
            auto content = io::read_file(boot_id_file_, kMaxBootIdBytes);
            if (!content) return {};
            return std::string(trim(*content, " \t\r\n"));
        }
        if (auto counter = registry_boot_counter(); !counter.empty()) return counter;
        return last_boot_time();
    }

    Result<std::string> read_file(const std::filesystem::path& path,
                                  std::size_t max_bytes) override {
        return io::read_file(path, max_bytes);
    }

    Result<void> write_file_atomic(const std::filesystem::path& path, std::string_view content,
                                   std::filesystem::perms perms) override {
        return io::write_file_atomic(path, content, perms);
    }

    Result<CopiedFile> copy_file_hashed(const std::filesystem::path& src,
                                        const std::filesystem::path& dst, std::uint64_t max_bytes,
                                        bool executable) override {
        return io::copy_file_hashed(src, dst, max_bytes, executable);
    }

    Result<ProcessResult> run_process(const ProcessSpec& spec) override {
        return io::run_process(spec);
    }

  private:
    const std::filesystem::path boot_id_file_;
};

}  // namespace

std::unique_ptr<Env> make_windows_env(std::filesystem::path boot_id_file) {
    return std::make_unique<WindowsEnv>(std::move(boot_id_file));
}

Result<std::filesystem::path> windows_state_dir() {
    PWSTR folder = nullptr;
    const HRESULT hr = ::SHGetKnownFolderPath(FOLDERID_ProgramData, 0, nullptr, &folder);
    if (FAILED(hr) || folder == nullptr) {
        ::CoTaskMemFree(folder);
        return fail(Errc::io, "cannot find the ProgramData folder");
    }
    std::filesystem::path dir = std::filesystem::path(folder) / L"patchswarm";
    ::CoTaskMemFree(folder);
    return dir;
}

Result<void> make_private_dir(const std::filesystem::path& dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return fail(Errc::io, "cannot create " + dir.string() + ": " + ec.message());
    // P: protected (nothing inherited from ProgramData, whose default lets Users read and
    // create); OICI: inherited by files and folders below; FA: full access.
    PSECURITY_DESCRIPTOR sd = nullptr;
    if (!::ConvertStringSecurityDescriptorToSecurityDescriptorW(
            L"D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)", SDDL_REVISION_1, &sd, nullptr)) {
        return fail(Errc::internal, "ACL: " + win::last_error_message());
    }
    BOOL present = FALSE;
    BOOL defaulted = FALSE;
    PACL dacl = nullptr;
    ::GetSecurityDescriptorDacl(sd, &present, &dacl, &defaulted);
    std::wstring name = dir.wstring();
    const DWORD rc =
        ::SetNamedSecurityInfoW(name.data(), SE_FILE_OBJECT,
                                DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                                nullptr, nullptr, dacl, nullptr);
    ::LocalFree(sd);
    if (rc != ERROR_SUCCESS) {
        return fail(Errc::io,
                    "cannot set the ACL of " + dir.string() + ": " + win::error_message(rc));
    }
    return {};
}

}  // namespace patchswarm::io
