#include "io/fd_limit.hpp"

#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

namespace patchswarm::io {

namespace {

// setrlimit refuses RLIM_INFINITY for RLIMIT_NOFILE: the ceiling is fs.nr_open.
std::uint64_t nr_open() {
    std::ifstream in("/proc/sys/fs/nr_open");
    std::uint64_t n = 0;
    if (in >> n && n > 0) return n;
    return 1'048'576;  // the kernel's default
}

}  // namespace

Result<FdLimit> raise_fd_limit() {
    struct rlimit lim {};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
        return fail(Errc::io, std::string("getrlimit(RLIMIT_NOFILE): ") + std::strerror(errno));
    }
    const std::uint64_t ceiling = lim.rlim_max == RLIM_INFINITY ? nr_open() : lim.rlim_max;
    if (lim.rlim_cur == RLIM_INFINITY || lim.rlim_cur < ceiling) {
        struct rlimit raised = lim;
        raised.rlim_cur = static_cast<rlim_t>(ceiling);
        // A refusal leaves the old limit in force; the caller sizes from what it reads back.
        (void)::setrlimit(RLIMIT_NOFILE, &raised);
        if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
            return fail(Errc::io, std::string("getrlimit(RLIMIT_NOFILE): ") + std::strerror(errno));
        }
    }
    const auto as_count = [](rlim_t v) {
        return v == RLIM_INFINITY ? nr_open() : static_cast<std::uint64_t>(v);
    };
    return FdLimit{as_count(lim.rlim_cur), as_count(lim.rlim_max)};
}

std::size_t connections_for_fd_limit(std::uint64_t soft_limit) {
    const std::uint64_t n = soft_limit >= 2 * kFdReserve ? soft_limit - kFdReserve : soft_limit / 2;
    return static_cast<std::size_t>(n < 1 ? 1 : n);
}

}  // namespace patchswarm::io
