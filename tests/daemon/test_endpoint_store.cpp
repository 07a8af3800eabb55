// The endpoint's state.db: byte counters per release, the migration that adds the site
// counters to a state.db written before them, and the trusted root versions (with the feed state
// they drop and the issue 2 delegation the migration drops).
#include <catch2/catch.hpp>

#include "daemon/endpoint_store.hpp"
#include "io/sqlite.hpp"
#include "support/process.hpp"

using namespace patchswarm;
using namespace patchswarm::daemon;

namespace {

StoredRelease release(const std::string& id) {
    StoredRelease r;
    r.record.id = id;
    r.record.state = core::State::downloading;
    r.manifest_sha256 = std::string(64, 'a');
    r.manifest_envelope = "{}";
    r.sequence = 1;
    return r;
}

}  // namespace

TEST_CASE("state.db keeps LAN and WAN bytes per release", "[core]") {
    test::TempDir dir("ps-store");
    auto store = EndpointStore::open(dir / "state.db");
    REQUIRE(store);
    REQUIRE((*store)->save_release(release("KB1")));
    REQUIRE((*store)->save_progress("KB1", {10, 20, 7, 3, 6, 4}));
    auto again = EndpointStore::open(dir / "state.db");
    REQUIRE(again);
    auto r = (*again)->load_release("KB1");
    REQUIRE(r);
    REQUIRE(*r);
    CHECK((*r)->bytes_done == 10);
    CHECK((*r)->bytes_from_peers == 7);
    CHECK((*r)->bytes_from_seeder == 3);
    CHECK((*r)->bytes_from_lan == 6);
    CHECK((*r)->bytes_from_wan == 4);
}

