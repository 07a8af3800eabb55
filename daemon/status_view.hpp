// `patchswarmd status`: this endpoint's releases and states, read straight from state.db (the
// daemon need not run). The JSON document is documented in docs/STATUS_JSON.md.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "common/error.hpp"

namespace patchswarm::daemon {

[[nodiscard]] Result<nlohmann::json> endpoint_status(const std::filesystem::path& state_dir);
std::string render_endpoint_status(const nlohmann::json& status, bool tty);

}  // namespace patchswarm::daemon
