// Helpers shared by the two halves of the manifest's parser (manifest.cpp: the release;
// manifest_rollout.cpp: its rollout section). Internal to core/: no other folder includes it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/error.hpp"
#include "core/json_strict.hpp"
#include "core/manifest.hpp"

namespace patchswarm::core::manifest_detail {

// Prefixes an error with the field it concerns.
inline std::unexpected<Error> at(std::string_view field, const Error& e) {
    return fail(e.code, std::string(field) + ": " + e.message);
}

inline bool is_id_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

// The "rollout" value of a manifest (or a rollout file): fields read strictly, then validated
// by validate_rollout. `where` names the value in errors.
Rollout read_rollout_value(const json_strict::Json& v, std::string where,
                           std::optional<Error>& err);
json_strict::Json rollout_json(const Rollout& rollout);

}  // namespace patchswarm::core::manifest_detail
