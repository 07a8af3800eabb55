// The catalog reloads index.json when it changes (and only then), and the file watch notices a
// publish replacing index.json without any polling.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <catch2/catch.hpp>

#include "io/file_watch.hpp"
#include "seeder/catalog.hpp"
#include "seeder/publish.hpp"
#include "support/process.hpp"
#include "support/root_init.hpp"

using namespace patchswarm;
using namespace patchswarm::seeder;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t kNow = 1'800'000'000;

struct Repo {
    test::TempDir dir{"ps-catalog"};
    RepoPaths paths{dir / "repo"};

    Repo() { test::init_repo_root(dir / "keys", dir / "repo"); }

    void publish(const std::string& id, const std::string& content, bool replace = false) {
        test::write_text(dir / "payloads" / id / "install.sh", "#!/bin/sh\n");
        test::write_text(dir / "payloads" / id / "data.bin", content);
        PublishRequest req;
        req.repo = paths.root();
        req.release_keys = {dir / "keys/release.key"};
        req.id = id;
        req.payload = dir / "payloads" / id;
        req.install = "./install.sh";
        req.replace = replace;
        auto r = seeder::publish(req, kNow);
        INFO((r ? "" : r.error().message));
        REQUIRE(r);
    }
};

}  // namespace

TEST_CASE("the catalog reloads index.json when a publish changes it, and only then", "[io]") {
    Repo repo;
    repo.publish("KB1", "one");
    Catalog catalog(repo.paths);
    auto first = catalog.reload();
    REQUIRE(first);
    CHECK(*first);
    REQUIRE(catalog.listed().size() == 1);
    REQUIRE(catalog.served().count("KB1") == 1);
    const auto& kb1 = catalog.served().at("KB1");
    CHECK(kb1.announce_hash.size() == 20);  // raw bytes, as announces carry it
    CHECK_FALSE(kb1.torrent.empty());
    CHECK(catalog.torrents().at(kb1.announce_hash) == "KB1");
    CHECK(catalog.is_listed("KB1"));
    CHECK_FALSE(catalog.is_listed("KB2"));

    auto again = catalog.reload();  // same file
    REQUIRE(again);
    CHECK_FALSE(*again);

    repo.publish("KB2", "two");
    auto second = catalog.reload();
    REQUIRE(second);
    CHECK(*second);
    CHECK(catalog.listed().size() == 2);
    CHECK(catalog.served().count("KB2") == 1);

    // A broken index.json: the error once, the last good catalog kept.
    const std::string good = test::read_text(repo.paths.index_json());
    test::write_text(repo.paths.index_json(), "{not json");
    CHECK_FALSE(catalog.reload().has_value());
    auto quiet = catalog.reload();
    REQUIRE(quiet);
    CHECK_FALSE(*quiet);
    CHECK(catalog.listed().size() == 2);

    // A release whose manifest no longer matches stays listed but is not served.
    test::write_text(repo.paths.index_json(), good);
    test::write_text(repo.paths.manifest("KB1"), "{}");
    auto forced = catalog.reload(/*force=*/true);
    REQUIRE(forced);
    CHECK(catalog.is_listed("KB1"));
    CHECK(catalog.served().count("KB1") == 0);
    CHECK(catalog.served().count("KB2") == 1);
}

TEST_CASE("the file watch notices index.json being replaced and written", "[io]") {
    Repo repo;
    repo.publish("KB1", "one");
    boost::asio::io_context io;
    std::set<fs::path> seen;
    auto watch = io::FileWatch::create(io, [&](const std::set<fs::path>& changed) {
        seen.insert(changed.begin(), changed.end());
    });
    REQUIRE(watch);
    REQUIRE((*watch)->add(repo.paths.root()));
    CHECK((*watch)->add(repo.dir / "no-such-folder").error().code == Errc::not_found);

    // Runs the io_context until `path` was reported, or a deadline far beyond any event latency.
    const auto noticed = [&](const fs::path& path) {
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (!seen.contains(path) && std::chrono::steady_clock::now() < deadline) {
            io.restart();
            io.run_for(100ms);
        }
        return seen.contains(path);
    };
    repo.publish("KB2", "two");  // replaces index.json by rename
    CHECK(noticed(repo.paths.index_json()));
    seen.clear();
    test::write_text(repo.paths.index_json(), test::read_text(repo.paths.index_json()));
    CHECK(noticed(repo.paths.index_json()));
    // After the watch is gone, nothing is reported (and nothing crashes).
    watch->reset();
    seen.clear();
    repo.publish("KB3", "three");
    io.restart();
    io.run_for(200ms);
    CHECK(seen.empty());
}
