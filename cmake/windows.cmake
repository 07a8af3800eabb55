# The Windows (mingw-w64) build: included by CMakeLists.txt when cross-compiling with
# cmake/mingw-w64.cmake (scripts/build-windows.sh does both). It builds the layers that have been
# ported so far, against the static dependency prefix in $PATCHSWARM_WIN_PREFIX:
#   patchswarm_base, patchswarm_crypto, patchswarm_core   as on Linux (platform-neutral)
#   patchswarm_io_win   the Windows side of io/: win_command (argv -> CreateProcessW command
#                       lines, installers), win_env (Env seam), win_fs, win_process
#   tests: the core tests and test_win_command as .exe files that run under Wine
#          (ctest in build-win/ runs them through wine64 when it is installed)
# Not ported yet: the rest of io/ (inotify file watch, AF_UNIX control socket, cctz, SQLite,
# OpenSSL X.509, Beast, libtorrent), daemon/ (patchswarmd.exe). docs/WINDOWS.md has the status.
if(NOT DEFINED ENV{PATCHSWARM_WIN_PREFIX})
  message(FATAL_ERROR "PATCHSWARM_WIN_PREFIX is not set: run scripts/build-windows.sh")
endif()
set(PATCHSWARM_WIN_PREFIX $ENV{PATCHSWARM_WIN_PREFIX})

# Static libraries from the prefix, as imported targets named like the Linux ones.
add_library(PkgConfig::SODIUM STATIC IMPORTED)
set_target_properties(PkgConfig::SODIUM PROPERTIES
  IMPORTED_LOCATION ${PATCHSWARM_WIN_PREFIX}/lib/libsodium.a
  INTERFACE_INCLUDE_DIRECTORIES ${PATCHSWARM_WIN_PREFIX}/include
  INTERFACE_COMPILE_DEFINITIONS SODIUM_STATIC)
add_library(nlohmann_json::nlohmann_json INTERFACE IMPORTED)
set_target_properties(nlohmann_json::nlohmann_json PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES ${PATCHSWARM_WIN_PREFIX}/include)

add_compile_options(-Wall -Wextra -Wno-deprecated-declarations)
# Windows 10 and later; Unicode W functions only.
add_compile_definitions(_WIN32_WINNT=0x0A00 WINVER=0x0A00 UNICODE _UNICODE WIN32_LEAN_AND_MEAN
  NOMINMAX)

add_subdirectory(base)
add_subdirectory(crypto)
add_subdirectory(core)

add_library(patchswarm_io_win STATIC io/win_command.cpp io/win_env.cpp io/win_fs.cpp
  io/win_process.cpp)
patchswarm_layer_include(patchswarm_io_win PUBLIC io)
target_link_libraries(patchswarm_io_win PUBLIC patchswarm_core
  PRIVATE advapi32 shell32 ole32 uuid)

include(CTest)
if(BUILD_TESTING)
  # Catch2 2.x is one header; the host's copy is used as a header (it has no Windows parts to
  # build).
  set(catch_root ${PROJECT_BINARY_DIR}/win-headers)
  if(NOT EXISTS ${catch_root}/catch2)
    file(MAKE_DIRECTORY ${catch_root})
    file(CREATE_LINK /usr/include/catch2 ${catch_root}/catch2 SYMBOLIC)
  endif()
  add_library(patchswarm_win_catch INTERFACE)
  target_include_directories(patchswarm_win_catch SYSTEM INTERFACE ${catch_root})
  add_library(patchswarm_win_test_main OBJECT tests/test_main.cpp)
  target_link_libraries(patchswarm_win_test_main PUBLIC patchswarm_crypto patchswarm_win_catch)
  find_program(PATCHSWARM_WINE wine64 PATHS /usr/lib/wine NO_CMAKE_FIND_ROOT_PATH)
  file(GLOB core_tests ${PROJECT_SOURCE_DIR}/tests/core/test_*.cpp)
  # tests/windows/: tests of the Windows implementations themselves (only built here).
  file(GLOB windows_tests ${PROJECT_SOURCE_DIR}/tests/windows/test_*.cpp)
  set(win_tests ${core_tests} ${PROJECT_SOURCE_DIR}/tests/io/test_win_command.cpp
    ${windows_tests})
  foreach(src IN LISTS win_tests)
    get_filename_component(name ${src} NAME_WE)
    add_executable(${name} ${src} $<TARGET_OBJECTS:patchswarm_win_test_main>)
    target_link_libraries(${name} PRIVATE patchswarm_io_win patchswarm_win_catch shell32)
    target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
    target_compile_definitions(${name} PRIVATE
      PATCHSWARM_TEST_DATA="${PROJECT_SOURCE_DIR}/tests/data")
    if(PATCHSWARM_WINE)
      add_test(NAME win.${name} COMMAND ${PATCHSWARM_WINE} $<TARGET_FILE:${name}>)
      set_tests_properties(win.${name} PROPERTIES LABELS windows TIMEOUT 600)
    endif()
  endforeach()
endif()
