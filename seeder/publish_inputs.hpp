// The first step of `publish`: every option of a PublishRequest checked and parsed before the
// repository is locked or anything on disk is touched. Internal to the publish path.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "core/manifest.hpp"
#include "crypto/crypto.hpp"
#include "seeder/publish.hpp"

namespace patchswarm::seeder::publishing {

// A PublishRequest's options in the form the later steps use.
struct PublishInputs {
    std::vector<std::string> install_argv;
    std::optional<std::vector<std::string>> verify_argv;
    core::Severity severity = core::Severity::normal;
    core::RebootPolicy reboot = core::RebootPolicy::if_needed;
    std::vector<crypto::KeyPair> release_keys;
    std::filesystem::path payload;  // absolute, normalised, no trailing separator
    std::string name;               // torrent name: the payload's file name
    bool single_file = false;
    std::optional<core::Rollout> rollout;
    core::AppliedDeadline deadline;  // what publish prints about the deadline it signed
};

// Checks ids, command lines, enums, bounds, the repository name, the rollout (file and
// deadline, against `now`) and the payload (exists, a regular file or folder, no symlink, not
// containing the repository), and loads the release keys. Reads the key and rollout files
// only. Errors as publish() documents, with the option named in the message.
[[nodiscard]] Result<PublishInputs> check_publish_inputs(const PublishRequest& request,
                                                         std::int64_t now);

}  // namespace patchswarm::seeder::publishing
