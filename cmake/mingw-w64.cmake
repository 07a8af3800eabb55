# CMake toolchain for the Windows (x86-64) cross-build with Debian's mingw-w64, used by
# scripts/build-windows.sh for libtorrent and for the project. The "-posix" compilers use the
# winpthreads threading model, which std::thread, std::mutex and std::condition_variable need.
# PATCHSWARM_WIN_PREFIX (environment, so try_compile sees it too) names the dependency prefix.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(PATCHSWARM_MINGW_TRIPLE x86_64-w64-mingw32)

set(CMAKE_C_COMPILER ${PATCHSWARM_MINGW_TRIPLE}-gcc-posix)
set(CMAKE_CXX_COMPILER ${PATCHSWARM_MINGW_TRIPLE}-g++-posix)
set(CMAKE_RC_COMPILER ${PATCHSWARM_MINGW_TRIPLE}-windres)
set(CMAKE_AR ${PATCHSWARM_MINGW_TRIPLE}-ar CACHE FILEPATH "")
set(CMAKE_RANLIB ${PATCHSWARM_MINGW_TRIPLE}-ranlib CACHE FILEPATH "")

# Look for libraries and headers only in the mingw sysroot and the dependency prefix, never in
# the host's /usr (a Linux libssl.so found there would link, then fail at the first call).
set(CMAKE_FIND_ROOT_PATH /usr/${PATCHSWARM_MINGW_TRIPLE})
if(DEFINED ENV{PATCHSWARM_WIN_PREFIX})
  list(APPEND CMAKE_FIND_ROOT_PATH $ENV{PATCHSWARM_WIN_PREFIX})
endif()
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# One self-contained .exe: no libstdc++/libgcc/libwinpthread DLLs to ship beside it.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
