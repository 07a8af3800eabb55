// io/fs.hpp on Windows. Permissions (`perms`, `executable`) have no POSIX meaning here: files
// inherit the ACL of the state folder (make_private_dir in win_env.cpp), and whether a file runs
// depends on its extension, not on a mode bit.
#include <atomic>
#include <string>
#include <vector>

#include "io/fs.hpp"
#include "io/win_system.hpp"

namespace patchswarm::io {

namespace {

struct File {
    HANDLE h = INVALID_HANDLE_VALUE;
    File(const File&) = delete;
    File& operator=(const File&) = delete;
    explicit File(HANDLE handle) : h(handle) {}
    ~File() {
        if (h != INVALID_HANDLE_VALUE) ::CloseHandle(h);
    }
    bool ok() const { return h != INVALID_HANDLE_VALUE; }
};

std::unexpected<Error> os_error(const char* what, const std::filesystem::path& path) {
    const DWORD code = ::GetLastError();
    const Errc errc =
        (code == ERROR_FILE_NOT_FOUND || code == ERROR_PATH_NOT_FOUND) ? Errc::not_found : Errc::io;
    return fail(errc, std::string(what) + " " + path.string() + ": " + win::error_message(code));
}

Result<void> write_all(HANDLE h, const char* data, std::size_t size,
                       const std::filesystem::path& path) {
    while (size > 0) {
        DWORD wrote = 0;
        const DWORD chunk = static_cast<DWORD>(std::min<std::size_t>(size, 1 << 20));
        if (!::WriteFile(h, data, chunk, &wrote, nullptr)) return os_error("cannot write", path);
        data += wrote;
        size -= wrote;
    }
    return {};
}

}  // namespace

Result<std::string> read_file(const std::filesystem::path& path, std::size_t max_bytes) {
    File f(::CreateFileW(path.c_str(), GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_DELETE, nullptr,
                         OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, nullptr));
    if (!f.ok()) return os_error("cannot open", path);
    LARGE_INTEGER size{};
    if (!::GetFileSizeEx(f.h, &size)) return os_error("cannot stat", path);
    if (static_cast<std::uint64_t>(size.QuadPart) > max_bytes) {
        return fail(Errc::too_large,
                    path.string() + " is larger than " + std::to_string(max_bytes) + " bytes");
    }
    std::string out;
    char buf[65536];
    for (;;) {
        DWORD got = 0;
        if (!::ReadFile(f.h, buf, sizeof buf, &got, nullptr)) return os_error("cannot read", path);
        if (got == 0) break;
        out.append(buf, got);
        // The file may have grown since it was measured.
        if (out.size() > max_bytes) {
            return fail(Errc::too_large,
                        path.string() + " is larger than " + std::to_string(max_bytes) + " bytes");
        }
    }
    return out;
}

Result<void> write_file_atomic(const std::filesystem::path& path, std::string_view content,
                               std::filesystem::perms /*perms*/) {
    static std::atomic<unsigned> counter{0};
    std::filesystem::path tmp = path;
    tmp += L".tmp-" + std::to_wstring(::GetCurrentProcessId()) + L"-" +
           std::to_wstring(counter.fetch_add(1));
    {
        File f(::CreateFileW(tmp.c_str(), GENERIC_WRITE, 0, nullptr, CREATE_NEW,
                             FILE_ATTRIBUTE_NORMAL, nullptr));
        if (!f.ok()) return os_error("cannot create", tmp);
        if (auto ok = write_all(f.h, content.data(), content.size(), tmp); !ok) {
            ::DeleteFileW(tmp.c_str());
            return ok;
        }
        if (!::FlushFileBuffers(f.h)) {
            auto e = os_error("cannot flush", tmp);
            ::DeleteFileW(tmp.c_str());
            return e;
        }
    }
    // WRITE_THROUGH: the rename itself is on disk when this returns (the fsync of the folder
    // on POSIX).
    if (!::MoveFileExW(tmp.c_str(), path.c_str(),
                       MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)) {
        auto e = os_error("cannot replace", path);
        ::DeleteFileW(tmp.c_str());
        return e;
    }
    return {};
}

Result<CopiedFile> copy_file_hashed(const std::filesystem::path& src,
                                    const std::filesystem::path& dst, std::uint64_t max_bytes,
                                    bool /*executable*/) {
    // OPEN_REPARSE_POINT: a symlink or junction at src is opened itself, then refused below.
    File in(::CreateFileW(src.c_str(), GENERIC_READ, FILE_SHARE_READ, nullptr, OPEN_EXISTING,
                          FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_SEQUENTIAL_SCAN, nullptr));
    if (!in.ok()) return os_error("cannot open", src);
    BY_HANDLE_FILE_INFORMATION info{};
    if (!::GetFileInformationByHandle(in.h, &info)) return os_error("cannot stat", src);
    if (info.dwFileAttributes &
        (FILE_ATTRIBUTE_REPARSE_POINT | FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_DEVICE)) {
        return fail(Errc::unsafe_path, src.string() + " is not a regular file");
    }
    File out(::CreateFileW(dst.c_str(), GENERIC_WRITE, 0, nullptr, CREATE_NEW,
                           FILE_ATTRIBUTE_NORMAL, nullptr));
    if (!out.ok()) return os_error("cannot create", dst);
    crypto::Sha256Stream hash;
    CopiedFile copied;
    std::vector<char> buf(1 << 20);
    for (;;) {
        DWORD got = 0;
        if (!::ReadFile(in.h, buf.data(), static_cast<DWORD>(buf.size()), &got, nullptr)) {
            return os_error("cannot read", src);
        }
        if (got == 0) break;
        if (copied.size + got > max_bytes) {
            return fail(Errc::too_large,
                        src.string() + " is longer than " + std::to_string(max_bytes) + " bytes");
        }
        hash.update(crypto::ByteView(reinterpret_cast<const std::uint8_t*>(buf.data()), got));
        if (auto ok = write_all(out.h, buf.data(), got, dst); !ok)
            return std::unexpected(ok.error());
        copied.size += got;
    }
    if (!::FlushFileBuffers(out.h)) return os_error("cannot flush", dst);
    copied.sha256 = hash.finish();
    return copied;
}

}  // namespace patchswarm::io
