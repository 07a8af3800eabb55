#include "daemon/endpoint_store.hpp"

#include <set>

namespace patchswarm::daemon {
namespace {

constexpr std::string_view kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS releases(
  id TEXT PRIMARY KEY,
  manifest_sha256 TEXT NOT NULL,
  manifest_envelope TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  torrent BLOB,
  state TEXT NOT NULL,
  entered_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL DEFAULT 0,
  failed_phase TEXT NOT NULL DEFAULT 'download',
  reason TEXT NOT NULL DEFAULT '',
  boot_id_at_install TEXT NOT NULL DEFAULT '',
  verify_started_at INTEGER NOT NULL DEFAULT 0,
  last_exit_code INTEGER NOT NULL DEFAULT 0,
  bytes_done INTEGER NOT NULL DEFAULT 0,
  bytes_total INTEGER NOT NULL DEFAULT 0,
  bytes_from_peers INTEGER NOT NULL DEFAULT 0,
  bytes_from_seeder INTEGER NOT NULL DEFAULT 0,
  install_output TEXT NOT NULL DEFAULT '',
  bytes_from_lan INTEGER NOT NULL DEFAULT 0,
  bytes_from_wan INTEGER NOT NULL DEFAULT 0,
  reboot_requested_at INTEGER NOT NULL DEFAULT 0,
  retry_generation INTEGER NOT NULL DEFAULT 0);
-- A user's or local admin's `patchswarmd defer`, per release id; the agent reads it every tick.
CREATE TABLE IF NOT EXISTS roots(
  version INTEGER PRIMARY KEY,
  envelope TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deferrals(
  id TEXT PRIMARY KEY,
  until INTEGER NOT NULL,
  requested_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS rejected(
  manifest_sha256 TEXT PRIMARY KEY,
  id TEXT NOT NULL,
  reason TEXT NOT NULL,
  at INTEGER NOT NULL);
)sql";

constexpr std::string_view kReleaseColumns =
    "id, manifest_sha256, manifest_envelope, sequence, torrent, state, entered_at, attempts, "
    "next_attempt_at, failed_phase, reason, boot_id_at_install, verify_started_at, "
    "last_exit_code, bytes_done, bytes_total, bytes_from_peers, bytes_from_seeder, "
    "install_output, bytes_from_lan, bytes_from_wan, reboot_requested_at, retry_generation";

Result<StoredRelease> read_release(const io::Stmt& s) {
    StoredRelease r;
    r.record.id = s.column_text(0);
    r.manifest_sha256 = s.column_text(1);
    r.manifest_envelope = s.column_text(2);
    r.sequence = static_cast<std::uint64_t>(s.column_int(3));
    r.torrent = s.column_blob(4);
    auto state = core::parse_state(s.column_text(5));
    auto phase = core::parse_phase(s.column_text(9));
    if (!state || !phase) {
        return fail(Errc::database, "state.db: unknown state or phase for " + r.record.id);
    }
    r.record.state = *state;
    r.record.entered_at = s.column_int(6);
    r.record.attempts = static_cast<std::uint32_t>(s.column_int(7));
    r.record.next_attempt_at = s.column_int(8);
    r.record.failed_phase = *phase;
    r.record.reason = s.column_text(10);
    r.record.boot_id_at_install = s.column_text(11);
    r.record.verify_started_at = s.column_int(12);
    r.record.last_exit_code = static_cast<int>(s.column_int(13));
    r.bytes_done = static_cast<std::uint64_t>(s.column_int(14));
    r.bytes_total = static_cast<std::uint64_t>(s.column_int(15));
    r.bytes_from_peers = static_cast<std::uint64_t>(s.column_int(16));
    r.bytes_from_seeder = static_cast<std::uint64_t>(s.column_int(17));
    r.install_output = s.column_text(18);
    r.bytes_from_lan = static_cast<std::uint64_t>(s.column_int(19));
    r.bytes_from_wan = static_cast<std::uint64_t>(s.column_int(20));
    r.record.reboot_requested_at = s.column_int(21);
    r.record.retry_generation = static_cast<std::uint32_t>(s.column_int(22));
    return r;
}

std::int64_t i64(std::uint64_t v) {
    return static_cast<std::int64_t>(v);
}

}  // namespace

Result<std::unique_ptr<EndpointStore>> EndpointStore::open(const std::filesystem::path& db_path) {
    auto db = io::Db::open(db_path);
    if (!db) return std::unexpected(db.error());
    if (auto ok = (*db)->exec(kSchema); !ok) return std::unexpected(ok.error());
    std::unique_ptr<EndpointStore> store(new EndpointStore(std::move(*db)));
    if (auto ok = store->migrate(); !ok) return std::unexpected(ok.error());
    return store;
}

Result<void> EndpointStore::migrate() {
    // Issue 2 endpoints trusted a release key and a delegated feed key; both are now named by
    // the root document (the roots table, created above). The cached delegation is meaningless
    // and the feed it admitted was signed by a key the root may not name: drop both, so the
    // first feed under the root starts a fresh memory (its sequence, floored at unix time by
    // the seeder, is still higher than any sequence seen before).
    if (auto d = get_meta("delegation"); d && *d) {
        auto ok = db_->exec(
            "DELETE FROM meta WHERE key IN ('delegation', 'feed', 'feed_sequence', "
            "'feed_sha256')");
        if (!ok) return ok;
    }
    std::set<std::string> columns;
    {
        auto s = db_->prepare("SELECT name FROM pragma_table_info('releases')");
        if (!s) return std::unexpected(s.error());
        for (;;) {
            auto row = s->step();
            if (!row) return std::unexpected(row.error());
            if (!*row) break;
            columns.insert(s->column_text(0));
        }
    }
    if (!columns.contains("retry_generation")) {
        auto ok = db_->exec(
            "ALTER TABLE releases ADD COLUMN retry_generation INTEGER NOT NULL DEFAULT 0");
        if (!ok) return ok;
    }
    if (!columns.contains("reboot_requested_at")) {
        auto ok = db_->exec(
            "ALTER TABLE releases ADD COLUMN reboot_requested_at INTEGER NOT NULL DEFAULT 0");
        if (!ok) return ok;
    }
    if (columns.contains("bytes_from_lan") && columns.contains("bytes_from_wan")) return {};
    return db_->transaction([&]() -> Result<void> {
        for (const char* column : {"bytes_from_lan", "bytes_from_wan"}) {
            if (columns.contains(column)) continue;
            auto ok = db_->exec(std::string("ALTER TABLE releases ADD COLUMN ") + column +
                                " INTEGER NOT NULL DEFAULT 0");
            if (!ok) return ok;
        }
        // Bytes counted before sites: without site ranges every peer is on the LAN and only
        // the seeder is outside, which is what an agent without --site-ranges still counts.
        return db_->exec(
            "UPDATE releases SET bytes_from_lan = bytes_from_peers, "
            "bytes_from_wan = bytes_from_seeder");
    });
}

Result<std::optional<std::string>> EndpointStore::get_meta(const std::string& key) {
    auto s = db_->prepare("SELECT value FROM meta WHERE key = ?1");
    if (!s) return std::unexpected(s.error());
    s->bind(1, key);
    auto row = s->step();
    if (!row) return std::unexpected(row.error());
    if (!*row) return std::optional<std::string>{};
    return std::optional<std::string>{s->column_text(0)};
}

Result<void> EndpointStore::set_meta(const std::string& key, const std::string& value) {
    auto s = db_->prepare(
        "INSERT INTO meta(key, value) VALUES(?1, ?2) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    if (!s) return std::unexpected(s.error());
    return s->bind(1, key).bind(2, value).run();
}

Result<std::vector<StoredRelease>> EndpointStore::load_releases() {
    auto s = db_->prepare("SELECT " + std::string(kReleaseColumns) +
                          " FROM releases ORDER BY sequence, id");
    if (!s) return std::unexpected(s.error());
    std::vector<StoredRelease> out;
    for (;;) {
        auto row = s->step();
        if (!row) return std::unexpected(row.error());
        if (!*row) break;
        auto r = read_release(*s);
        if (!r) return std::unexpected(r.error());
        out.push_back(std::move(*r));
    }
    return out;
}

Result<std::optional<StoredRelease>> EndpointStore::load_release(const std::string& id) {
    auto s =
        db_->prepare("SELECT " + std::string(kReleaseColumns) + " FROM releases WHERE id = ?1");
    if (!s) return std::unexpected(s.error());
    s->bind(1, id);
    auto row = s->step();
    if (!row) return std::unexpected(row.error());
    if (!*row) return std::optional<StoredRelease>{};
    auto r = read_release(*s);
    if (!r) return std::unexpected(r.error());
    return std::optional<StoredRelease>{std::move(*r)};
}

Result<void> EndpointStore::save_release(const StoredRelease& r) {
    auto s = db_->prepare("INSERT OR REPLACE INTO releases(" + std::string(kReleaseColumns) +
                          ") VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,"
                          "?18,?19,?20,?21,?22,?23)");
    if (!s) return std::unexpected(s.error());
    const auto& rec = r.record;
    s->bind(1, rec.id).bind(2, r.manifest_sha256).bind(3, r.manifest_envelope);
    s->bind(4, i64(r.sequence));
    if (r.torrent.empty()) {
        s->bind_null(5);
    } else {
        s->bind(5, r.torrent);
    }
    s->bind(6, core::to_string(rec.state)).bind(7, rec.entered_at).bind(8, rec.attempts);
    s->bind(9, rec.next_attempt_at).bind(10, core::to_string(rec.failed_phase));
    s->bind(11, rec.reason).bind(12, rec.boot_id_at_install).bind(13, rec.verify_started_at);
    s->bind(14, rec.last_exit_code).bind(15, i64(r.bytes_done)).bind(16, i64(r.bytes_total));
    s->bind(17, i64(r.bytes_from_peers)).bind(18, i64(r.bytes_from_seeder));
    s->bind(19, r.install_output);
    s->bind(20, i64(r.bytes_from_lan)).bind(21, i64(r.bytes_from_wan));
    s->bind(22, rec.reboot_requested_at);
    s->bind(23, static_cast<std::int64_t>(rec.retry_generation));
    return s->run();
}

Result<void> EndpointStore::save_record(const core::ReleaseRecord& rec) {
    auto s = db_->prepare(
        "UPDATE releases SET state=?2, entered_at=?3, attempts=?4, next_attempt_at=?5, "
        "failed_phase=?6, reason=?7, boot_id_at_install=?8, verify_started_at=?9, "
        "last_exit_code=?10, reboot_requested_at=?11, retry_generation=?12 WHERE id=?1");
    if (!s) return std::unexpected(s.error());
    s->bind(1, rec.id).bind(2, core::to_string(rec.state)).bind(3, rec.entered_at);
    s->bind(4, rec.attempts).bind(5, rec.next_attempt_at);
    s->bind(6, core::to_string(rec.failed_phase)).bind(7, rec.reason);
    s->bind(8, rec.boot_id_at_install).bind(9, rec.verify_started_at);
    s->bind(10, rec.last_exit_code).bind(11, rec.reboot_requested_at);
    s->bind(12, static_cast<std::int64_t>(rec.retry_generation));
    return s->run();
}

Result<void> EndpointStore::save_progress(const std::string& id, const ProgressBytes& b) {
    auto s = db_->prepare(
        "UPDATE releases SET bytes_done=?2, bytes_total=?3, bytes_from_peers=?4, "
        "bytes_from_seeder=?5, bytes_from_lan=?6, bytes_from_wan=?7 WHERE id=?1");
    if (!s) return std::unexpected(s.error());
    return s->bind(1, id)
        .bind(2, i64(b.done))
        .bind(3, i64(b.total))
        .bind(4, i64(b.from_peers))
        .bind(5, i64(b.from_seeder))
        .bind(6, i64(b.from_lan))
        .bind(7, i64(b.from_wan))
        .run();
}

Result<void> EndpointStore::save_torrent(const std::string& id,
                                         const std::vector<std::uint8_t>& torrent) {
    auto s = db_->prepare("UPDATE releases SET torrent=?2 WHERE id=?1");
    if (!s) return std::unexpected(s.error());
    return s->bind(1, id).bind(2, torrent).run();
}

Result<void> EndpointStore::save_output(const std::string& id, const std::string& output) {
    auto s = db_->prepare("UPDATE releases SET install_output=?2 WHERE id=?1");
    if (!s) return std::unexpected(s.error());
    return s->bind(1, id).bind(2, output).run();
}

Result<void> EndpointStore::save_root(std::uint64_t version, const std::string& envelope,
                                      bool drop_feed_state) {
    return db_->transaction([&]() -> Result<void> {
        auto s = db_->prepare("INSERT OR REPLACE INTO roots(version, envelope) VALUES(?1, ?2)");
        if (!s) return std::unexpected(s.error());
        if (auto ok = s->bind(1, i64(version)).bind(2, envelope).run(); !ok) return ok;
        if (!drop_feed_state) return {};
        return db_->exec("DELETE FROM meta WHERE key IN ('feed', 'feed_sequence', 'feed_sha256')");
    });
}

Result<void> EndpointStore::save_feed_state(const FeedState& feed) {
    return db_->transaction([&]() -> Result<void> {
        auto s = db_->prepare(
            "INSERT OR REPLACE INTO meta(key, value) VALUES('feed_sequence', ?1), "
            "('feed_sha256', ?2), ('feed', ?3)");
        if (!s) return std::unexpected(s.error());
        return s->bind(1, std::to_string(feed.sequence))
            .bind(2, feed.payload_sha256)
            .bind(3, feed.envelope)
            .run();
    });
}

Result<FeedState> EndpointStore::load_feed_state() {
    FeedState f;
    auto seq = get_meta("feed_sequence");
    if (!seq) return std::unexpected(seq.error());
    if (*seq && !(*seq)->empty()) {
        try {
            f.sequence = std::stoull(**seq);
        } catch (const std::exception&) {
            return fail(Errc::database, "state.db: feed_sequence is not a number");
        }
    }
    auto digest = get_meta("feed_sha256");
    if (!digest) return std::unexpected(digest.error());
    if (*digest) f.payload_sha256 = **digest;
    auto body = get_meta("feed");
    if (!body) return std::unexpected(body.error());
    if (*body) f.envelope = **body;
    return f;
}

Result<std::vector<StoredRoot>> EndpointStore::load_roots() {
    auto s = db_->prepare("SELECT version, envelope FROM roots ORDER BY version");
    if (!s) return std::unexpected(s.error());
    std::vector<StoredRoot> out;
    for (;;) {
        auto row = s->step();
        if (!row) return std::unexpected(row.error());
        if (!*row) break;
        out.push_back({static_cast<std::uint64_t>(s->column_int(0)), s->column_text(1)});
    }
    return out;
}

Result<void> EndpointStore::add_rejected(const RejectedManifest& r) {
    auto s = db_->prepare(
        "INSERT OR REPLACE INTO rejected(manifest_sha256, id, reason, at) VALUES(?1,?2,?3,?4)");
    if (!s) return std::unexpected(s.error());
    return s->bind(1, r.manifest_sha256).bind(2, r.id).bind(3, r.reason).bind(4, r.at).run();
}

Result<bool> EndpointStore::is_rejected(const std::string& manifest_sha256) {
    auto s = db_->prepare("SELECT 1 FROM rejected WHERE manifest_sha256 = ?1");
    if (!s) return std::unexpected(s.error());
    s->bind(1, manifest_sha256);
    return s->step();
}

Result<std::vector<RejectedManifest>> EndpointStore::load_rejected() {
    auto s = db_->prepare("SELECT manifest_sha256, id, reason, at FROM rejected ORDER BY at");
    if (!s) return std::unexpected(s.error());
    std::vector<RejectedManifest> out;
    for (;;) {
        auto row = s->step();
        if (!row) return std::unexpected(row.error());
        if (!*row) break;
        out.push_back({s->column_text(0), s->column_text(1), s->column_text(2), s->column_int(3)});
    }
    return out;
}

Result<void> EndpointStore::set_deferral(const std::string& id, std::int64_t until,
                                         std::int64_t requested_at) {
    auto s = db_->prepare(
        "INSERT INTO deferrals(id, until, requested_at) VALUES(?1, ?2, ?3) "
        "ON CONFLICT(id) DO UPDATE SET until = excluded.until, "
        "requested_at = excluded.requested_at");
    if (!s) return std::unexpected(s.error());
    return s->bind(1, id).bind(2, until).bind(3, requested_at).run();
}

Result<void> EndpointStore::clear_deferral(const std::string& id) {
    auto s = db_->prepare("DELETE FROM deferrals WHERE id = ?1");
    if (!s) return std::unexpected(s.error());
    return s->bind(1, id).run();
}

Result<std::optional<std::int64_t>> EndpointStore::deferral(const std::string& id) {
    auto s = db_->prepare("SELECT until FROM deferrals WHERE id = ?1");
    if (!s) return std::unexpected(s.error());
    s->bind(1, id);
    auto row = s->step();
    if (!row) return std::unexpected(row.error());
    if (!*row) return std::optional<std::int64_t>{};
    return std::optional<std::int64_t>{s->column_int(0)};
}

}  // namespace patchswarm::daemon
