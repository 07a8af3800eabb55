// The SQLite wrapper against real database files: pragmas, binds of every type, transactions,
// durability across reopen, and two connections contending from two threads.
#include <stdlib.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "io/sqlite.hpp"
#include "support/process.hpp"

using namespace patchswarm;
namespace fs = std::filesystem;

namespace {

using patchswarm::test::TempDir;

std::unique_ptr<io::Db> open_ok(const fs::path& path) {
    auto db = io::Db::open(path);
    if (!db) FAIL("open failed: " << db.error().message);
    return std::move(*db);
}

template <typename T>
T value_or_fail(Result<T> r) {
    if (!r) FAIL(r.error().message);
    return std::move(*r);
}

void ok(const Result<void>& r) {
    if (!r) FAIL(r.error().message);
}

std::int64_t query_int(io::Db& db, std::string_view sql) {
    auto stmt = value_or_fail(db.prepare(sql));
    REQUIRE(value_or_fail(stmt.step()));
    return stmt.column_int(0);
}

}  // namespace

TEST_CASE("a database opens with WAL, full sync, a busy timeout and foreign keys", "[core]") {
    TempDir dir("ps-sqlite");
    auto db = open_ok((dir / "state.db"));
    auto mode = value_or_fail(db->prepare("PRAGMA journal_mode"));
    REQUIRE(value_or_fail(mode.step()));
    CHECK(mode.column_text(0) == "wal");
    CHECK(query_int(*db, "PRAGMA synchronous") == 2);  // FULL
    CHECK(query_int(*db, "PRAGMA busy_timeout") == 5000);
    CHECK(query_int(*db, "PRAGMA foreign_keys") == 1);
}

TEST_CASE("opening a path that cannot be a database is an Errc::database error", "[core]") {
    TempDir dir("ps-sqlite");
    const auto r = io::Db::open((dir / "missing-folder") / "state.db");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::database);
    CHECK(r.error().message.find("unable to open") != std::string::npos);
}

TEST_CASE("values of every type round-trip through binds and columns", "[core]") {
    TempDir dir("ps-sqlite");
    auto db = open_ok((dir / "state.db"));
    ok(db->exec("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, s TEXT, b BLOB, z TEXT)"));

    const std::int64_t big = std::numeric_limits<std::int64_t>::max();
    const std::int64_t small = std::numeric_limits<std::int64_t>::min();
    const std::string text = std::string{"caf\xc3\xa9 \"quoted\" 'x'; DROP TABLE t;--"} +
                             std::string(1, '\0') + "after-nul";
    const std::vector<std::uint8_t> blob = {0x00, 0xff, 0x10, 0x00, 0x7f};

    auto insert = value_or_fail(db->prepare("INSERT INTO t (id, n, s, b, z) VALUES (?,?,?,?,?)"));
    ok(insert.bind(1, std::int64_t{1}).bind(2, big).bind(3, text).bind(4, blob).bind_null(5).run());
    insert.reset();
    ok(insert.bind(1, std::int64_t{2})
           .bind(2, small)
           .bind(3, std::string_view{})
           .bind(4, std::vector<std::uint8_t>{})
           .bind(5, "z")
           .run());

    auto select = value_or_fail(db->prepare("SELECT n, s, b, z FROM t ORDER BY id"));
    REQUIRE(value_or_fail(select.step()));
    CHECK(select.column_int(0) == big);
    CHECK(select.column_text(1) == text);
    CHECK(select.column_blob(2) == blob);
    CHECK(select.column_is_null(3));
    CHECK_FALSE(select.column_is_null(0));

    REQUIRE(value_or_fail(select.step()));
    CHECK(select.column_int(0) == small);
    CHECK(select.column_text(1).empty());
    CHECK_FALSE(select.column_is_null(1));  // an empty string is not NULL
    CHECK(select.column_blob(2).empty());
    CHECK_FALSE(select.column_is_null(2));
    CHECK(select.column_text(3) == "z");

    CHECK_FALSE(value_or_fail(select.step()));
}

