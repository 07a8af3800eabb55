// The Windows side of the Env seam (io/env.hpp), built only for Windows (io/win_env.cpp,
// io/win_fs.cpp and io/win_process.cpp stand in for posix_env.cpp, fs.cpp and process.cpp).
#pragma once

#include <filesystem>
#include <memory>

#include "base/error.hpp"
#include "io/env.hpp"

namespace patchswarm::io {

// The Windows Env: system clocks, the machine's boot identity, io/fs.hpp and io/process.hpp
// (CreateProcessW in a job object; see win_process.cpp). boot_id() reads `boot_id_file` when
// one is given (tests and demos change it to simulate a reboot, as on Linux); otherwise it is
// the kernel's boot counter (HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\Memory
// Management\PrefetchParameters\BootId) when present, else derived from the last boot time
// (NtQuerySystemInformation(SystemTimeOfDayInformation), to the second).
std::unique_ptr<Env> make_windows_env(std::filesystem::path boot_id_file = {});

// %ProgramData%\patchswarm (the known folder, normally C:\ProgramData\patchswarm).
[[nodiscard]] Result<std::filesystem::path> windows_state_dir();

// Creates `dir` (and its parents) if needed and gives it a protected DACL that grants full
// control to SYSTEM and Administrators only, inherited by everything created below it.
// Errc::io when the folder cannot be created or its ACL cannot be set.
[[nodiscard]] Result<void> make_private_dir(const std::filesystem::path& dir);

}  // namespace patchswarm::io