TEST_CASE("an older state.db gains the site columns, filled from what it counted", "[core]") {
    test::TempDir dir("ps-store-migrate");
    {
        // The releases table before sites.
        auto db = io::Db::open(dir / "state.db");
        REQUIRE(db);
        REQUIRE((*db)->exec(R"sql(
            CREATE TABLE releases(
              id TEXT PRIMARY KEY, manifest_sha256 TEXT NOT NULL, manifest_envelope TEXT NOT NULL,
              sequence INTEGER NOT NULL, torrent BLOB, state TEXT NOT NULL,
              entered_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
              next_attempt_at INTEGER NOT NULL DEFAULT 0,
              failed_phase TEXT NOT NULL DEFAULT 'download', reason TEXT NOT NULL DEFAULT '',
              boot_id_at_install TEXT NOT NULL DEFAULT '',
              verify_started_at INTEGER NOT NULL DEFAULT 0,
              last_exit_code INTEGER NOT NULL DEFAULT 0, bytes_done INTEGER NOT NULL DEFAULT 0,
              bytes_total INTEGER NOT NULL DEFAULT 0,
              bytes_from_peers INTEGER NOT NULL DEFAULT 0,
              bytes_from_seeder INTEGER NOT NULL DEFAULT 0,
              install_output TEXT NOT NULL DEFAULT '');
            INSERT INTO releases(id, manifest_sha256, manifest_envelope, sequence, state,
                                 entered_at, bytes_from_peers, bytes_from_seeder)
            VALUES ('KB0', '', '{}', 1, 'effective', 5, 900, 100);)sql"));
    }
    auto store = EndpointStore::open(dir / "state.db");
    REQUIRE(store);
    auto r = (*store)->load_release("KB0");
    REQUIRE(r);
    REQUIRE(*r);
    CHECK((*r)->record.state == core::State::effective);
    // Without site ranges every peer was on the LAN and only the seeder outside.
    CHECK((*r)->bytes_from_lan == 900);
    CHECK((*r)->bytes_from_wan == 100);
    // Opening again migrates nothing and keeps later counts.
    REQUIRE((*store)->save_progress("KB0", {1, 1, 900, 100, 950, 50}));
    auto again = EndpointStore::open(dir / "state.db");
    REQUIRE(again);
    auto r2 = (*again)->load_release("KB0");
    REQUIRE(r2);
    REQUIRE(*r2);
    CHECK((*r2)->bytes_from_lan == 950);
    CHECK((*r2)->bytes_from_wan == 50);
}

TEST_CASE("state.db keeps every root version and drops the feed state with a feed key rotation",
          "[core]") {
    test::TempDir dir("ps-store-roots");
    {
        auto store = EndpointStore::open(dir / "state.db");
        REQUIRE(store);
        REQUIRE((*store)->set_meta("feed_sequence", "42"));
        REQUIRE((*store)->set_meta("feed_sha256", std::string(64, 'c')));
        REQUIRE((*store)->save_root(1, "root-v1", false));
        REQUIRE((*store)->save_root(2, "root-v2", false));
        CHECK((*store)->get_meta("feed_sequence")->value() == "42");  // same feed keys: kept
        REQUIRE((*store)->save_root(3, "root-v3", true));
    }
    auto store = EndpointStore::open(dir / "state.db");  // persisted across a restart
    REQUIRE(store);
    auto roots = (*store)->load_roots();
    REQUIRE(roots);
    REQUIRE(roots->size() == 3);
    CHECK(roots->back().version == 3);
    CHECK(roots->back().envelope == "root-v3");
    CHECK_FALSE((*store)->get_meta("feed_sequence")->has_value());
    CHECK_FALSE((*store)->get_meta("feed_sha256")->has_value());
}

TEST_CASE("a state.db of the issue 2 trust chain loses its delegation and feed memory", "[core]") {
    test::TempDir dir("ps-store-deleg");
    {
        auto db = io::Db::open(dir / "state.db");
        REQUIRE(db);
        REQUIRE((*db)->exec(R"sql(
            CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO meta VALUES ('delegation', '{}'), ('feed', '{}'),
                                    ('feed_sequence', '99'), ('feed_sha256', 'ab'),
                                    ('report_counter', '7');)sql"));
    }
    auto store = EndpointStore::open(dir / "state.db");
    REQUIRE(store);
    for (const char* gone : {"delegation", "feed", "feed_sequence", "feed_sha256"}) {
        INFO(gone);
        CHECK_FALSE((*store)->get_meta(gone)->has_value());
    }
    CHECK((*store)->get_meta("report_counter")->value() == "7");  // replay defence kept
    auto roots = (*store)->load_roots();
    REQUIRE(roots);
    CHECK(roots->empty());
}

TEST_CASE("state.db keeps deferrals and the reboot request time", "[core]") {
    test::TempDir dir("ps-store-defer");
    auto store = EndpointStore::open(dir / "state.db");
    REQUIRE(store);
    REQUIRE((*store)->save_release(release("KB1")));
    auto none = (*store)->deferral("KB1");
    REQUIRE(none);
    CHECK_FALSE(none->has_value());
    REQUIRE((*store)->set_deferral("KB1", 5000, 100));
    REQUIRE((*store)->set_deferral("KB1", 6000, 101));  // a new deferral replaces the old one
    auto rec = release("KB1").record;
    rec.state = core::State::reboot_pending;
    rec.reboot_requested_at = 4242;
    REQUIRE((*store)->save_record(rec));

    auto again = EndpointStore::open(dir / "state.db");
    REQUIRE(again);
    auto until = (*again)->deferral("KB1");
    REQUIRE(until);
    CHECK(until->value_or(0) == 6000);
    auto r = (*again)->load_release("KB1");
    REQUIRE(r);
    REQUIRE(*r);
    CHECK((*r)->record.reboot_requested_at == 4242);
    REQUIRE((*again)->clear_deferral("KB1"));
    auto cleared = (*again)->deferral("KB1");
    REQUIRE(cleared);
    CHECK_FALSE(cleared->has_value());
}

TEST_CASE("the feed state is saved in one transaction: a failure leaves all of the old one",
          "[core]") {
    test::TempDir dir("ps-store");
    auto store = EndpointStore::open(dir / "state.db");
    REQUIRE(store);
    REQUIRE((*store)->save_feed_state({5, std::string(64, 'a'), "feed five"}));
    {
        // Fault injection: the third of the three rows cannot be written.
        auto db = io::Db::open(dir / "state.db");
        REQUIRE(db);
        REQUIRE(
            (*db)->exec("CREATE TRIGGER no_feed BEFORE INSERT ON meta WHEN NEW.key = 'feed' "
                        "BEGIN SELECT RAISE(ABORT, 'injected'); END"));
    }
    CHECK_FALSE((*store)->save_feed_state({6, std::string(64, 'b'), "feed six"}));
    auto kept = (*store)->load_feed_state();
    REQUIRE(kept);
    CHECK(kept->sequence == 5);  // written before the failing row, rolled back with it
    CHECK(kept->payload_sha256 == std::string(64, 'a'));
    CHECK(kept->envelope == "feed five");
}

TEST_CASE("a state.db that never saw a feed has an empty feed state", "[core]") {
    test::TempDir dir("ps-store");
    auto store = EndpointStore::open(dir / "state.db");
    REQUIRE(store);
    auto none = (*store)->load_feed_state();
    REQUIRE(none);
    CHECK(none->sequence == 0);
    CHECK(none->envelope.empty());
    REQUIRE((*store)->save_feed_state({9, std::string(64, 'c'), "feed nine"}));
    auto nine = (*store)->load_feed_state();
    REQUIRE(nine);
    CHECK(nine->sequence == 9);
    CHECK(nine->envelope == "feed nine");
}
