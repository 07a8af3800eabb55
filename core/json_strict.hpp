// Strict JSON decoding shared by the parsers of signed documents (manifest, feed, root,
// envelope, key files). Internal helper: include it only from .cpp files that link
// nlohmann_json; public headers never expose nlohmann types.
//
// Everything here is pure and thread-safe. Failures are Errc::malformed unless noted.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "base/text.hpp"

namespace patchswarm::core::json_strict {

// ordered_json keeps keys in insertion order, so serialisers that insert in a fixed order
// produce stable, canonical bytes.
using Json = nlohmann::ordered_json;

// Our documents nest at most four levels; anything far deeper is an attack on the parser.
inline constexpr int kMaxDepth = 16;

// Deepest nesting of arrays/objects in `text`, computed without parsing, so a hostile document of
// a million '[' is refused before the parser builds a million nodes.
inline int nesting_depth(std::string_view text) {
    int depth = 0;
    int deepest = 0;
    bool in_string = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (c == '\\') {
                ++i;  // the escaped character can be a quote
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            deepest = std::max(deepest, ++depth);
        } else if (c == ']' || c == '}') {
            --depth;  // unbalanced input is left for the parser to reject
        }
    }
    return deepest;
}

// Parses exactly one JSON value. Rejects NUL bytes, syntax errors, trailing bytes, invalid UTF-8,
// nesting deeper than kMaxDepth, and any object that repeats a key: two parsers that resolve a
// duplicate differently (first wins / last wins) would read different documents behind one
// signature. `what` names the document in error messages.
[[nodiscard]] inline Result<Json> parse(std::string_view text, std::string_view what) {
    // nlohmann's lexer takes a NUL byte for the end of input and ignores whatever follows it, so
    // `{...}\0<anything>` would parse as `{...}`: many byte strings for one signed document (found
    // by fuzz_envelope). JSON has no place for a raw NUL, so it is refused outright.
    if (text.find('\0') != std::string_view::npos) {
        return fail(Errc::malformed, std::string(what) + ": NUL byte in the document");
    }
    if (nesting_depth(text) > kMaxDepth) {
        return fail(Errc::malformed, std::string(what) + ": nested too deeply");
    }
    std::vector<std::set<std::string>> open_objects;
    std::optional<std::string> duplicate;
    // The callback always keeps values (returns true) so that every object_start is matched by
    // an object_end and the key-set stack stays balanced.
    auto on_event = [&](int, Json::parse_event_t event, Json& parsed) {
        using E = Json::parse_event_t;
        if (event == E::object_start) {
            open_objects.emplace_back();
        } else if (event == E::object_end) {
            open_objects.pop_back();
        } else if (event == E::key && !open_objects.empty()) {
            const auto& key = parsed.get_ref<const std::string&>();
            if (!open_objects.back().insert(key).second && !duplicate) duplicate = key;
        }
        return true;
    };
    Json doc;
    try {
        doc = Json::parse(text.begin(), text.end(), on_event, /*allow_exceptions=*/true,
                          /*ignore_comments=*/false);
    } catch (const nlohmann::json::exception& e) {
        // what() starts "[json.exception.parse_error.101] ": keep only the sentence after it,
        // which says where and what ("parse error at line 1, column 2: ...").
        std::string_view message = e.what();
        if (const auto at = message.find("] ");
            message.starts_with("[json.exception.") && at != std::string_view::npos) {
            message.remove_prefix(at + 2);
        }
        return fail(Errc::malformed,
                    std::string(what) + ": not valid JSON: " + std::string(message));
    }
    if (duplicate) {
        return fail(Errc::malformed, std::string(what) + ": duplicate key \"" + *duplicate + "\"");
    }
    return doc;
}

// Reads the fields of one JSON object with a sticky first error: after a failure every read
// returns a default value and the first error is kept. Decoders can then read top to bottom
// without an early return after each field, and the message names the first bad field
// ("manifest.files[2].size: expected an unsigned integer").
//
// `error` is shared between a reader and the readers of nested objects.
class ObjectReader {
  public:
    ObjectReader(const Json& value, std::string where, std::optional<Error>& error)
        : value_(value), where_(std::move(where)), error_(error) {
        if (!value_.is_object()) fail_at(where_, Errc::malformed, "expected an object");
    }

