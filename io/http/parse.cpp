// The pure half of the HTTP adapter; the contract is in parse.hpp. parse_request runs Beast's
// request parser over a buffer, with the limits and error mapping the server's reads use
// (beast_glue.hpp), so that what it accepts is what the server accepts.
#include "io/http/parse.hpp"

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <cctype>
#include <charconv>
#include <limits>
#include <vector>

#include "base/text.hpp"
#include "crypto/crypto.hpp"
#include "io/http/beast_glue.hpp"

namespace patchswarm::io::http {
namespace {

char ascii_lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Malformed escapes ("%zz", a trailing "%") are kept literally: refusing them would buy nothing,
// since the caller validates the decoded text anyway.
std::string percent_decode(std::string_view s, bool plus_as_space) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '%' && i + 2 < s.size()) {
            const int hi = hex_value(s[i + 1]);
            const int lo = hex_value(s[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out.push_back(static_cast<char>(hi * 16 + lo));
                i += 2;
                continue;
            }
        }
        out.push_back(plus_as_space && c == '+' ? ' ' : c);
    }
    return out;
}

std::string json_escape(std::string_view s) {
    std::string out;
    for (const char c : s) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    constexpr char kHex[] = "0123456789abcdef";
                    out += "\\u00";
                    out.push_back(kHex[(c >> 4) & 0xf]);
                    out.push_back(kHex[c & 0xf]);
                } else {
                    out.push_back(c);
                }
        }
    }
    return out;
}

}  // namespace

// ---- responses -------------------------------------------------------------------------------

Response text_response(int status, std::string body) {
    Response res;
    res.status = status;
    res.content_type = "text/plain; charset=utf-8";
    res.body = std::move(body);
    return res;
}

Response json_response(int status, std::string body) {
    Response res;
    res.status = status;
    res.content_type = "application/json";
    res.body = std::move(body);
    return res;
}

Response error_response(int status, std::string_view code, std::string_view message) {
    return json_response(status, "{\"error\":\"" + json_escape(code) + "\",\"message\":\"" +
                                     json_escape(message) + "\"}");
}

std::optional<std::pair<std::string, std::string>> basic_credentials(const Request& req) {
    const auto it = req.headers.find("authorization");
    if (it == req.headers.end()) return std::nullopt;
    const std::string_view value = trim(it->second, " \t");
    const auto space = value.find(' ');
    if (space == std::string_view::npos) return std::nullopt;
    std::string scheme(value.substr(0, space));
    std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (scheme != "basic") return std::nullopt;
    const auto decoded = crypto::from_base64(trim(value.substr(space + 1), " \t"));
    if (!decoded) return std::nullopt;
    const std::string pair(decoded->begin(), decoded->end());
    const auto colon = pair.find(':');
    if (colon == std::string::npos) return std::nullopt;
    return std::pair{pair.substr(0, colon), pair.substr(colon + 1)};
}

// ---- URL parts -------------------------------------------------------------------------------

std::string url_decode(std::string_view s) {
    return percent_decode(s, false);
}

std::string url_encode(std::string_view s) {
    constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (const char c : s) {
        const auto byte = static_cast<unsigned char>(c);
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            out.push_back(c);
        } else {
            out.push_back('%');
            out.push_back(kHex[byte >> 4]);
            out.push_back(kHex[byte & 0xf]);
        }
    }
    return out;
}

bool parse_target(std::string_view target, Request& req) {
    if (target.empty() || target.front() != '/') return false;
    const auto question = target.find('?');
    const std::string_view raw_path = target.substr(0, question);
    const std::string_view raw_query =
        question == std::string_view::npos ? std::string_view{} : target.substr(question + 1);
    req.path = percent_decode(raw_path, false);
    if (req.path.find('\0') != std::string::npos) return false;
    req.raw_query = std::string(raw_query);
    std::string_view rest = raw_query;
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const std::string_view part = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
        if (part.empty()) continue;
        const auto eq = part.find('=');
        // Query components follow form encoding, where '+' is a space.
        std::string key = percent_decode(part.substr(0, eq), true);
        std::string value = eq == std::string_view::npos
                                ? std::string{}
                                : percent_decode(part.substr(eq + 1), true);
        req.query.insert_or_assign(std::move(key), std::move(value));
    }
    return true;
}

