#include "seeder/fleet_db.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "crypto/crypto.hpp"

namespace patchswarm::seeder {

namespace {

// Progress is kept as parts per million: the SQLite wrapper binds integers, text and blobs.
constexpr double kPpm = 1'000'000.0;

constexpr std::string_view kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoints (
    device_id      TEXT PRIMARY KEY,
    device_key     TEXT NOT NULL,      -- hex public key, pinned by the first accepted report
    hostname       TEXT NOT NULL,
    remote_address TEXT NOT NULL,
    boot_id        TEXT NOT NULL,
    counter        INTEGER NOT NULL,   -- last accepted report counter
    sent_at        INTEGER NOT NULL,   -- endpoint clock
    first_seen     INTEGER NOT NULL,   -- seeder clock
    last_seen      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoint_releases (
    device_id         TEXT NOT NULL REFERENCES endpoints(device_id) ON DELETE CASCADE,
    release_id        TEXT NOT NULL,
    manifest_sha256   TEXT NOT NULL,
    state             TEXT NOT NULL,
    entered_at        INTEGER NOT NULL,
    progress_ppm      INTEGER NOT NULL,
    bytes_from_peers  INTEGER NOT NULL,
    bytes_from_seeder INTEGER NOT NULL,
    attempts          INTEGER NOT NULL,
    reason            TEXT NOT NULL,
    updated_at        INTEGER NOT NULL,
    PRIMARY KEY (device_id, release_id)
);
CREATE INDEX IF NOT EXISTS endpoint_releases_by_release ON endpoint_releases(release_id);
-- Every accepted state change, for the history of a rollout.
CREATE TABLE IF NOT EXISTS state_changes (
    id          INTEGER PRIMARY KEY,
    device_id   TEXT NOT NULL,
    release_id  TEXT NOT NULL,
    state       TEXT NOT NULL,
    entered_at  INTEGER NOT NULL,
    received_at INTEGER NOT NULL
);
-- Rollout: when serve announced each ring of a release open (latched: rings never close).
CREATE TABLE IF NOT EXISTS ring_opens (
    release_id      TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    ring            INTEGER NOT NULL,
    opened_at       INTEGER NOT NULL,
    PRIMARY KEY (release_id, manifest_sha256, ring)
);
-- Rollout: halts (auto or manual), listed in the signed feed while active.
CREATE TABLE IF NOT EXISTS halts (
    release_id      TEXT PRIMARY KEY,
    manifest_sha256 TEXT NOT NULL,
    active          INTEGER NOT NULL,
    reason          TEXT NOT NULL,
    halted_by       TEXT NOT NULL,
    halted_at       INTEGER NOT NULL,
    resumed_at      INTEGER NOT NULL DEFAULT 0
);
-- The seeder's own copy of a release failed its check (serve): shown by status per release.
CREATE TABLE IF NOT EXISTS seed_problems (
    release_id      TEXT PRIMARY KEY,
    manifest_sha256 TEXT NOT NULL,
    message         TEXT NOT NULL,
    present_ppm     INTEGER,
    at              INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', '1');
INSERT OR IGNORE INTO meta(key, value) VALUES ('feed_sequence', '0');
)sql";

std::int64_t to_db(std::uint64_t v) {
    return static_cast<std::int64_t>(v);
}  // bounded by parse

}  // namespace

Result<std::unique_ptr<FleetDb>> FleetDb::open(const std::filesystem::path& path) {
    auto db = io::Db::open(path);
    if (!db) return std::unexpected(db.error());
    std::unique_ptr<FleetDb> fleet(new FleetDb(std::move(*db)));
    if (auto ok = fleet->create_schema(); !ok) return std::unexpected(ok.error());
    return fleet;
}

Result<void> FleetDb::create_schema() {
    if (auto ok = db_->exec(kSchema); !ok) return ok;
    return migrate();
}

Result<void> FleetDb::migrate() {
    // NULL: the endpoint's report did not carry the figure (agents before sites / rollouts).
    if (auto ok = db_->add_missing_columns("endpoint_releases", {{"bytes_from_lan", "INTEGER"},
                                                                 {"bytes_from_wan", "INTEGER"},
                                                                 {"failed_phase", "TEXT"},
                                                                 {"deferred_until", "INTEGER"},
                                                                 {"next_attempt_at", "INTEGER"},
                                                                 {"max_attempts", "INTEGER"},
                                                                 {"deferred_by", "TEXT"}});
        !ok) {
        return ok;
    }
    // One group name per line; '' for agents before rollouts.
    // '' for agents that do not report them.
    return db_->add_missing_columns("endpoints", {{"groups", "TEXT NOT NULL DEFAULT ''"},
                                                  {"agent_version", "TEXT NOT NULL DEFAULT ''"}});
}

namespace {

std::string join_lines(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& item : items) out += (out.empty() ? "" : "\n") + item;
    return out;
}

std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start < text.size()) {
        const std::size_t nl = std::min(text.find('\n', start), text.size());
        if (nl > start) out.push_back(text.substr(start, nl - start));
        start = nl + 1;
    }
    return out;
}

}  // namespace

