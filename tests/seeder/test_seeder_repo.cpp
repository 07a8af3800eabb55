// `publish` into a temporary repository: sequence numbers, the --replace rule, all-or-nothing
// commits (a failure at every step leaves the repository byte for byte as it was), signatures
// that verify with the release keys the root names, and payloads that must be refused. The root
// document commands and multi-key signing are in test_seeder_root.cpp.
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "core/envelope.hpp"
#include "core/feed.hpp"
#include "core/manifest.hpp"
#include "core/rollout.hpp"
#include "crypto/crypto.hpp"
#include "io/fs.hpp"
#include "io/key_files.hpp"
#include "seeder/command_line.hpp"
#include "seeder/publish.hpp"
#include "seeder/repo.hpp"
#include "seeder/root_admin.hpp"
#include "support/process.hpp"

using namespace patchswarm;
using namespace patchswarm::seeder;
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t kNow = 1'763'800'000;

// publish logs one info line per release; keep the test output to failures.
const bool kQuiet = (spdlog::set_level(spdlog::level::warn), true);

void write(const fs::path& p, const std::string& content) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << content;
}

std::string slurp(const fs::path& p) {
    auto text = io::read_file(p, 1 << 24);
    REQUIRE(text);
    return *text;
}

// Every file and folder under `root` (except the lock file) with its content.
std::map<std::string, std::string> tree(const fs::path& root) {
    std::map<std::string, std::string> out;
    if (!fs::exists(root)) return out;
    for (const auto& e : fs::recursive_directory_iterator(root)) {
        const std::string rel = fs::relative(e.path(), root).string();
        if (rel == ".lock") continue;
        out[rel] = e.is_directory() ? std::string("<dir>") : slurp(e.path());
    }
    return out;
}

struct Setup {
    test::TempDir dir{"ps-repo"};
    fs::path repo = dir / "repo";
    fs::path key = dir / "keys/release";
    fs::path root_key = dir / "keys/root";

    // A repository with root version 1: one root key, one release key (1 of 1 each).
    Setup() {
        REQUIRE(keygen(key));
        REQUIRE(keygen(root_key));
        RootInitRequest init;
        init.repo = repo;
        init.root_public_keys = {fs::path(root_key) += ".pub"};
        init.release_public_keys = {fs::path(key) += ".pub"};
        init.sign_keys = {fs::path(root_key) += ".key"};
        auto status = root_init(init, kNow - 100);
        REQUIRE(status);
        REQUIRE(status->committed);
    }