TEST_CASE("SQL errors come back as Errc::database with SQLite's message", "[core]") {
    TempDir dir("ps-sqlite");
    auto db = open_ok((dir / "state.db"));
    ok(
        db->exec("CREATE TABLE parent (id INTEGER PRIMARY KEY);"
                 "CREATE TABLE child (id INTEGER PRIMARY KEY,"
                 "                    parent INTEGER NOT NULL REFERENCES parent(id));"));

    SECTION("syntax error in exec") {
        const auto r = db->exec("CREAT TABLE x (y)");
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::database);
        CHECK(r.error().message.find("syntax error") != std::string::npos);
    }
    SECTION("unknown table in prepare") {
        const auto r = db->prepare("SELECT * FROM nope");
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().message.find("no such table") != std::string::npos);
    }
    SECTION("empty or multiple statements in prepare") {
        CHECK_FALSE(db->prepare("  ").has_value());
        CHECK_FALSE(db->prepare("SELECT 1; SELECT 2").has_value());
        CHECK(db->prepare("SELECT 1;  ").has_value());
    }
    SECTION("foreign keys are enforced") {
        auto insert = value_or_fail(db->prepare("INSERT INTO child (id, parent) VALUES (1, 42)"));
        const auto r = insert.run();
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::database);
        CHECK(r.error().message.find("FOREIGN KEY") != std::string::npos);
    }
    SECTION("a bind to a parameter that does not exist fails the step") {
        auto stmt = value_or_fail(db->prepare("SELECT ?"));
        const auto r = stmt.bind(2, std::int64_t{1}).step();
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::database);
        stmt.reset();
        CHECK(value_or_fail(stmt.bind(1, std::int64_t{1}).step()));
    }
}

TEST_CASE("a transaction commits on success and rolls back on failure", "[core]") {
    TempDir dir("ps-sqlite");
    auto db = open_ok((dir / "state.db"));
    ok(db->exec("CREATE TABLE t (v INTEGER NOT NULL)"));
    auto insert = [&db](std::int64_t v) -> Result<void> {
        auto stmt = db->prepare("INSERT INTO t (v) VALUES (?)");
        if (!stmt) return std::unexpected(stmt.error());
        return stmt->bind(1, v).run();
    };

    ok(db->transaction([&]() -> Result<void> {
        if (auto r = insert(1); !r) return r;
        return insert(2);
    }));
    CHECK(query_int(*db, "SELECT count(*) FROM t") == 2);

    SECTION("the function fails") {
        const auto r = db->transaction([&]() -> Result<void> {
            if (auto i = insert(3); !i) return i;
            return fail(Errc::io, "disk gone");
        });
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::io);  // the function's own error is passed on
    }
    SECTION("a statement inside fails") {
        const auto r = db->transaction([&]() -> Result<void> {
            if (auto i = insert(3); !i) return i;
            return db->exec("INSERT INTO t (v) VALUES (NULL)");
        });
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::database);
    }
    SECTION("the function throws") {
        CHECK_THROWS_AS(db->transaction([&]() -> Result<void> {
            (void)insert(3);
            throw std::runtime_error("bug");
        }),
                        std::runtime_error);
    }
    SECTION("transactions do not nest") {
        const auto r = db->transaction([&]() -> Result<void> {
            (void)insert(3);
            return db->transaction([] { return Result<void>{}; });
        });
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::database);
    }
    CHECK(query_int(*db, "SELECT count(*) FROM t") == 2);
    ok(db->transaction([&] { return insert(4); }));  // the connection is usable again
    CHECK(query_int(*db, "SELECT count(*) FROM t") == 3);
}

TEST_CASE("committed data is there after reopening the file", "[core]") {
    TempDir dir("ps-sqlite");
    const auto path = (dir / "state.db");
    {
        auto db = open_ok(path);
        ok(db->exec("CREATE TABLE releases (id TEXT PRIMARY KEY, state TEXT)"));
        auto stmt = value_or_fail(db->prepare("INSERT INTO releases VALUES (?, ?)"));
        ok(stmt.bind(1, "MS08-067").bind(2, "reboot_pending").run());
    }
    auto db = open_ok(path);
    auto stmt = value_or_fail(db->prepare("SELECT state FROM releases WHERE id = ?"));
    stmt.bind(1, "MS08-067");
    REQUIRE(value_or_fail(stmt.step()));
    CHECK(stmt.column_text(0) == "reboot_pending");
}

TEST_CASE("a statement may outlive its database handle", "[core]") {
    TempDir dir("ps-sqlite");
    auto db = open_ok((dir / "state.db"));
    auto stmt = value_or_fail(db->prepare("SELECT 1"));
    db.reset();  // close_v2 defers the close until the statement is finalized
    SUCCEED();
}

