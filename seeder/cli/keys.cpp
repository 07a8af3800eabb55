// patchswarm-seeder keygen and sign: key files, and offline signatures of staged manifests.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <optional>
#include <string>

#include "core/rollout.hpp"
#include "core/sites.hpp"
#include "crypto/crypto.hpp"
#include "io/cli_config.hpp"
#include "io/env.hpp"
#include "io/key_files.hpp"
#include "io/term.hpp"
#include "seeder/cli/commands.hpp"
#include "seeder/enrolment.hpp"
#include "seeder/halt.hpp"
#include "seeder/publish.hpp"
#include "seeder/repo.hpp"
#include "seeder/root_admin.hpp"
#include "seeder/status_model.hpp"
#include "seeder/status_render.hpp"

namespace patchswarm::seeder::cli {

namespace {

// ---- keygen ----------------------------------------------------------------------------------

struct KeygenArgs {
    std::string out;
};

void add_keygen(CLI::App& app, KeygenArgs& a) {
    auto* cmd = app.add_subcommand("keygen",
                                   "Create an Ed25519 key pair: OUT.key (mode 0600) and "
                                   "OUT.pub. Refuses to overwrite either file.");
    cmd->add_option("--out", a.out, "file name base, e.g. keys/release")->required();
}

int run_keygen(const KeygenArgs& a) {
    if (auto ok = seeder::keygen(a.out); !ok) return fail_with(ok.error());
    auto pub = patchswarm::io::load_public_key(a.out + ".pub");
    std::cout << a.out << ".key " << a.out << ".pub";
    if (pub) std::cout << " keyid " << patchswarm::crypto::key_id(*pub);
    std::cout << "\n";
    return kExitOk;
}

// ---- sign ------------------------------------------------------------------------------------

struct SignArgs {
    std::string key, file;
};

void add_sign(CLI::App& app, SignArgs& a) {
    auto* cmd = app.add_subcommand(
        "sign",
        "Offline signing: add your signature to a staged manifest (staged/ID/manifest.json) or "
        "root (root/staged.json) copied to this machine; hand the file back for `publish "
        "--commit --merge FILE` or `root sign --merge FILE`. Prints what was signed.");
    cmd->add_option("--key", a.key, "your secret key file")->required();
    cmd->add_option("file", a.file, "the envelope file, signed in place")->required();
}

int run_sign(const SignArgs& a) {
    auto what = seeder::sign_envelope_file(a.file, a.key);
    if (!what) return fail_with(what.error());
    std::cout << *what << "\n";
    return kExitOk;
}

}  // namespace

CommandGroup keys_commands() {
    auto keygen = std::make_shared<KeygenArgs>();
    auto sign = std::make_shared<SignArgs>();
    return {{"keygen", "sign"},
            [=](CLI::App& app) {
                add_keygen(app, *keygen);
                add_sign(app, *sign);
            },
            [=](CLI::App& app, io::Env&) {
                return app.got_subcommand("keygen") ? run_keygen(*keygen) : run_sign(*sign);
            }};
}

}  // namespace patchswarm::seeder::cli
