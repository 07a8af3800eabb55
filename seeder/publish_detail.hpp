// Helpers shared by the parts of `publish` (publish.cpp, publish_inputs.cpp, payload_intake.cpp,
// manifest_signing.cpp, release_commit.cpp). Internal to the publish path: nothing else includes
// it.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <system_error>

#include "base/error.hpp"

namespace patchswarm::seeder::publishing {

inline constexpr std::int64_t kDay = 86'400;

template <typename T>
std::unexpected<Error> forward(const Result<T>& r) {
    return std::unexpected(r.error());
}

inline std::unexpected<Error> io_error(const std::string& what, const std::filesystem::path& path,
                                       const std::error_code& ec) {
    return fail(Errc::io, what + " " + path.string() + ": " + ec.message());
}

// Eight hex digits that keep folders in repo/.staging apart ("<ID>-<8 hex>", "<ID>-<8 hex>.old").
inline std::string random_suffix() {
    std::random_device rd;
    std::uniform_int_distribution<std::uint32_t> dist;
    char buf[9];
    std::snprintf(buf, sizeof buf, "%08x", dist(rd));
    return buf;
}

}  // namespace patchswarm::seeder::publishing