TEST_CASE("two connections in two threads wait for each other instead of failing", "[core]") {
    TempDir dir("ps-sqlite");
    const auto path = (dir / "state.db");
    {
        auto db = open_ok(path);
        ok(
            db->exec("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);"
                     "INSERT INTO counter VALUES (1, 0);"));
    }
    constexpr int kIncrements = 300;
    std::atomic<int> failures{0};
    std::string first_error;
    std::mutex error_mutex;

    // Read-modify-write in a transaction: without the IMMEDIATE lock and the busy timeout,
    // increments would be lost or fail with SQLITE_BUSY.
    auto worker = [&] {
        auto opened = io::Db::open(path);
        if (!opened) {
            ++failures;
            return;
        }
        auto& db = **opened;
        for (int i = 0; i < kIncrements; ++i) {
            const auto r = db.transaction([&db]() -> Result<void> {
                auto read = db.prepare("SELECT n FROM counter WHERE id = 1");
                if (!read) return std::unexpected(read.error());
                auto row = read->step();
                if (!row) return std::unexpected(row.error());
                const auto n = read->column_int(0);
                auto write = db.prepare("UPDATE counter SET n = ? WHERE id = 1");
                if (!write) return std::unexpected(write.error());
                return write->bind(1, n + 1).run();
            });
            if (!r) {
                ++failures;
                std::lock_guard lock{error_mutex};
                if (first_error.empty()) first_error = r.error().message;
            }
        }
    };
    std::thread a{worker};
    std::thread b{worker};
    a.join();
    b.join();

    INFO(first_error);
    CHECK(failures == 0);
    auto db = open_ok(path);
    CHECK(query_int(*db, "SELECT n FROM counter") == 2 * kIncrements);
}

TEST_CASE("a reader does not block a writer in WAL mode", "[core]") {
    TempDir dir("ps-sqlite");
    const auto path = (dir / "state.db");
    auto writer = open_ok(path);
    ok(writer->exec("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1);"));
    auto reader = open_ok(path);

    // The reader holds an open read transaction on its own thread. Catch2 assertions are not
    // thread-safe, so the thread only records what it saw; the checks run here.
    std::atomic<bool> reading{false};
    std::atomic<bool> done{false};
    std::int64_t seen = -1;
    std::string reader_error;
    std::thread t{[&] {
        auto note = [&](const Error& e) { reader_error = e.message; };
        if (auto r = reader->exec("BEGIN"); !r) note(r.error());
        auto stmt = reader->prepare("SELECT count(*) FROM t");
        if (!stmt) {
            note(stmt.error());
        } else if (auto row = stmt->step(); !row || !*row) {
            reader_error = row ? "no row" : row.error().message;
        } else {
            seen = stmt->column_int(0);
        }
        reading = true;
        while (!done) std::this_thread::yield();
        if (stmt) stmt->reset();
        (void)reader->exec("COMMIT");
    }};
    while (!reading) std::this_thread::yield();
    const auto inserted = writer->exec("INSERT INTO t VALUES (2)");  // blocked without WAL
    done = true;
    t.join();
    CHECK(reader_error.empty());
    CHECK(inserted.has_value());
    CHECK(seen == 1);
    CHECK(query_int(*writer, "SELECT count(*) FROM t") == 2);
}

TEST_CASE("a savepoint undoes only its own part, and a cached statement is reused clean",
          "[core]") {
    TempDir dir("ps-sqlite");
    auto db = open_ok((dir / "state.db"));
    ok(db->exec("CREATE TABLE t (v INTEGER NOT NULL UNIQUE, note TEXT)"));
    const auto insert = [&db](std::int64_t v) -> Result<void> {
        auto stmt = db->cached("INSERT INTO t (v, note) VALUES (?1, ?2)");
        if (!stmt) return std::unexpected(stmt.error());
        if (v == 2) stmt->bind(2, std::string_view("two"));  // the next use must not see it
        return stmt->bind(1, v).run();
    };
    ok(db->transaction([&]() -> Result<void> {
        for (std::int64_t v : {1, 2, 2, 3}) {
            // The second 2 breaks the UNIQUE constraint: its part is undone, the rest stays.
            auto part = db->savepoint([&] { return insert(v); });
            if (v == 2 && !part) CHECK(part.error().code == Errc::database);
        }
        return Result<void>{};
    }));
    CHECK(query_int(*db, "SELECT count(*) FROM t") == 3);
    CHECK(query_int(*db, "SELECT count(*) FROM t WHERE note IS NOT NULL") == 1);
}
