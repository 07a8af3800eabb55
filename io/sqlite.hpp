// A thin RAII wrapper around SQLite. One Db per thread; statements are prepared per call site,
// or once per connection through Db::cached for the hot paths (report intake).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/error.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace patchswarm::io {

class Stmt {
  public:
    Stmt(Stmt&&) noexcept;
    Stmt& operator=(Stmt&&) noexcept;
    ~Stmt();

    // Bind by 1-based index. Return *this for chaining.
    Stmt& bind(int index, std::int64_t value);
    Stmt& bind(int index, std::string_view text);
    Stmt& bind(int index, const std::vector<std::uint8_t>& blob);
    Stmt& bind_null(int index);

    // true: a row is available; false: done. Errc::database on error, including a bind() that
    // failed since the last reset().
    [[nodiscard]] Result<bool> step();
    // step() until done, for statements that return no rows.
    [[nodiscard]] Result<void> run();
    // Rewinds for another run; bindings are kept (as in SQLite), a pending bind error is cleared.
    void reset();

    std::int64_t column_int(int col) const;
    std::string column_text(int col) const;
    std::vector<std::uint8_t> column_blob(int col) const;
    bool column_is_null(int col) const;

  private:
    friend class Db;
    Stmt(sqlite3_stmt* stmt, sqlite3* db) : stmt_(stmt), db_(db) {}
    Stmt& check_bind(int rc);
    sqlite3_stmt* stmt_ = nullptr;
    sqlite3* db_ = nullptr;
    int bind_rc_ = 0;  // first failed bind since reset(), reported by step()
};

// A statement from Db::cached, lent for one use: it comes reset with no bindings and is reset
// again when the lease ends, so no read it made stays open (a reader left open would hold back
// WAL checkpoints). Same calls as Stmt. Must not outlive its Db; not copyable.
class CachedStmt {
  public:
    explicit CachedStmt(Stmt& stmt) : stmt_(&stmt) {}
    CachedStmt(CachedStmt&& other) noexcept : stmt_(std::exchange(other.stmt_, nullptr)) {}
    CachedStmt& operator=(CachedStmt&&) = delete;
    ~CachedStmt() {
        if (stmt_ != nullptr) stmt_->reset();
    }
    Stmt& bind(int index, std::int64_t value) { return stmt_->bind(index, value); }
    Stmt& bind(int index, std::string_view text) { return stmt_->bind(index, text); }
    Stmt& bind(int index, const std::vector<std::uint8_t>& blob) {
        return stmt_->bind(index, blob);
    }
    Stmt& bind_null(int index) { return stmt_->bind_null(index); }
    [[nodiscard]] Result<bool> step() { return stmt_->step(); }
    [[nodiscard]] Result<void> run() { return stmt_->run(); }
    void reset() { stmt_->reset(); }
    std::int64_t column_int(int col) const { return stmt_->column_int(col); }
    std::string column_text(int col) const { return stmt_->column_text(col); }
    bool column_is_null(int col) const { return stmt_->column_is_null(col); }

  private:
    Stmt* stmt_;
};

class Db {
  public:
    // Opens (creating if needed) with WAL journal, synchronous=FULL (a persisted state transition
    // must survive power loss), busy_timeout 5 s, foreign keys on. Errc::database when the file
    // cannot be opened or WAL cannot be enabled (":memory:" is allowed without WAL).
    [[nodiscard]] static Result<std::unique_ptr<Db>> open(const std::filesystem::path& path);
    ~Db();
    Db(const Db&) = delete;  // owns the handle: a copy would close it twice
    Db& operator=(const Db&) = delete;

    // Runs one or more statements that return no rows of interest (schema, pragmas).
    [[nodiscard]] Result<void> exec(std::string_view sql);
    // Exactly one statement; Errc::database for a syntax error, an empty or a second statement.
    // The Stmt must not outlive this Db.
    [[nodiscard]] Result<Stmt> prepare(std::string_view sql);
    // As prepare, but the statement is prepared once for this connection and kept (by its SQL
    // text): the call sites that run for every report do not pay for parsing it again.
    [[nodiscard]] Result<CachedStmt> cached(std::string_view sql);
    // Inside a transaction: SAVEPOINT; fn; RELEASE, or ROLLBACK TO it when fn fails, so one part
    // of a batch can fail without undoing the others. fn's error is returned.
    [[nodiscard]] Result<void> savepoint(const std::function<Result<void>()>& fn);
    // BEGIN IMMEDIATE; fn; COMMIT (or ROLLBACK when fn fails or throws; the exception goes on).
    // Not nestable: a transaction() inside fn returns Errc::database.
    [[nodiscard]] Result<void> transaction(const std::function<Result<void>()>& fn);
    // Rows changed by the last INSERT, UPDATE or DELETE on this connection.
    int changes() const;

    struct Column {
        std::string_view name;
        std::string_view declaration;  // e.g. "INTEGER NOT NULL DEFAULT 0"
    };
    // Schema migration: adds each column `table` does not have yet (CREATE TABLE IF NOT EXISTS
    // leaves an older table as it was), in one write transaction, so concurrent openers of one
    // file do not race. Names and declarations are the caller's constants. Not inside
    // transaction().
    [[nodiscard]] Result<void> add_missing_columns(std::string_view table,
                                                   std::initializer_list<Column> columns);

  private:
    explicit Db(sqlite3* db) : db_(db) {}
    sqlite3* db_;
    // Finalized before the connection closes (~Db).
    std::unordered_map<std::string, std::unique_ptr<Stmt>> cache_;
};

}  // namespace patchswarm::io