std::optional<std::uint64_t> parse_decimal(std::string_view s) {
    if (s.empty() ||
        !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return std::nullopt;
    }
    std::uint64_t value = 0;
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec == std::errc::result_out_of_range) return std::numeric_limits<std::uint64_t>::max();
    if (ec != std::errc{} || ptr != s.data() + s.size()) return std::nullopt;
    return value;
}

ByteRange parse_range(std::string_view header, std::uint64_t size) {
    ByteRange whole;
    std::string_view spec = trim(header);
    constexpr std::string_view kUnit = "bytes=";
    if (spec.size() < kUnit.size() || !iequals(spec.substr(0, kUnit.size()), kUnit)) return whole;
    spec = trim(spec.substr(kUnit.size()));
    if (spec.find(',') != std::string_view::npos) return whole;
    const auto dash = spec.find('-');
    if (dash == std::string_view::npos) return whole;
    const std::string_view first_text = trim(spec.substr(0, dash));
    const std::string_view last_text = trim(spec.substr(dash + 1));
    ByteRange range;
    if (first_text.empty()) {  // "bytes=-n": the last n bytes
        const auto suffix = parse_decimal(last_text);
        if (!suffix) return whole;
        if (*suffix == 0 || size == 0) return {ByteRange::Kind::unsatisfiable};
        range.kind = ByteRange::Kind::partial;
        range.first = size - std::min(*suffix, size);
        range.last = size - 1;
        return range;
    }
    const auto first = parse_decimal(first_text);
    if (!first) return whole;
    std::uint64_t last = std::numeric_limits<std::uint64_t>::max();
    if (!last_text.empty()) {
        const auto parsed = parse_decimal(last_text);
        if (!parsed || *parsed < *first) return whole;
        last = *parsed;
    }
    if (*first >= size) return {ByteRange::Kind::unsatisfiable};
    range.kind = ByteRange::Kind::partial;
    range.first = *first;
    range.last = std::min(last, size - 1);
    return range;
}

// ---- header text -----------------------------------------------------------------------------

std::string lowercase(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), ascii_lower);
    return out;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return ascii_lower(x) == ascii_lower(y);
           });
}

bool safe_header_text(std::string_view s) {
    return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

bool is_token(std::string_view s) {
    static constexpr std::string_view kSpecials = "!#$%&'*+-.^_`|~";
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               kSpecials.find(c) != std::string_view::npos;
    });
}

Result<ParsedUrl> parse_url(const std::string& url) {
    const auto bad = [&](std::string_view why) {
        return fail(Errc::invalid_argument, "unsupported URL '" + url + "': " + std::string(why));
    };
    constexpr std::string_view kScheme = "http://";
    if (url.size() < kScheme.size() ||
        !iequals(std::string_view(url).substr(0, kScheme.size()), kScheme)) {
        return bad("only http:// is supported");
    }
    if (std::any_of(url.begin(), url.end(),
                    [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; })) {
        return bad("contains spaces or control characters");
    }
    std::string_view rest = std::string_view(url).substr(kScheme.size());
    const auto authority_end = rest.find_first_of("/?#");
    const std::string_view authority = rest.substr(0, authority_end);
    std::string_view target =
        authority_end == std::string_view::npos ? std::string_view{} : rest.substr(authority_end);
    target = target.substr(0, target.find('#'));
    if (authority.find('@') != std::string_view::npos)
        return bad("user information is not supported");

    ParsedUrl parsed;
    std::string_view host;
    std::string_view port;
    if (!authority.empty() && authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string_view::npos) return bad("unterminated IPv6 address");
        host = authority.substr(1, close - 1);
        const std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') return bad("garbage after IPv6 address");
            port = after.substr(1);
            if (port.empty()) return bad("empty port");
        }
    } else {
        const auto colon = authority.find(':');
        host = authority.substr(0, colon);
        if (colon != std::string_view::npos) {
            port = authority.substr(colon + 1);
            if (port.empty()) return bad("empty port");
        }
    }
    if (host.empty()) return bad("no host");
    if (!port.empty()) {
        const auto number = parse_decimal(port);
        if (!number || *number == 0 || *number > 65535) return bad("bad port");
    }
    parsed.host = std::string(host);
    parsed.port = port.empty() ? "80" : std::string(port);
    parsed.host_header = std::string(authority);
    parsed.target =
        target.empty() || target.front() != '/' ? "/" + std::string(target) : std::string(target);
    return parsed;
}