    fs::path payload(const std::string& name, const std::string& tag = "v1") {
        const fs::path p = dir / "payloads" / tag / name;
        write(p / "install.sh", "#!/bin/sh\necho " + tag + "\n");
        fs::permissions(p / "install.sh", fs::perms::owner_exec, fs::perm_options::add);
        write(p / "sub/patch.bin", std::string(100'000, 'x') + tag);
        return p;
    }

    PublishRequest request(const std::string& id, const fs::path& payload) const {
        PublishRequest r;
        r.repo = repo;
        r.release_keys = {fs::path(key) += ".key"};
        r.id = id;
        r.payload = payload;
        r.install = "./install.sh --quiet 'two words'";
        r.verify = "./install.sh --check";
        r.severity = "emergency";
        r.reboot = "required";
        return r;
    }

    crypto::PublicKey release_public() const {
        auto pub = io::load_public_key(fs::path(key) += ".pub");
        REQUIRE(pub);
        return *pub;
    }
};

Index index_of(const fs::path& repo) {
    auto index = load_index(RepoPaths(repo));
    REQUIRE(index);
    return *index;
}

std::string payload_of(const core::Envelope& env) {
    return std::string(env.payload.begin(), env.payload.end());
}

}  // namespace

TEST_CASE("publish numbers releases per repository and replaces only with --replace", "[core]") {
    Setup s;
    auto a = publish(s.request("MS08-067", s.payload("KB958644")), kNow);
    REQUIRE(a);
    CHECK(a->sequence == 1);
    auto b = publish(s.request("KB2", s.payload("KB2")), kNow);
    REQUIRE(b);
    CHECK(b->sequence == 2);

    const auto before = tree(s.repo);
    auto again = publish(s.request("MS08-067", s.payload("KB958644", "v2")), kNow);
    REQUIRE_FALSE(again);
    CHECK(again.error().code == Errc::already_exists);
    CHECK(tree(s.repo) == before);

    auto req = s.request("MS08-067", s.payload("KB958644", "v2"));
    req.replace = true;
    auto replaced = publish(req, kNow + 10);
    REQUIRE(replaced);
    CHECK(replaced->sequence == 3);
    CHECK(replaced->manifest_sha256 != a->manifest_sha256);

    const Index index = index_of(s.repo);
    CHECK(index.generation == 3);
    REQUIRE(index.releases.size() == 2);
    CHECK(index.releases[0].id == "KB2");  // ordered by sequence
    CHECK(index.releases[1].id == "MS08-067");
    CHECK(index.releases[1].sequence == 3);
    CHECK(index.releases[1].manifest_sha256 == replaced->manifest_sha256);
    auto info = load_repo_info(RepoPaths(s.repo));
    REQUIRE(info);
    CHECK(info->sequence == 3);
    CHECK(info->name == "repo");
    CHECK(slurp(s.repo / "releases/MS08-067/payload/KB958644/sub/patch.bin").ends_with("v2"));
    CHECK_FALSE(fs::exists(s.repo / ".staging"));
}

TEST_CASE("the published manifest verifies with the release key and matches the payload",
          "[core]") {
    Setup s;
    const fs::path payload = s.payload("KB958644");
    auto result = publish(s.request("MS08-067", payload), kNow);
    REQUIRE(result);
    CHECK(result->files == 2);
    CHECK(result->size == 100'002 + slurp(payload / "install.sh").size());

    const std::string bytes = slurp(s.repo / "releases/MS08-067/manifest.json");
    CHECK(crypto::sha256_hex(crypto::as_bytes(bytes)) == result->manifest_sha256);
    CHECK(index_of(s.repo).releases.at(0).manifest_sha256 == result->manifest_sha256);
    auto env = core::parse_envelope(bytes, core::kMaxManifestBytes * 2);
    REQUIRE(env);
    const crypto::PublicKey trusted[] = {s.release_public()};
    REQUIRE(core::verify_envelope(*env, core::payload_type::manifest, trusted));
    auto m = core::parse_manifest(payload_of(*env));
    REQUIRE(m);
    CHECK(m->repository == "repo");
    CHECK(m->id == "MS08-067");
    CHECK(m->sequence == 1);
    CHECK(m->created == kNow);
    CHECK(m->expires == kNow + 30 * 86'400);
    CHECK(m->severity == core::Severity::emergency);
    CHECK(m->reboot == core::RebootPolicy::required);
    // No --deadline, no policy file: the emergency default, 24 h after publishing.
    REQUIRE(m->rollout);
    CHECK(m->rollout->deadline == kNow + 86'400);
    CHECK(m->rollout->rings.empty());
    CHECK(result->deadline == kNow + 86'400);
    CHECK(result->deadline_source == "severity_policy");
    const auto line = nlohmann::json::parse(to_json_line(*result));
    CHECK(line["deadline"] == kNow + 86'400);
    CHECK(line["deadline_utc"] == core::format_utc(kNow + 86'400));
    CHECK(line["deadline_source"] == "severity_policy");
    CHECK(m->name == "KB958644");
    CHECK(m->infohash_v2 == result->infohash_v2);
    CHECK(m->install.argv == std::vector<std::string>{"./install.sh", "--quiet", "two words"});
    REQUIRE(m->verify);
    CHECK(m->verify->argv == std::vector<std::string>{"./install.sh", "--check"});
    REQUIRE(m->files.size() == 2);
    CHECK(m->files[0].path == "install.sh");
    CHECK(m->files[1].path == "sub/patch.bin");
    for (const auto& f : m->files) {
        auto digest = io::sha256_file(payload / f.path, 1 << 24);
        REQUIRE(digest);
        CHECK(f.sha256 == crypto::to_hex(*digest));
    }
    // The copy keeps the install script executable.
    const auto perms =
        fs::status(s.repo / "releases/MS08-067/payload/KB958644/install.sh").permissions();
    CHECK((perms & fs::perms::owner_exec) != fs::perms::none);

    // The root names the repository's online feed key, which `root init` created (0600).
    auto root = load_current_root(RepoPaths(s.repo));
    REQUIRE(root);
    auto feed_pub = io::load_public_key(s.repo / "keys/feed.pub");
    REQUIRE(feed_pub);
    CHECK(root->doc.feed.keyids == std::vector<std::string>{crypto::key_id(*feed_pub)});
    CHECK(root->doc.expires == kNow - 100 + 365 * 86'400);
    CHECK((fs::status(s.repo / "keys/feed.key").permissions() & fs::perms::group_all) ==
          fs::perms::none);
}

TEST_CASE("a failed publish leaves the repository as it was, whichever step fails", "[core]") {
    for (const std::string step : {"move-old", "move-new", "repo.json", "index.json"}) {
        DYNAMIC_SECTION("failing at " << step) {
            Setup s;
            REQUIRE(publish(s.request("MS08-067", s.payload("KB958644")), kNow));
            const auto before = tree(s.repo);

            auto req = s.request("MS08-067", s.payload("KB958644", "v2"));
            req.replace = true;
            PublishHooks hooks;
            hooks.before_step = [&](std::string_view name) -> Result<void> {
                if (name == step) return fail(Errc::io, "injected failure");
                return {};
            };
            auto r = publish(req, kNow + 5, hooks);
            REQUIRE_FALSE(r);
            CHECK(r.error().code == Errc::io);
            CHECK(tree(s.repo) == before);

            // And the repository still works afterwards.
            auto ok = publish(req, kNow + 6);
            REQUIRE(ok);
            CHECK(ok->sequence == 2);
        }
    }
}

TEST_CASE("a failed first publish leaves the repository as root init made it", "[core]") {
    for (const std::string step : {"move-new", "repo.json", "index.json"}) {
        DYNAMIC_SECTION("failing at " << step) {
            Setup s;
            const auto before = tree(s.repo);
            PublishHooks hooks;
            hooks.before_step = [&](std::string_view name) -> Result<void> {
                if (name == step) return fail(Errc::io, "injected failure");
                return {};
            };
            REQUIRE_FALSE(publish(s.request("MS08-067", s.payload("KB958644")), kNow, hooks));
            CHECK(tree(s.repo) == before);
            CHECK(index_of(s.repo).releases.empty());
        }
    }
}

TEST_CASE("payloads with symlinks or special files are refused and change nothing", "[core]") {
    Setup s;
    REQUIRE(publish(s.request("KB1", s.payload("KB1")), kNow));
    const auto before = tree(s.repo);

    SECTION("a symlink inside the folder") {
        const fs::path p = s.payload("KB2");
        fs::create_symlink("/etc/passwd", p / "sub/passwd");
        auto r = publish(s.request("KB2", p), kNow);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::unsafe_path);
    }
    SECTION("a symlinked folder inside the folder") {
        const fs::path p = s.payload("KB2");
        fs::create_directory_symlink("/etc", p / "etc");
        auto r = publish(s.request("KB2", p), kNow);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::unsafe_path);
    }
    SECTION("the payload itself is a symlink") {
        const fs::path p = s.payload("KB2");
        fs::create_directory_symlink(p, s.dir / "link");
        auto r = publish(s.request("KB2", s.dir / "link"), kNow);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::unsafe_path);
    }
    SECTION("a named pipe") {
        const fs::path p = s.payload("KB2");
        REQUIRE(::mkfifo((p / "pipe").c_str(), 0600) == 0);
        auto r = publish(s.request("KB2", p), kNow);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::unsafe_path);
    }
    SECTION("a file name with a backslash") {
        const fs::path p = s.payload("KB2");
        write(p / "evil\\name", "x");
        auto r = publish(s.request("KB2", p), kNow);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::unsafe_path);
    }
    CHECK(tree(s.repo) == before);
}

TEST_CASE("payload names a Windows endpoint cannot hold are refused and change nothing", "[core]") {
    Setup s;
    REQUIRE(publish(s.request("KB1", s.payload("KB1")), kNow));
    const auto before = tree(s.repo);
    struct Row {
        const char* extra_file;  // added to a good payload, relative to its folder
        const char* rule;        // the error message must name it
    };
    const Row rows[] = {
        {"CON", "reserved device name"},
        {"sub/nul.txt", "\"nul.txt\" is a reserved device name"},
        {"Com1.log", "reserved device name"},
        {"LPT9/x", "reserved device name"},
        {"install.sh:evil", "alternate data stream"},
        {"c:evil", "drive letter"},
        {"readme.", "ends with a dot or space"},
        {"readme ", "ends with a dot or space"},
        {"Install.sh", "'Install.sh' and 'install.sh' differ only in case"},
        {"SUB/other.bin", "differ only in case"},
    };
    for (const auto& row : rows) {
        INFO(row.extra_file);
        const fs::path p = s.payload("KB2", row.extra_file);
        write(p / row.extra_file, "x");
        auto r = publish(s.request("KB2", p), kNow);
        REQUIRE_FALSE(r);
        INFO(r.error().message);
        CHECK(r.error().code == Errc::unsafe_path);
        CHECK(r.error().message.find(row.rule) != std::string::npos);
        CHECK(tree(s.repo) == before);
    }
    // The payload's own name becomes the release folder, and the id a folder on endpoints.
    auto r = publish(s.request("KB2", s.payload("AUX.cab")), kNow);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::unsafe_path);
    CHECK(r.error().message.find("reserved device name") != std::string::npos);
    r = publish(s.request("NUL", s.payload("KB2")), kNow);
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("reserved device name") != std::string::npos);
    CHECK(tree(s.repo) == before);
}

TEST_CASE("bad publish options are usage errors and touch nothing", "[core]") {
    Setup s;
    const auto before = tree(s.repo);
    const fs::path p = s.payload("KB1");
    std::vector<std::pair<std::string, std::function<void(PublishRequest&)>>> cases = {
        {"id with a slash", [](auto& r) { r.id = "a/b"; }},
        {"id ..", [](auto& r) { r.id = ".."; }},
        {"empty install", [](auto& r) { r.install = "  "; }},
        {"unterminated quote", [](auto& r) { r.install = "./install.sh 'oops"; }},
        {"bad severity", [](auto& r) { r.severity = "urgent"; }},
        {"bad reboot", [](auto& r) { r.reboot = "maybe"; }},
        {"zero timeout", [](auto& r) { r.install_timeout_s = 0; }},
        {"zero expiry", [](auto& r) { r.expires_days = 0; }},
        {"bad repository name", [](auto& r) { r.repo_name = "my repo"; }},
        {"no --key without --stage", [](auto& r) { r.release_keys.clear(); }},
    };
    for (auto& [name, mutate] : cases) {
        INFO(name);
        auto req = s.request("KB1", p);
        mutate(req);
        auto r = publish(req, kNow);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::invalid_argument);
    }
    CHECK(tree(s.repo) == before);
}

TEST_CASE("a payload folder that contains the repository is refused", "[core]") {
    Setup s;
    auto req = s.request("KB1", s.dir.path());
    auto r = publish(req, kNow);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::invalid_argument);
}

