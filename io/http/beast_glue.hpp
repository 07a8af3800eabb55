// Internal to io/http/: the few Beast-typed helpers that parse.cpp, server.cpp and client.cpp
// share. Only those .cpp files include it (it pulls in Beast); callers use parse.hpp,
// server.hpp and client.hpp.
#pragma once

#include <algorithm>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/version.hpp"
#include "io/http/parse.hpp"

namespace patchswarm::io::http::glue {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

inline constexpr std::string_view kAgent = kUserAgent;

inline std::string_view to_sv(beast::string_view s) {
    return {s.data(), s.size()};
}
inline beast::string_view to_bsv(std::string_view s) {
    return {s.data(), s.size()};
}

// The fields of a parsed message, viewing into it (valid while the message lives).
template <class Fields>
std::vector<HeaderField> header_fields(const Fields& message) {
    std::vector<HeaderField> out;
    for (const auto& field : message) {
        out.push_back({to_sv(field.name_string()), to_sv(field.value())});
    }
    return out;
}

// A request parser with the server's limits.
inline void apply_limits(bhttp::request_parser<bhttp::string_body>& parser,
                         const MessageLimits& limits) {
    parser.header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(limits.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
    parser.body_limit(static_cast<std::uint64_t>(limits.max_body_bytes));
}

// The answer to a request that failed to parse: 413 over the body limit, 431 over the header
// limit, 400 for a malformed message. nullopt when the peer hung up, mid-message or not (it gets
// nothing), or for a transport error.
inline std::optional<Response> refusal_for(const beast::error_code& ec,
                                           const MessageLimits& limits) {
    if (ec == bhttp::error::body_limit) {
        return error_response(
            413, "payload_too_large",
            "request body exceeds " + std::to_string(limits.max_body_bytes) + " bytes");
    }
    if (ec == bhttp::error::header_limit) {
        return error_response(
            431, "header_too_large",
            "request header exceeds " + std::to_string(limits.max_header_bytes) + " bytes");
    }
    if (ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category() &&
        ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
        return error_response(400, "bad_request", ec.message());
    }
    return std::nullopt;
}

}  // namespace patchswarm::io::http::glue