// ---- whole requests --------------------------------------------------------------------------

std::map<std::string, std::string> header_map(std::span<const HeaderField> fields) {
    std::map<std::string, std::string> out;
    for (const auto& field : fields) {
        auto [it, inserted] = out.try_emplace(lowercase(field.name), field.value);
        if (!inserted) it->second.append(", ").append(field.value);
    }
    return out;
}

std::expected<Request, Response> make_request(std::string_view method, std::string_view target,
                                              std::span<const HeaderField> fields,
                                              std::string body) {
    Request req;
    req.method = std::string(method);
    req.target = std::string(target);
    if (!parse_target(req.target, req)) {
        return std::unexpected(error_response(400, "bad_request", "unsupported request target"));
    }
    req.headers = header_map(fields);
    req.body = std::move(body);
    return req;
}

RequestParse parse_request(std::string_view bytes, const MessageLimits& limits) {
    namespace bhttp = glue::bhttp;
    RequestParse out;
    bhttp::request_parser<bhttp::string_body> parser;
    glue::apply_limits(parser, limits);
    glue::beast::error_code ec;
    std::size_t used = 0;
    // The same steps as the server's reads: the header on its own (async_read_header does not
    // read eagerly, and only then does Beast 1.74 check Content-Length against body_limit), then
    // the body. Where the bytes run out, the server would see the end of the stream.
    const auto feed = [&](bool header_only) {
        while (!ec && !parser.is_done() && !(header_only && parser.is_header_done())) {
            const std::size_t n =
                parser.put(boost::asio::buffer(bytes.data() + used, bytes.size() - used), ec);
            used += n;
            if (ec == bhttp::error::need_more) ec = {};
            if (!ec && n == 0) {  // it needs bytes there are not: the stream ends here
                // As Beast's own read does: put_eof asserts that the parser has seen a byte.
                if (parser.got_some()) return parser.put_eof(ec);
                ec = bhttp::error::end_of_stream;
            }
        }
    };
    feed(true);
    feed(false);
    if (ec) {
        auto refusal = glue::refusal_for(ec, limits);
        if (!refusal) return out;  // incomplete: the server would wait, then close
        out.kind = RequestParse::Kind::refused;
        out.refusal = std::move(refusal);
        return out;
    }
    if (!parser.is_done()) return out;
    auto message = parser.release();
    out.consumed = used;
    out.keep_alive = message.keep_alive();
    out.expects_continue = iequals(glue::to_sv(message[bhttp::field::expect]), "100-continue");
    const auto fields = glue::header_fields(message);
    auto req = make_request(glue::to_sv(message.method_string()), glue::to_sv(message.target()),
                            fields, std::move(message.body()));
    if (!req) {
        out.kind = RequestParse::Kind::refused;
        out.refusal = std::move(req.error());
        return out;
    }
    out.kind = RequestParse::Kind::request;
    out.request = std::move(*req);
    return out;
}

}  // namespace patchswarm::io::http