TEST_CASE("a release moved aside by a crashed --replace is restored by the next publish",
          "[core]") {
    Setup s;
    REQUIRE(publish(s.request("KB1", s.payload("KB1")), kNow));
    const auto before = tree(s.repo);
    // What a crash between the "move-old" and "move-new" steps leaves behind.
    fs::create_directories(s.repo / ".staging");
    fs::rename(s.repo / "releases/KB1", s.repo / ".staging/KB1-0badf00d.old");

    REQUIRE(publish(s.request("KB2", s.payload("KB2")), kNow));
    const auto after = tree(s.repo);
    for (const auto& [path, content] : before) {
        if (!path.starts_with("releases/KB1")) continue;
        INFO(path);
        REQUIRE(after.contains(path));
        CHECK(after.at(path) == content);
    }
}

TEST_CASE("a repository refuses a release signed with a key its root does not name", "[core]") {
    Setup s;
    REQUIRE(publish(s.request("KB1", s.payload("KB1")), kNow));
    const auto before = tree(s.repo);
    REQUIRE(keygen(s.dir / "keys/other"));
    auto req = s.request("KB2", s.payload("KB2"));
    req.release_keys = {s.dir / "keys/other.key"};
    auto r = publish(req, kNow);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::bad_signature);
    CHECK(tree(s.repo) == before);
}