Result<void> FleetDb::set_meta(const std::string& key, const std::string& value) {
    auto stmt = db_->prepare(
        "INSERT INTO meta(key, value) VALUES (?1, ?2) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    if (!stmt) return std::unexpected(stmt.error());
    return stmt->bind(1, key).bind(2, value).run();
}

Result<std::optional<std::string>> FleetDb::get_meta(const std::string& key) {
    auto stmt = db_->prepare("SELECT value FROM meta WHERE key = ?1");
    if (!stmt) return std::unexpected(stmt.error());
    auto row = stmt->bind(1, key).step();
    if (!row) return std::unexpected(row.error());
    if (!*row) return std::optional<std::string>{};
    return std::optional<std::string>{stmt->column_text(0)};
}

Result<std::vector<std::int64_t>> FleetDb::ring_opens(std::string_view release_id,
                                                      std::string_view manifest_sha256) {
    auto stmt = db_->prepare(
        "SELECT ring, opened_at FROM ring_opens WHERE release_id = ?1 AND manifest_sha256 = ?2 "
        "ORDER BY ring");
    if (!stmt) return std::unexpected(stmt.error());
    stmt->bind(1, release_id).bind(2, manifest_sha256);
    std::vector<std::int64_t> out;
    for (;;) {
        auto row = stmt->step();
        if (!row) return std::unexpected(row.error());
        if (!*row) break;
        // Rings open in order; a gap (never written by serve) ends the latched prefix.
        if (stmt->column_int(0) != static_cast<std::int64_t>(out.size())) break;
        out.push_back(stmt->column_int(1));
    }
    return out;
}

Result<void> FleetDb::save_ring_open(std::string_view release_id, std::string_view manifest_sha256,
                                     std::size_t ring, std::int64_t at) {
    auto stmt = db_->prepare(
        "INSERT OR IGNORE INTO ring_opens(release_id, manifest_sha256, ring, opened_at) "
        "VALUES (?1, ?2, ?3, ?4)");
    if (!stmt) return std::unexpected(stmt.error());
    return stmt->bind(1, release_id)
        .bind(2, manifest_sha256)
        .bind(3, static_cast<std::int64_t>(ring))
        .bind(4, at)
        .run();
}

Result<void> FleetDb::set_seed_problem(const SeedProblem& p) {
    auto stmt = db_->prepare(R"sql(
        INSERT OR REPLACE INTO seed_problems(release_id, manifest_sha256, message, present_ppm, at)
        VALUES (?1, ?2, ?3, ?4, ?5))sql");
    if (!stmt) return std::unexpected(stmt.error());
    stmt->bind(1, p.release_id).bind(2, p.manifest_sha256).bind(3, p.message).bind(5, p.at);
    if (p.present) {
        stmt->bind(4, static_cast<std::int64_t>(*p.present * kPpm + 0.5));
    } else {
        stmt->bind_null(4);
    }
    return stmt->run();
}

Result<void> FleetDb::clear_seed_problem(std::string_view release_id) {
    auto stmt = db_->prepare("DELETE FROM seed_problems WHERE release_id = ?1");
    if (!stmt) return std::unexpected(stmt.error());
    return stmt->bind(1, release_id).run();
}

Result<std::vector<SeedProblem>> FleetDb::seed_problems() {
    auto stmt = db_->prepare(
        "SELECT release_id, manifest_sha256, message, present_ppm, at FROM seed_problems "
        "ORDER BY release_id");
    if (!stmt) return std::unexpected(stmt.error());
    std::vector<SeedProblem> out;
    for (;;) {
        auto row = stmt->step();
        if (!row) return std::unexpected(row.error());
        if (!*row) break;
        SeedProblem p;
        p.release_id = stmt->column_text(0);
        p.manifest_sha256 = stmt->column_text(1);
        p.message = stmt->column_text(2);
        if (!stmt->column_is_null(3)) p.present = static_cast<double>(stmt->column_int(3)) / kPpm;
        p.at = stmt->column_int(4);
        out.push_back(std::move(p));
    }
    return out;
}

Result<std::vector<HaltRow>> FleetDb::halts() {
    auto stmt = db_->prepare(
        "SELECT release_id, manifest_sha256, active, reason, halted_by, halted_at, resumed_at "
        "FROM halts ORDER BY release_id");
    if (!stmt) return std::unexpected(stmt.error());
    std::vector<HaltRow> out;
    for (;;) {
        auto row = stmt->step();
        if (!row) return std::unexpected(row.error());
        if (!*row) break;
        out.push_back({stmt->column_text(0), stmt->column_text(1), stmt->column_int(2) != 0,
                       stmt->column_text(3), stmt->column_text(4), stmt->column_int(5),
                       stmt->column_int(6)});
    }
    return out;
}

Result<void> FleetDb::halt(std::string_view release_id, std::string_view manifest_sha256,
                           std::string_view reason, std::string_view by, std::int64_t now) {
    auto stmt = db_->prepare(R"sql(
        INSERT INTO halts(release_id, manifest_sha256, active, reason, halted_by, halted_at)
        VALUES (?1, ?2, 1, ?3, ?4, ?5)
        ON CONFLICT(release_id) DO UPDATE SET
            manifest_sha256 = excluded.manifest_sha256, active = 1, reason = excluded.reason,
            halted_by = excluded.halted_by, halted_at = excluded.halted_at,
            resumed_at = CASE WHEN halts.manifest_sha256 = excluded.manifest_sha256
                              THEN halts.resumed_at ELSE 0 END
        WHERE halts.active = 0 OR halts.manifest_sha256 != excluded.manifest_sha256)sql");
    if (!stmt) return std::unexpected(stmt.error());
    return stmt->bind(1, release_id)
        .bind(2, manifest_sha256)
        .bind(3, reason)
        .bind(4, by)
        .bind(5, now)
        .run();
}

Result<void> FleetDb::resume(std::string_view release_id, std::int64_t now) {
    auto stmt = db_->prepare(
        "UPDATE halts SET active = 0, resumed_at = ?2 WHERE release_id = ?1 AND "
        "active = 1");
    if (!stmt) return std::unexpected(stmt.error());
    if (auto ok = stmt->bind(1, release_id).bind(2, now).run(); !ok) return ok;
    if (db_->changes() == 0) {
        return fail(Errc::not_found, "release " + std::string(release_id) + " is not halted");
    }
    return {};
}

Result<std::int64_t> FleetDb::data_version() {
    auto stmt = db_->prepare("PRAGMA data_version");
    if (!stmt) return std::unexpected(stmt.error());
    auto row = stmt->step();
    if (!row) return std::unexpected(row.error());
    if (!*row) return fail(Errc::database, "PRAGMA data_version returned no row");
    return stmt->column_int(0);
}

Result<void> FleetDb::save_sites(const std::vector<std::string>& specs) {
    std::string value;
    for (const auto& spec : specs) value += spec + "\n";
    auto stmt = db_->prepare(
        "INSERT INTO meta(key, value) VALUES ('sites', ?1) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    if (!stmt) return std::unexpected(stmt.error());
    return stmt->bind(1, value).run();
}

Result<std::vector<std::string>> FleetDb::load_sites() {
    auto stmt = db_->prepare("SELECT value FROM meta WHERE key = 'sites'");
    if (!stmt) return std::unexpected(stmt.error());
    auto row = stmt->step();
    if (!row) return std::unexpected(row.error());
    std::vector<std::string> specs;
    if (!*row) return specs;
    const std::string value = stmt->column_text(0);
    std::size_t start = 0;
    for (std::size_t nl; (nl = value.find('\n', start)) != std::string::npos; start = nl + 1) {
        if (nl > start) specs.push_back(value.substr(start, nl - start));
    }
    if (start < value.size()) specs.push_back(value.substr(start));
    return specs;
}

// ---- feed sequence ---------------------------------------------------------------------------

Result<std::uint64_t> FleetDb::feed_sequence() {
    auto stmt = db_->prepare("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'feed_sequence'");
    if (!stmt) return std::unexpected(stmt.error());
    auto row = stmt->step();
    if (!row) return std::unexpected(row.error());
    return *row ? static_cast<std::uint64_t>(stmt->column_int(0)) : 0;
}

Result<std::uint64_t> FleetDb::next_feed_sequence(std::uint64_t floor) {
    std::uint64_t next = 0;
    auto ok = db_->transaction([&]() -> Result<void> {
        auto current = feed_sequence();
        if (!current) return std::unexpected(current.error());
        next = std::max(*current + 1, floor);
        auto stmt = db_->prepare(
            "INSERT INTO meta(key, value) VALUES ('feed_sequence', ?1) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
        if (!stmt) return std::unexpected(stmt.error());
        return stmt->bind(1, std::to_string(next)).run();
    });
    if (!ok) return std::unexpected(ok.error());
    return next;
}

// ---- reports ---------------------------------------------------------------------------------

Result<ReportOutcome> FleetDb::apply_report(const Report& report, std::string_view remote_address,
                                            std::int64_t now) {
    ReportOutcome outcome;
    // The refusal reasons are kept outside the transaction's error path so that a refused report
    // rolls back and still tells the caller why.
    std::optional<Error> refused;
    auto ok = db_->transaction([&]() -> Result<void> {
        if (auto checked = check_and_pin(report, outcome); !checked) {
            refused = checked.error();
            return checked;
        }
        return store_report(report, remote_address, now, outcome);
    });
    if (refused) return std::unexpected(*refused);
    if (!ok) return std::unexpected(ok.error());
    return outcome;
}

Result<void> FleetDb::check_and_pin(const Report& report, ReportOutcome& outcome) {
    auto stmt = db_->prepare(
        "SELECT device_key, counter, last_seen, groups FROM endpoints WHERE device_id = ?1");
    if (!stmt) return std::unexpected(stmt.error());
    auto row = stmt->bind(1, report.device_id).step();
    if (!row) return std::unexpected(row.error());
    if (!*row) {
        outcome.new_device = true;
        outcome.facts_changed = true;
        return {};
    }
    outcome.previous_last_seen = stmt->column_int(2);
    if (stmt->column_text(3) != join_lines(report.groups)) outcome.facts_changed = true;
    if (stmt->column_text(0) != crypto::to_hex(report.device_key)) {
        return fail(Errc::permission, "device " + report.device_id + " is pinned to another key");
    }
    const auto last = static_cast<std::uint64_t>(stmt->column_int(1));
    if (report.counter <= last) {
        return fail(Errc::rollback, "report counter " + std::to_string(report.counter) +
                                        " is not greater than " + std::to_string(last));
    }
    return {};
}

Result<void> FleetDb::store_report(const Report& report, std::string_view remote_address,
                                   std::int64_t now, ReportOutcome& outcome) {
    std::map<std::string, std::string> before;  // release id → state text
    // What a rollout evaluation reads of each release row: if none of it changes, the report
    // cannot open a ring or halt a release (apart from the endpoint no longer being stale).
    std::map<std::string, std::string> facts_before;
    {
        auto stmt = db_->prepare(
            "SELECT release_id, state, manifest_sha256, entered_at, IFNULL(failed_phase, '') "
            "FROM endpoint_releases WHERE device_id = ?1");
        if (!stmt) return std::unexpected(stmt.error());
        stmt->bind(1, report.device_id);
        for (;;) {
            auto row = stmt->step();
            if (!row) return std::unexpected(row.error());
            if (!*row) break;
            before.emplace(stmt->column_text(0), stmt->column_text(1));
            facts_before.emplace(stmt->column_text(0), stmt->column_text(2) + '\n' +
                                                           stmt->column_text(1) + '\n' +
                                                           std::to_string(stmt->column_int(3)) +
                                                           '\n' + stmt->column_text(4));
        }
    }
    {
        std::map<std::string, std::string> facts_after;
        for (const auto& rel : report.releases) {
            facts_after.emplace(
                rel.id, rel.manifest_sha256 + '\n' + std::string(core::to_string(rel.state)) +
                            '\n' + std::to_string(rel.entered_at) + '\n' +
                            (rel.failed_phase ? std::string(core::to_string(*rel.failed_phase))
                                              : std::string()));
        }
        if (facts_after != facts_before) outcome.facts_changed = true;
    }
    auto upsert = db_->prepare(R"sql(
        INSERT INTO endpoints(device_id, device_key, hostname, remote_address, boot_id, counter,
                              sent_at, first_seen, last_seen, groups, agent_version)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10)
        ON CONFLICT(device_id) DO UPDATE SET
            hostname = excluded.hostname, remote_address = excluded.remote_address,
            boot_id = excluded.boot_id, counter = excluded.counter, sent_at = excluded.sent_at,
            last_seen = excluded.last_seen, groups = excluded.groups,
            agent_version = excluded.agent_version)sql");
    if (!upsert) return std::unexpected(upsert.error());
    upsert->bind(1, report.device_id)
        .bind(2, crypto::to_hex(report.device_key))
        .bind(3, report.hostname)
        .bind(4, remote_address)
        .bind(5, report.boot_id)
        .bind(6, to_db(report.counter))
        .bind(7, report.sent_at)
        .bind(8, now)
        .bind(9, join_lines(report.groups))
        .bind(10, report.agent_version);
    if (auto ok = upsert->run(); !ok) return ok;

    // A report is the endpoint's full snapshot: releases it no longer lists are forgotten.
    auto clear = db_->prepare("DELETE FROM endpoint_releases WHERE device_id = ?1");
    if (!clear) return std::unexpected(clear.error());
    if (auto ok = clear->bind(1, report.device_id).run(); !ok) return ok;

    auto insert = db_->prepare(R"sql(
        INSERT INTO endpoint_releases(device_id, release_id, manifest_sha256, state, entered_at,
            progress_ppm, bytes_from_peers, bytes_from_seeder, attempts, reason, updated_at,
            bytes_from_lan, bytes_from_wan, failed_phase, deferred_until, next_attempt_at,
            max_attempts, deferred_by)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                ?18))sql");
    auto history = db_->prepare(R"sql(
        INSERT INTO state_changes(device_id, release_id, state, entered_at, received_at)
        VALUES (?1, ?2, ?3, ?4, ?5))sql");
    if (!insert) return std::unexpected(insert.error());
    if (!history) return std::unexpected(history.error());
    for (const auto& rel : report.releases) {
        const std::string state(core::to_string(rel.state));
        insert->reset();
        insert->bind(1, report.device_id)
            .bind(2, rel.id)
            .bind(3, rel.manifest_sha256)
            .bind(4, state)
            .bind(5, rel.entered_at)
            .bind(6, static_cast<std::int64_t>(rel.progress * kPpm + 0.5))
            .bind(7, to_db(rel.bytes_from_peers))
            .bind(8, to_db(rel.bytes_from_seeder))
            .bind(9, static_cast<std::int64_t>(rel.attempts))
            .bind(10, rel.reason)
            .bind(11, now);
        if (rel.bytes_from_lan) {
            insert->bind(12, to_db(*rel.bytes_from_lan));
        } else {
            insert->bind_null(12);
        }
        if (rel.bytes_from_wan) {
            insert->bind(13, to_db(*rel.bytes_from_wan));
        } else {
            insert->bind_null(13);
        }
        if (rel.failed_phase) {
            insert->bind(14, core::to_string(*rel.failed_phase));
        } else {
            insert->bind_null(14);
        }
        if (rel.deferred_until) {
            insert->bind(15, *rel.deferred_until);
        } else {
            insert->bind_null(15);
        }
        if (rel.next_attempt_at) {
            insert->bind(16, *rel.next_attempt_at);
        } else {
            insert->bind_null(16);
        }
        if (rel.max_attempts) {
            insert->bind(17, static_cast<std::int64_t>(*rel.max_attempts));
        } else {
            insert->bind_null(17);
        }
        if (rel.deferred_by) {
            insert->bind(18, *rel.deferred_by);
        } else {
            insert->bind_null(18);
        }
        if (auto ok = insert->run(); !ok) return ok;

        const auto old = before.find(rel.id);
        if (old != before.end() && old->second == state) continue;
        StateChange change{rel.id, std::nullopt, rel.state};
        if (old != before.end()) change.from = core::parse_state(old->second);
        outcome.changes.push_back(std::move(change));
        history->reset();
        history->bind(1, report.device_id)
            .bind(2, rel.id)
            .bind(3, state)
            .bind(4, rel.entered_at)
            .bind(5, now);
        if (auto ok = history->run(); !ok) return ok;
    }
    return {};
}

// ---- reading ---------------------------------------------------------------------------------

Result<FleetSnapshot> FleetDb::snapshot() {
    // One read transaction, so that endpoints and their releases come from the same moment
    // even while `serve` writes (WAL readers do not block the writer).
    if (auto ok = db_->exec("BEGIN"); !ok) return std::unexpected(ok.error());
    auto snap = read_snapshot();
    (void)db_->exec(snap ? "COMMIT" : "ROLLBACK");
    return snap;
}

Result<FleetSnapshot> FleetDb::read_snapshot() {
    FleetSnapshot snap;
    // enrolled_devices (seeder/enrolment.cpp) exists only in repositories with enrolment, and
    // has revoked_at only once a seeder with revocation opened it.
    auto revocations = db_->prepare(
        "SELECT 1 FROM pragma_table_info('enrolled_devices') WHERE name = 'revoked_at'");
    if (!revocations) return std::unexpected(revocations.error());
    auto has_revocations = revocations->step();
    if (!has_revocations) return std::unexpected(has_revocations.error());
    const std::string member =
        *has_revocations ? " WHERE device_id NOT IN (SELECT device_id FROM enrolled_devices "
                           "WHERE revoked_at != 0)"
                         : "";
    if (*has_revocations) {
        auto count = db_->prepare(
            "SELECT count(*) FROM endpoints WHERE device_id IN (SELECT device_id FROM "
            "enrolled_devices WHERE revoked_at != 0)");
        if (!count) return std::unexpected(count.error());
        if (auto row = count->step(); !row) return std::unexpected(row.error());
        snap.revoked = static_cast<std::size_t>(count->column_int(0));
    }
    auto endpoints = db_->prepare(
        "SELECT device_id, hostname, remote_address, boot_id, first_seen, last_seen, counter, "
        "groups, agent_version FROM endpoints" +
        member + " ORDER BY device_id");
    if (!endpoints) return std::unexpected(endpoints.error());
    for (;;) {
        auto row = endpoints->step();
        if (!row) return std::unexpected(row.error());
        if (!*row) break;
        snap.endpoints.push_back(
            {endpoints->column_text(0), endpoints->column_text(1), endpoints->column_text(2),
             endpoints->column_text(3), endpoints->column_int(4), endpoints->column_int(5),
             static_cast<std::uint64_t>(endpoints->column_int(6)),
             split_lines(endpoints->column_text(7)), endpoints->column_text(8)});
    }
    auto releases = db_->prepare(
        "SELECT device_id, release_id, manifest_sha256, state, entered_at, progress_ppm, "
        "bytes_from_peers, bytes_from_seeder, attempts, reason, bytes_from_lan, bytes_from_wan, "
        "failed_phase, deferred_until, next_attempt_at, max_attempts, deferred_by "
        "FROM endpoint_releases" +
        member + " ORDER BY release_id, device_id");
    if (!releases) return std::unexpected(releases.error());
    for (;;) {
        auto row = releases->step();
        if (!row) return std::unexpected(row.error());
        if (!*row) break;
        EndpointReleaseRow r;
        r.device_id = releases->column_text(0);
        r.release_id = releases->column_text(1);
        r.manifest_sha256 = releases->column_text(2);
        r.state = core::parse_state(releases->column_text(3));
        r.entered_at = releases->column_int(4);
        r.progress = static_cast<double>(releases->column_int(5)) / kPpm;
        r.bytes_from_peers = static_cast<std::uint64_t>(releases->column_int(6));
        r.bytes_from_seeder = static_cast<std::uint64_t>(releases->column_int(7));
        r.attempts = static_cast<std::uint32_t>(releases->column_int(8));
        r.reason = releases->column_text(9);
        if (!releases->column_is_null(10)) {
            r.bytes_from_lan = static_cast<std::uint64_t>(releases->column_int(10));
        }
        if (!releases->column_is_null(11)) {
            r.bytes_from_wan = static_cast<std::uint64_t>(releases->column_int(11));
        }
        if (!releases->column_is_null(12)) {
            r.failed_phase = core::parse_phase(releases->column_text(12));
        }
        if (!releases->column_is_null(13)) r.deferred_until = releases->column_int(13);
        if (!releases->column_is_null(14)) r.next_attempt_at = releases->column_int(14);
        if (!releases->column_is_null(15)) {
            r.max_attempts = static_cast<std::uint32_t>(releases->column_int(15));
        }
        if (!releases->column_is_null(16)) r.deferred_by = releases->column_text(16);
        snap.releases.push_back(std::move(r));
    }
    return snap;
}

}  // namespace patchswarm::seeder
