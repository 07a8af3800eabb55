// Input checks of `publish` (seeder/publish_inputs.hpp) and the rollout policy file
// (select_rollout, declared in seeder/publish.hpp).
#include "seeder/publish_inputs.hpp"

#include <algorithm>
#include <array>
#include <utility>

#include "core/deadline_policy.hpp"
#include "core/json_strict.hpp"
#include "core/path_rules.hpp"
#include "core/rollout.hpp"
#include "io/fs.hpp"
#include "seeder/command_line.hpp"
#include "seeder/publish_detail.hpp"
#include "seeder/repo.hpp"
#include "seeder/root_admin.hpp"

namespace patchswarm::seeder {

namespace fs = std::filesystem;

namespace publishing {
namespace {

constexpr std::uint32_t kMaxExpiresDays = 3650;

Result<void> check_timeout(std::uint32_t seconds, const char* option) {
    if (seconds == 0 || seconds > core::kMaxTimeoutS) {
        return fail(Errc::invalid_argument, std::string(option) + " must be 1.." +
                                                std::to_string(core::kMaxTimeoutS) + " seconds");
    }
    return {};
}

Result<void> check_payload(const PublishRequest& req, PublishInputs& in) {
    std::string text = req.payload.string();
    while (text.size() > 1 && text.back() == '/') text.pop_back();
    std::error_code ec;
    in.payload = fs::absolute(fs::path(text), ec).lexically_normal();
    if (ec) return io_error("cannot resolve", req.payload, ec);
    in.name = in.payload.filename().string();
    if (in.name.empty() || in.name == "." || in.name == "..") {
        return fail(Errc::invalid_argument, "cannot derive a release name from --payload " + text);
    }
    if (auto ok = core::validate_relative_path(in.name); !ok) {
        return fail(Errc::unsafe_path, "payload name '" + in.name + "': " + ok.error().message);
    }
    const auto status = fs::symlink_status(in.payload, ec);
    if (ec || !fs::exists(status)) {
        return fail(Errc::not_found, "payload " + in.payload.string() + " does not exist");
    }
    if (fs::is_symlink(status)) {
        return fail(Errc::unsafe_path, "payload " + in.payload.string() + " is a symlink");
    }
    if (!fs::is_regular_file(status) && !fs::is_directory(status)) {
        return fail(Errc::unsafe_path,
                    "payload " + in.payload.string() + " is not a regular file or folder");
    }
    in.single_file = fs::is_regular_file(status);
    return {};
}

// Copying a folder that contains the repository would copy the copy, without end.
Result<void> check_payload_outside_repo(const fs::path& repo, const fs::path& payload) {
    std::error_code ec;
    const fs::path r = fs::weakly_canonical(fs::absolute(repo, ec), ec);
    const fs::path p = fs::weakly_canonical(payload, ec);
    if (ec) return io_error("cannot resolve", payload, ec);
    const auto [p_end, r_it] = std::mismatch(p.begin(), p.end(), r.begin(), r.end());
    if (p_end == p.end()) {
        return fail(Errc::invalid_argument, "the payload folder contains the repository");
    }
    return {};
}

Result<void> check_rollout(const PublishRequest& req, std::int64_t now, PublishInputs& in) {
    core::DeadlinePolicy deadlines = core::default_deadline_policy();
    std::optional<std::int64_t> file_deadline;
    if (req.rollout_file) {
        auto text = io::read_file(*req.rollout_file, kMaxRolloutFileBytes);
        if (!text) return fail(Errc::invalid_argument, "--rollout: " + text.error().message);
        auto rollout = select_rollout(*text, req.severity);
        if (!rollout) return fail(Errc::invalid_argument, "--rollout: " + rollout.error().message);
        auto policy = select_deadline_policy(*text);
        if (!policy) return fail(Errc::invalid_argument, "--rollout: " + policy.error().message);
        deadlines = *policy;
        file_deadline = rollout->deadline;
        in.rollout = std::move(*rollout);
    }
    std::optional<std::int64_t> given;
    if (req.deadline) {
        auto at = core::parse_time_spec(*req.deadline, now);
        if (!at) return fail(Errc::invalid_argument, "--deadline: " + at.error().message);
        given = *at;
    }
    const std::int64_t expires = now + static_cast<std::int64_t>(req.expires_days) * kDay;
    in.deadline =
        core::apply_deadline_policy(deadlines, in.severity, given, file_deadline, now, expires);
    if (in.deadline.at) {
        if (!in.rollout) in.rollout.emplace();
        in.rollout->deadline = in.deadline.at;
    } else if (in.rollout) {
        in.rollout->deadline.reset();
    }
    if (in.rollout) {
        if (auto ok = core::validate_rollout(*in.rollout, now, expires); !ok) {
            return fail(Errc::invalid_argument, ok.error().message);
        }
    }
    return {};
}

}  // namespace

Result<PublishInputs> check_publish_inputs(const PublishRequest& req, std::int64_t now) {
    PublishInputs in;
    if (auto ok = core::validate_release_id(req.id); !ok) {
        return fail(Errc::invalid_argument, "--id '" + req.id + "': " + ok.error().message);
    }
    // Endpoints refuse a manifest whose id Windows cannot use as a folder name.
    if (auto ok = core::validate_windows_component(req.id); !ok) {
        return fail(Errc::unsafe_path, "--id '" + req.id + "': " + ok.error().message);
    }
    auto install = split_command_line(req.install);
    if (!install) return fail(Errc::invalid_argument, "--install: " + install.error().message);
    in.install_argv = std::move(*install);
    if (req.verify) {
        auto verify = split_command_line(*req.verify);
        if (!verify) return fail(Errc::invalid_argument, "--verify: " + verify.error().message);
        in.verify_argv = std::move(*verify);
    }
    const auto severity = core::parse_severity(req.severity);
    if (!severity) {
        return fail(Errc::invalid_argument,
                    "--severity must be low, normal, important, critical or emergency");
    }
    in.severity = *severity;
    const auto reboot = core::parse_reboot_policy(req.reboot);
    if (!reboot)
        return fail(Errc::invalid_argument, "--reboot must be required, none or if_needed");
    in.reboot = *reboot;
    if (auto ok = check_timeout(req.install_timeout_s, "--timeout"); !ok) return forward(ok);
    if (auto ok = check_timeout(req.verify_timeout_s, "--verify-timeout"); !ok) return forward(ok);
    if (req.expires_days == 0 || req.expires_days > kMaxExpiresDays) {
        return fail(Errc::invalid_argument,
                    "--expires-days must be 1.." + std::to_string(kMaxExpiresDays));
    }
    if (req.repo_name) {
        if (auto ok = validate_repo_name(*req.repo_name); !ok) {
            return fail(Errc::invalid_argument, "--name-repo: " + ok.error().message);
        }
    }
    auto keys = load_secret_keys(req.release_keys, "--key");
    if (!keys) return forward(keys);
    if (keys->empty() && !req.stage) {
        return fail(Errc::invalid_argument, "--key is required (or --stage to sign later)");
    }
    in.release_keys = std::move(*keys);
    if (auto ok = check_rollout(req, now, in); !ok) return forward(ok);
    if (auto ok = check_payload(req, in); !ok) return forward(ok);
    if (auto ok = check_payload_outside_repo(req.repo, in.payload); !ok) return forward(ok);
    return in;
}

}  // namespace publishing

Result<core::Rollout> select_rollout(std::string_view policy_json, std::string_view severity) {
    static constexpr std::array<std::string_view, 7> kKeys = {
        "low", "normal", "important", "critical", "emergency", "default", "deadlines"};
    auto doc = core::json_strict::parse(policy_json, "rollout");
    if (!doc) return fail(Errc::invalid_argument, doc.error().message);
    if (!doc->is_object()) return fail(Errc::invalid_argument, "rollout: expected an object");
    // The maximum time to deadline per severity is read by select_deadline_policy.
    doc->erase("deadlines");
    const bool per_severity = std::any_of(kKeys.begin(), kKeys.end(), [&](std::string_view k) {
        return doc->contains(std::string(k));
    });
    // A policy file may leave out an empty "rings" or "windows" (the manifest always has both).
    const auto parse_policy = [](core::json_strict::Json policy,
                                 const std::string& where) -> Result<core::Rollout> {
        if (policy.is_object()) {
            if (!policy.contains("rings")) policy["rings"] = core::json_strict::Json::array();
            if (!policy.contains("windows")) policy["windows"] = core::json_strict::Json::array();
        }
        auto r = core::parse_rollout(core::json_strict::dump(policy));
        if (!r) return fail(Errc::invalid_argument, where + r.error().message);
        return r;
    };
    if (!per_severity) return parse_policy(*doc, "");
    // One policy per severity: the emergency schedule is data, chosen by --severity.
    for (const auto& item : doc->items()) {
        if (std::find(kKeys.begin(), kKeys.end(), item.key()) == kKeys.end()) {
            return fail(Errc::invalid_argument,
                        "rollout." + item.key() +
                            ": unknown field (a per-severity policy has low, normal, important, "
                            "critical, emergency, default and deadlines)");
        }
    }
    std::string key(severity);
    if (!doc->contains(key)) key = "default";
    if (!doc->contains(key)) {
        return fail(Errc::invalid_argument,
                    "rollout: no policy for severity " + std::string(severity) + " and no default");
    }
    return parse_policy((*doc)[key], "[" + key + "] ");
}

Result<core::DeadlinePolicy> select_deadline_policy(std::string_view policy_json) {
    auto doc = core::json_strict::parse(policy_json, "rollout");
    if (!doc) return fail(Errc::invalid_argument, doc.error().message);
    if (!doc->is_object() || !doc->contains("deadlines")) return core::default_deadline_policy();
    auto policy = core::parse_deadline_policy(core::json_strict::dump((*doc)["deadlines"]),
                                              core::default_deadline_policy());
    if (!policy) return fail(Errc::invalid_argument, "rollout." + policy.error().message);
    return policy;
}

}  // namespace patchswarm::seeder