TEST_CASE("single files and one-file folders are published as a single-file release", "[core]") {
    Setup s;
    write(s.dir / "solo/patch.run", "#!/bin/sh\n");
    auto file = s.request("KB1", s.dir / "solo/patch.run");
    file.install = "./patch.run";
    file.verify.reset();
    auto a = publish(file, kNow);
    REQUIRE(a);
    CHECK(a->files == 1);
    CHECK(fs::is_regular_file(s.repo / "releases/KB1/payload/patch.run"));

    auto folder = s.request("KB2", s.dir / "solo/");  // trailing slash
    folder.install = "./patch.run";
    auto b = publish(folder, kNow);
    REQUIRE(b);
    // libtorrent reads a v2 file tree with one top-level file as a single-file torrent, so the
    // seeder's copy is laid out the way libtorrent will look for it.
    CHECK(fs::is_regular_file(s.repo / "releases/KB2/payload/patch.run"));
    CHECK_FALSE(fs::exists(s.repo / "releases/KB2/payload/solo"));

    // A lone file in a sub-folder keeps its folder: the torrent is a folder torrent.
    write(s.dir / "nested/deep/only.bin", "x");
    auto nested = s.request("KB3", s.dir / "nested");
    nested.install = "./deep/only.bin";
    auto c = publish(nested, kNow);
    REQUIRE(c);
    CHECK(fs::is_regular_file(s.repo / "releases/KB3/payload/nested/deep/only.bin"));
}

