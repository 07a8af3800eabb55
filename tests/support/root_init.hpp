// Test support: a repository with root version 1 (one root key, one release key, 1 of 1 each),
// made with the real `patchswarm-seeder` binary, for tests about something else than roots.
// Without a fleet CA (`--no-fleet-ca`): these tests post reports and fetch releases as a device
// that never enrolled.
#pragma once

#include <stdexcept>
#include <string>

#include "support/process.hpp"

namespace patchswarm::test {

struct RepoKeys {
    fs::path release_key;  // secret key file for `publish --key`
    fs::path root_json;    // root/1.json, what an endpoint pins with `--trust`
};

inline RepoKeys init_repo_root(const fs::path& keys_dir, const fs::path& repo) {
    for (const char* name : {"root", "release"}) {
        const auto r = run({PATCHSWARM_SEEDER_BIN, "keygen", "--out", (keys_dir / name).string()});
        if (r.exit_code != 0) throw std::runtime_error("keygen failed: " + r.output);
    }
    const auto r =
        run({PATCHSWARM_SEEDER_BIN, "root", "init", "--repo", repo.string(), "--root-pub",
             (keys_dir / "root.pub").string(), "--release-pub", (keys_dir / "release.pub").string(),
             "--key", (keys_dir / "root.key").string(), "--no-fleet-ca"});
    if (r.exit_code != 0) throw std::runtime_error("root init failed: " + r.output);
    return {keys_dir / "release.key", repo / "root/1.json"};
}

}  // namespace patchswarm::test
