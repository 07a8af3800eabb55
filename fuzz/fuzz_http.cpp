// libFuzzer target for the HTTP request parsing (io::http::parse_request: Beast's request parser
// with the server's limits, then the target, query and header handling every handler relies on).
// Input: the bytes a client sends on a fresh connection. The limits are small (1 KiB header,
// 4 KiB body) so that the 413 and 431 paths are in reach. Beyond "no crash":
// - an accepted request has a token method, an origin-form target ("/..."), a decoded path
//   with no NUL, lowercase header names, a body within the limit, and it took 1..size bytes;
// - parsing only the bytes it took gives the same request (what follows cannot change it);
// - a refusal is 400, 413 or 431 with a JSON {"error","message"} body;
// - the request's Range header, against a few file sizes, never yields a range outside the file;
// - url_encode then url_decode gives the path back.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "fuzz/fuzz_support.hpp"
#include "io/http/parse.hpp"

namespace patchswarm::fuzz {

namespace http_detail {

namespace http = io::http;

constexpr http::MessageLimits kLimits{1024, 4096};

bool same_request(const http::Request& a, const http::Request& b) {
    return a.method == b.method && a.target == b.target && a.path == b.path && a.query == b.query &&
           a.raw_query == b.raw_query && a.headers == b.headers && a.body == b.body;
}

void check_request(const http::Request& req) {
    FUZZ_CHECK(http::is_token(req.method));
    FUZZ_CHECK(!req.target.empty() && req.target.front() == '/');
    FUZZ_CHECK(req.path.find('\0') == std::string::npos);
    FUZZ_CHECK(req.body.size() <= kLimits.max_body_bytes);
    for (const auto& [name, value] : req.headers) {
        FUZZ_CHECK(name == http::lowercase(name));
        FUZZ_CHECK(http::safe_header_text(value));
    }
    FUZZ_CHECK(http::url_decode(http::url_encode(req.path)) == req.path);
    if (const auto range = req.headers.find("range"); range != req.headers.end()) {
        for (const std::uint64_t size :
             {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{100}, ~std::uint64_t{0}}) {
            const auto r = http::parse_range(range->second, size);
            if (r.kind == http::ByteRange::Kind::partial) {
                FUZZ_CHECK(r.first <= r.last && r.last < size);
            }
        }
    }
    (void)http::basic_credentials(req);
}

void check_refusal(const http::Response& res) {
    FUZZ_CHECK(res.status == 400 || res.status == 413 || res.status == 431);
    const auto json = nlohmann::json::parse(res.body, nullptr, false);
    FUZZ_CHECK(json.is_object() && json.size() == 2 && json["error"].is_string() &&
               json["message"].is_string());
}

}  // namespace http_detail

// True when the input holds a complete, accepted request.
inline bool http_one(const std::uint8_t* data, std::size_t size) {
    using namespace http_detail;
    const std::string_view bytes = as_text(data, size);
    const auto got = http::parse_request(bytes, kLimits);
    switch (got.kind) {
        case http::RequestParse::Kind::incomplete:
            FUZZ_CHECK(!got.request && !got.refusal);
            return false;
        case http::RequestParse::Kind::refused:
            FUZZ_CHECK(!got.request && got.refusal);
            check_refusal(*got.refusal);
            return false;
        case http::RequestParse::Kind::request:
            break;
    }
    FUZZ_CHECK(got.request && !got.refusal);
    FUZZ_CHECK(got.consumed > 0 && got.consumed <= size);
    check_request(*got.request);
    const auto alone = http::parse_request(bytes.substr(0, got.consumed), kLimits);
    FUZZ_CHECK(alone.kind == http::RequestParse::Kind::request);
    FUZZ_CHECK(alone.consumed == got.consumed && same_request(*alone.request, *got.request));
    FUZZ_CHECK(alone.keep_alive == got.keep_alive);
    return true;
}

}  // namespace patchswarm::fuzz

PATCHSWARM_FUZZ_ENTRY(http_one)