TEST_CASE("keygen refuses to overwrite a key", "[core]") {
    test::TempDir dir("ps-keys");
    REQUIRE(keygen(dir / "k/release"));
    CHECK((fs::status(dir / "k/release.key").permissions() & fs::perms::group_all) ==
          fs::perms::none);
    auto again = keygen(dir / "k/release");
    REQUIRE_FALSE(again);
    CHECK(again.error().code == Errc::already_exists);
}

TEST_CASE("install commands are split into argv without a shell", "[core]") {
    using V = std::vector<std::string>;
    const std::vector<std::pair<std::string, V>> ok = {
        {"./install.sh", {"./install.sh"}},
        {"  ./a   b\tc ", {"./a", "b", "c"}},
        {"./a 'two words' \"three more words\"", {"./a", "two words", "three more words"}},
        {"./a 'it\"s' \"it's\"", {"./a", "it\"s", "it's"}},
        {"./a pre'fix suf'fix", {"./a", "prefix suffix"}},
        {"./a '' x", {"./a", "", "x"}},
        {"./a $HOME *.txt | b > c", {"./a", "$HOME", "*.txt", "|", "b", ">", "c"}},
        {"./a back\\slash", {"./a", "back\\slash"}},
    };
    for (const auto& [text, want] : ok) {
        INFO(text);
        auto argv = split_command_line(text);
        REQUIRE(argv);
        CHECK(*argv == want);
    }
    const std::vector<std::string> bad = {
        "", "   ", "''", "./a 'open", "./a \"open", std::string("./a \0b", 6), "./a\nb"};
    for (const auto& text : bad) {
        INFO(text);
        CHECK_FALSE(split_command_line(text));
    }
    std::string many = "./a";
    for (int i = 0; i < 64; ++i) many += " x";
    CHECK_FALSE(split_command_line(many));
}