    bool ok() const { return !error_.has_value(); }
    const std::string& where() const { return where_; }
    std::string field(std::string_view key) const { return where_ + "." + std::string(key); }

    bool has(std::string_view key) const {
        return value_.is_object() && value_.contains(std::string(key));
    }

    // Rejects keys outside `known`: format 1 documents have a closed set of fields, and an
    // ignored field is one that some other reader might not ignore.
    void allow_only(std::initializer_list<std::string_view> known) {
        if (!ok() || !value_.is_object()) return;
        for (const auto& item : value_.items()) {
            bool found = false;
            for (auto k : known) found = found || item.key() == k;
            if (!found) {
                fail_at(field(item.key()), Errc::malformed, "unknown field");
                return;
            }
        }
    }

    std::string string(std::string_view key) {
        const Json* v = find(key);
        return v ? as_string(*v, field(key)) : std::string();
    }
    std::uint64_t u64(std::string_view key) {
        const Json* v = find(key);
        return v ? as_u64(*v, field(key)) : 0;
    }
    std::int64_t i64(std::string_view key) {
        const Json* v = find(key);
        return v ? as_i64(*v, field(key)) : 0;
    }
    // The array at `key`, or nullptr after an error; Errc::too_large beyond max_items.
    const Json* array(std::string_view key, std::size_t max_items) {
        const Json* v = find(key);
        if (!v) return nullptr;
        if (!v->is_array()) return fail_at(field(key), Errc::malformed, "expected an array");
        if (v->size() > max_items) {
            return fail_at(field(key), Errc::too_large,
                           "more than " + std::to_string(max_items) + " items");
        }
        return v;
    }
    // The raw value at `key` (for nested objects), or nullptr after an error.
    const Json* value(std::string_view key) { return find(key); }

    std::string as_string(const Json& v, const std::string& where) {
        if (!ok()) return {};
        if (!v.is_string()) {
            fail_at(where, Errc::malformed, "expected a string");
            return {};
        }
        return v.get<std::string>();
    }
    std::uint64_t as_u64(const Json& v, const std::string& where) {
        if (!ok()) return 0;
        if (!v.is_number_unsigned()) {
            fail_at(where, Errc::malformed, "expected an unsigned integer");
            return 0;
        }
        return v.get<std::uint64_t>();
    }
    std::int64_t as_i64(const Json& v, const std::string& where) {
        if (!ok()) return 0;
        const bool fits = v.is_number_integer() &&
                          (!v.is_number_unsigned() ||
                           v.get<std::uint64_t>() <= static_cast<std::uint64_t>(
                                                         std::numeric_limits<std::int64_t>::max()));
        if (!fits) {
            fail_at(where, Errc::malformed, "expected a 64-bit integer");
            return 0;
        }
        return v.get<std::int64_t>();
    }

    // Records an error (if none yet) and returns nullptr for convenience.
    const Json* fail_at(const std::string& where, Errc code, std::string_view why) {
        if (ok()) error_ = Error{code, where + ": " + std::string(why)};
        return nullptr;
    }

  private:
    const Json* find(std::string_view key) {
        if (!ok()) return nullptr;
        auto it = value_.find(std::string(key));
        if (it == value_.end()) return fail_at(field(key), Errc::malformed, "missing");
        return &*it;
    }

    const Json& value_;
    std::string where_;
    std::optional<Error>& error_;
};

// Compact, stable bytes. Invalid UTF-8 in a string is replaced rather than thrown: models are
// validated before they are signed, and no exception may escape a serialiser.
inline std::string dump(const Json& j) {
    return j.dump(-1, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace);
}

// base/text.hpp's, under the name the parsers here have always used.
using patchswarm::is_lower_hex;

}  // namespace patchswarm::core::json_strict
