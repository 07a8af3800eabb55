// Named crash points for the fault-matrix tests (docs/RELIABILITY.md lists every name).
//
// With PATCHSWARM_CRASH_AT=NAME[,COUNT] in the environment, the COUNT-th (default: first) time
// the program passes crash_point("NAME") it kills itself with SIGKILL: no destructor, no flush,
// no atexit handler runs, exactly as `kill -9` or a power cut would stop it at that instant.
// Without the variable every call is one relaxed atomic load. Compiled in always, so the binary
// under test is the binary that ships.
//
// Thread-safe: any thread may pass a crash point.
#pragma once

#include <string_view>

namespace patchswarm::io {

void crash_point(std::string_view name);

}  // namespace patchswarm::io