TEST_CASE("a rollout policy file is chosen by severity and checked before anything is signed",
          "[core]") {
    const std::string per_severity =
        R"({"emergency":{"rings":[]},"default":{"rings":[{"name":"canary","groups":["c"],)"
        R"("success_threshold":1,"soak_s":60,"max_failure_rate":0.2}]}})";
    auto emergency = select_rollout(per_severity, "emergency");
    REQUIRE(emergency);
    CHECK(emergency->rings.empty());
    auto normal = select_rollout(per_severity, "normal");
    INFO((normal ? "" : normal.error().message));
    REQUIRE(normal);
    REQUIRE(normal->rings.size() == 1);
    CHECK(normal->rings[0].name == "canary");
    auto plain = select_rollout(R"({"rings":[],"deadline":5})", "low");
    REQUIRE(plain);
    CHECK(plain->deadline == 5);
    for (const char* bad : {R"({"emergency":{},"sometimes":{}})", R"({"emergency":{}})",
                            R"({"default":{"rings":[{"nmae":"x"}]}})", "[]", "{"}) {
        INFO(bad);
        auto r = select_rollout(bad, "normal");
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::invalid_argument);
    }
}

TEST_CASE("publish takes the deadline from the policy's per-severity maximum unless given",
          "[core]") {
    Setup s;
    const fs::path payload = s.payload("KB");
    // A policy file whose deadlines override the defaults; its own deadline is later than the
    // critical maximum, so the maximum wins.
    const fs::path policy = s.dir / "policy.json";
    write(policy, R"({"deadlines":{"critical":"6h","low":null},)"
                  R"("default":{"rings":[],"deadline":)" +
                      std::to_string(kNow + 10 * 86'400) + "}}");
    auto critical = s.request("KB-C", payload);
    critical.severity = "critical";
    critical.rollout_file = policy;
    auto c = publish(critical, kNow);
    INFO((c ? "" : c.error().message));
    REQUIRE(c);
    CHECK(c->deadline == kNow + 6 * 3600);
    CHECK(c->deadline_source == "severity_policy");
    CHECK(c->deadline_explanation == "critical: at most 6h after publishing");
    // The file's deadline stands where the severity has no maximum.
    auto low = s.request("KB-L", payload);
    low.severity = "low";
    low.rollout_file = policy;
    auto l = publish(low, kNow);
    REQUIRE(l);
    CHECK(l->deadline == kNow + 10 * 86'400);
    CHECK(l->deadline_source == "policy_file");
    // --deadline is taken as given.
    auto given = s.request("KB-G", payload);
    given.deadline = "+72h";
    auto g = publish(given, kNow);
    REQUIRE(g);
    CHECK(g->deadline == kNow + 72 * 3600);
    CHECK(g->deadline_source == "flag");
    // Normal without a file: 14 days, cut to a shorter manifest lifetime.
    auto normal = s.request("KB-N", payload);
    normal.severity = "normal";
    normal.expires_days = 7;
    auto n = publish(normal, kNow);
    REQUIRE(n);
    CHECK(n->deadline == kNow + 7 * 86'400);
    // A malformed deadlines object is refused before anything is signed.
    write(policy, R"({"deadlines":{"critical":"soon"}})");
    auto bad = s.request("KB-B", payload);
    bad.rollout_file = policy;
    auto b = publish(bad, kNow);
    REQUIRE_FALSE(b);
    CHECK(b.error().code == Errc::invalid_argument);
    CHECK(b.error().message.find("deadlines.critical") != std::string::npos);
}
