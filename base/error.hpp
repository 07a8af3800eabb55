// Error values shared by every module. Expected failures (bad input, I/O, network) are returned
// as Result<T>; exceptions are reserved for start-up problems caught in main().
#pragma once

#include <expected>
#include <string>
#include <string_view>

namespace patchswarm {

enum class Errc {
    invalid_argument,  // caller passed something unusable (usage, config)
    malformed,         // input could not be parsed or violates the format
    too_large,         // input exceeds a fixed bound
    bad_signature,     // signature missing, wrong key, threshold not met
    expired,           // document past its expiry
    rollback,          // sequence lower than one seen before
    unsafe_path,       // path escapes its folder, absolute, backslash, NUL, ...
    hash_mismatch,     // bytes do not match a signed hash
    not_found,         // file, release, row, HTTP 404
    already_exists,    // e.g. publishing an id twice without --replace
    io,                // filesystem / OS error
    network,           // connect, timeout, HTTP transport
    http_status,       // non-2xx HTTP answer
    database,          // SQLite error
    process,           // child process could not be started / timed out
    permission,        // e.g. a world-readable secret key
    internal,          // a bug; never caused by input
};

inline std::string_view to_string(Errc code) {
    switch (code) {
        case Errc::invalid_argument:
            return "invalid_argument";
        case Errc::malformed:
            return "malformed";
        case Errc::too_large:
            return "too_large";
        case Errc::bad_signature:
            return "bad_signature";
        case Errc::expired:
            return "expired";
        case Errc::rollback:
            return "rollback";
        case Errc::unsafe_path:
            return "unsafe_path";
        case Errc::hash_mismatch:
            return "hash_mismatch";
        case Errc::not_found:
            return "not_found";
        case Errc::already_exists:
            return "already_exists";
        case Errc::io:
            return "io";
        case Errc::network:
            return "network";
        case Errc::http_status:
            return "http_status";
        case Errc::database:
            return "database";
        case Errc::process:
            return "process";
        case Errc::permission:
            return "permission";
        case Errc::internal:
            return "internal";
    }
    return "unknown";
}

struct Error {
    Errc code;
    std::string message;
};

template <typename T>
using Result = std::expected<T, Error>;

// Shorthand for `return fail(Errc::malformed, "...")` inside functions returning Result<T>.
inline std::unexpected<Error> fail(Errc code, std::string message) {
    return std::unexpected(Error{code, std::move(message)});
}

}  // namespace patchswarm
