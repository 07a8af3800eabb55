// Small Win32 helpers shared by io/win_*.cpp (Windows builds only): UTF-8 <-> wchar_t strings
// and error texts. Internal to io/.
#pragma once

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>

#include <string>
#include <string_view>

#include "base/error.hpp"
#include "io/win_command.hpp"

namespace patchswarm::io::win {

static_assert(sizeof(wchar_t) == sizeof(char16_t), "Windows wchar_t is UTF-16");

// UTF-8 -> the wchar_t string the W functions take; Errc::invalid_argument for invalid UTF-8.
inline Result<std::wstring> wide(std::string_view text) {
    auto u16 = utf8_to_utf16(text);
    if (!u16) return std::unexpected(u16.error());
    return std::wstring(reinterpret_cast<const wchar_t*>(u16->data()), u16->size());
}

inline std::string narrow(std::wstring_view text) {
    return utf16_to_utf8(
        std::u16string_view(reinterpret_cast<const char16_t*>(text.data()), text.size()));
}

// The system's text for a Win32 error code, with the code ("Access is denied. (5)").
inline std::string error_message(DWORD code) {
    wchar_t* buf = nullptr;
    const DWORD n = ::FormatMessageW(
        FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
        nullptr, code, 0, reinterpret_cast<wchar_t*>(&buf), 0, nullptr);
    std::string text = n ? narrow(std::wstring_view(buf, n)) : std::string("error");
    ::LocalFree(buf);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
        text.pop_back();
    }
    return text + " (" + std::to_string(code) + ")";
}

inline std::string last_error_message() {
    return error_message(::GetLastError());
}

}  // namespace patchswarm::io::win
