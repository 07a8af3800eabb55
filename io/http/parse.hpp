// The pure half of the HTTP adapter: the message types the server and its handlers exchange, and
// every function of bytes (request targets and queries, percent-coding, Range, Basic
// credentials, URLs, whole requests). Nothing here opens a socket or a file, and this header
// includes no Beast or Asio; parse.cpp uses Beast's parser, the same one the server reads with.
// All functions are thread-safe (no shared state).
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "base/error.hpp"

namespace patchswarm::io::http {

struct Request {
    std::string method;                          // "GET", "POST", ...
    std::string target;                          // raw request target, e.g. "/v1/feed?after=3"
    std::string path;                            // percent-decoded path part, e.g. "/v1/feed"
    std::map<std::string, std::string> query;    // percent-decoded; last value wins
    std::string raw_query;                       // undecoded query string (tracker needs raw bytes)
    std::map<std::string, std::string> headers;  // field names lowercased
    std::string body;
    std::string remote_address;  // peer IP as text
    std::string client;  // rate-limit key of the peer: core::rate_limit_client(remote_address)
};

struct FileRange {
    std::filesystem::path path;
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
};

struct Response {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::map<std::string, std::string> headers;
    std::optional<FileRange> file;  // when set, the body is streamed from this file range
};

Response text_response(int status, std::string body);  // text/plain; charset=utf-8
Response json_response(int status, std::string body);
// PROTOCOL.md's error shape: {"error":"<code>","message":"<message>"}, both JSON-escaped.
Response error_response(int status, std::string_view code, std::string_view message);

// The user name and password of an `Authorization: Basic` header (RFC 7617), nullopt when the
// request has none or it does not decode to "user:password".
std::optional<std::pair<std::string, std::string>> basic_credentials(const Request& req);

// Percent-decoding / encoding of URL parts. url_decode keeps '+' and malformed escapes as they
// are; the server decodes query components with '+' as space (form encoding). url_encode escapes
// everything except RFC 3986 unreserved characters.
std::string url_decode(std::string_view s);
std::string url_encode(std::string_view s);

// Splits an origin-form target ("/path?query") into req.path, req.query and req.raw_query.
// False for anything else (absolute-form, "*", a path that decodes to a NUL byte); `req` may
// then be partly filled.
[[nodiscard]] bool parse_target(std::string_view target, Request& req);

// Decimal digits only, nothing else; a value too large for 64 bits saturates to the maximum,
// which callers treat as "beyond the end".
std::optional<std::uint64_t> parse_decimal(std::string_view s);

// A `Range` header against a file of `size` bytes (RFC 7233, a single byte range). Syntax we do
// not understand, and several ranges, yield `whole`: the RFC lets a server ignore Range, and a
// 200 with the full file is always a correct answer.
struct ByteRange {
    enum class Kind { whole, partial, unsatisfiable } kind = Kind::whole;
    std::uint64_t first = 0;
    std::uint64_t last = 0;  // inclusive
};
ByteRange parse_range(std::string_view header, std::uint64_t size);

// ASCII-only helpers shared by the server and the client (header names are ASCII).
std::string lowercase(std::string_view s);
bool iequals(std::string_view a, std::string_view b);
// False if `s` holds CR, LF or NUL: header text from a handler goes onto the wire verbatim, and
// those would let it forge headers or a second response.
bool safe_header_text(std::string_view s);
// RFC 7230 token characters (a method, a header name), non-empty.
bool is_token(std::string_view s);

// An http:// URL taken apart for the client. Errc::invalid_argument for another scheme, user
// information, spaces or control characters, a bad or zero port, or no host.
struct ParsedUrl {
    std::string host;         // without brackets
    std::string port;         // decimal text, "80" when absent
    std::string target;       // "/path?query", never empty
    std::string host_header;  // authority as written
};
[[nodiscard]] Result<ParsedUrl> parse_url(const std::string& url);

// ---- whole requests --------------------------------------------------------------------------

// The request-size limits the server applies while it reads (ServerLimits carries the same two).
struct MessageLimits {
    std::size_t max_header_bytes = 16 * 1024;
    std::size_t max_body_bytes = 1 << 20;
};

// One field of a parsed header, in arrival order, name as sent.
struct HeaderField {
    std::string_view name;
    std::string_view value;
};

// Field names lowercased, repeated fields joined with ", " (RFC 7230 section 3.2.2).
std::map<std::string, std::string> header_map(std::span<const HeaderField> fields);

// Builds the Request a handler sees from a parsed message: the target parsed, the headers as
// header_map; remote_address and client stay empty. The error is the answer the server sends
// instead: 400 for a target that is not origin-form or decodes to a NUL.
[[nodiscard]] std::expected<Request, Response> make_request(std::string_view method,
                                                            std::string_view target,
                                                            std::span<const HeaderField> fields,
                                                            std::string body);

// What the server makes of the bytes a client sent on a fresh connection.
struct RequestParse {
    enum class Kind {
        request,     // `request` holds the first complete request
        refused,     // `refusal` is the answer (400, 413, 431); the server then closes
        incomplete,  // the bytes end inside the first request; the server would read on
    } kind = Kind::incomplete;
    std::optional<Request> request;
    std::optional<Response> refusal;
    std::size_t consumed = 0;       // bytes of the input the request took (kind == request)
    bool keep_alive = false;        // the connection stays open after the answer (kind == request)
    bool expects_continue = false;  // "Expect: 100-continue" (kind == request)
};

// Parses the first request in `bytes` exactly as the server does (same parser, limits and
// mapping of parse errors to answers), without a socket. Bytes after that request (a pipelined
// next one) are left alone.
RequestParse parse_request(std::string_view bytes, const MessageLimits& limits = {});

}  // namespace patchswarm::io::http
