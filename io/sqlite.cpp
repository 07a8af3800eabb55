#include "io/sqlite.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <thread>
#include <utility>

namespace patchswarm::io {

namespace {

// How long any statement waits for another connection's lock before it fails.
constexpr std::chrono::milliseconds kBusyTimeout{5000};

std::unexpected<Error> db_error(sqlite3* db, std::string_view what) {
    std::string message{what};
    message += ": ";
    message += db != nullptr ? sqlite3_errmsg(db) : "out of memory";
    return fail(Errc::database, std::move(message));
}

bool only_blanks(std::string_view rest) {
    for (const char c : rest) {
        if (!std::isspace(static_cast<unsigned char>(c)) && c != ';') return false;
    }
    return true;
}

// Reads the single-row answer of a PRAGMA, e.g. "wal" for journal_mode.
Result<std::string> pragma_value(Db& db, std::string_view pragma) {
    auto stmt = db.prepare(pragma);
    if (!stmt) return std::unexpected(stmt.error());
    auto row = stmt->step();
    if (!row) return std::unexpected(row.error());
    return *row ? stmt->column_text(0) : std::string{};
}

}  // namespace

// ---- Stmt ------------------------------------------------------------------------------------

Stmt::Stmt(Stmt&& other) noexcept
    : stmt_(std::exchange(other.stmt_, nullptr)),
      db_(std::exchange(other.db_, nullptr)),
      bind_rc_(std::exchange(other.bind_rc_, SQLITE_OK)) {}

Stmt& Stmt::operator=(Stmt&& other) noexcept {
    if (this != &other) {
        sqlite3_finalize(stmt_);
        stmt_ = std::exchange(other.stmt_, nullptr);
        db_ = std::exchange(other.db_, nullptr);
        bind_rc_ = std::exchange(other.bind_rc_, SQLITE_OK);
    }
    return *this;
}

Stmt::~Stmt() {
    sqlite3_finalize(stmt_);
}

Stmt& Stmt::check_bind(int rc) {
    // bind() chains, so it cannot return an error; keep the first one for step() to report.
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
    return *this;
}

Stmt& Stmt::bind(int index, std::int64_t value) {
    return check_bind(sqlite3_bind_int64(stmt_, index, value));
}

Stmt& Stmt::bind(int index, std::string_view text) {
    // A null data pointer would bind SQL NULL; an empty string must stay an empty string.
    const char* data = text.data() != nullptr ? text.data() : "";
    return check_bind(
        sqlite3_bind_text64(stmt_, index, data, text.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
}

Stmt& Stmt::bind(int index, const std::vector<std::uint8_t>& blob) {
    if (blob.empty()) return check_bind(sqlite3_bind_zeroblob(stmt_, index, 0));
    return check_bind(
        sqlite3_bind_blob64(stmt_, index, blob.data(), blob.size(), SQLITE_TRANSIENT));
}

Stmt& Stmt::bind_null(int index) {
    return check_bind(sqlite3_bind_null(stmt_, index));
}

Result<bool> Stmt::step() {
    if (bind_rc_ != SQLITE_OK) {
        return fail(Errc::database, std::string{"bind: "} + sqlite3_errstr(bind_rc_));
    }
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    // The statement's first words say which one failed (a "database is locked" is otherwise
    // impossible to place); bound values are never part of the SQL text.
    const char* sql = sqlite3_sql(stmt_);
    std::string what = "step";
    if (sql != nullptr) what += " (" + std::string(std::string_view(sql).substr(0, 60)) + ")";
    return db_error(db_, what);
}

Result<void> Stmt::run() {
    while (true) {
        auto row = step();
        if (!row) return std::unexpected(row.error());
        if (!*row) return {};
    }
}

void Stmt::reset() {
    sqlite3_reset(stmt_);
    bind_rc_ = SQLITE_OK;
}

std::int64_t Stmt::column_int(int col) const {
    return sqlite3_column_int64(stmt_, col);
}

std::string Stmt::column_text(int col) const {
    const auto* text = sqlite3_column_text(stmt_, col);
    // The length comes from column_bytes, so text with embedded NULs survives.
    const auto size = static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col));
    if (text == nullptr) return {};
    return std::string{reinterpret_cast<const char*>(text), size};
}

std::vector<std::uint8_t> Stmt::column_blob(int col) const {
    const auto* data = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt_, col));
    const auto size = static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col));
    if (data == nullptr) return {};
    return {data, data + size};
}

bool Stmt::column_is_null(int col) const {
    return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
}

// ---- Db --------------------------------------------------------------------------------------

Result<std::unique_ptr<Db>> Db::open(const std::filesystem::path& path) {
    sqlite3* raw = nullptr;
    const int rc =
        sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    // SQLite hands back a handle even when opening fails; owning it at once closes it either way.
    std::unique_ptr<Db> db{new Db(raw)};
    if (rc != SQLITE_OK) return db_error(raw, "open " + path.string());

    // The timeout first: switching to WAL itself needs a lock another process may hold.
    sqlite3_busy_timeout(raw, static_cast<int>(kBusyTimeout.count()));
    // Switching a new file to WAL needs an exclusive lock, and SQLite answers SQLITE_BUSY at once
    // (without the busy handler) while another process holds the file, as when `token create`
    // runs while `serve` starts: try again within the same bound as every other lock.
    auto mode = pragma_value(*db, "PRAGMA journal_mode=WAL");
    const auto give_up = std::chrono::steady_clock::now() + kBusyTimeout;
    while (!mode && sqlite3_errcode(raw) == SQLITE_BUSY &&
           std::chrono::steady_clock::now() < give_up) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        mode = pragma_value(*db, "PRAGMA journal_mode=WAL");
    }
    if (!mode) return std::unexpected(mode.error());
    const bool in_memory = path.empty() || path == ":memory:";
    if (*mode != "wal" && !in_memory) {
        return fail(Errc::database,
                    "open " + path.string() + ": cannot enable WAL (journal mode " + *mode + ")");
    }
    if (auto r = db->exec("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"); !r) {
        return std::unexpected(r.error());
    }
    return db;
}

// close_v2: a Stmt that outlives its Db keeps the connection alive until it is finalized,
// instead of leaving a dangling handle.
Db::~Db() {
    cache_.clear();
    sqlite3_close_v2(db_);
}

int Db::changes() const {
    return sqlite3_changes(db_);
}

Result<void> Db::add_missing_columns(std::string_view table,
                                     std::initializer_list<Column> columns) {
    // In a write transaction: two processes opening the same file at once (serve starting while
    // `token create` runs) must not both see a column missing and both add it.
    return transaction([&]() -> Result<void> {
        std::vector<std::string> present;
        auto stmt = prepare("SELECT name FROM pragma_table_info(?1)");
        if (!stmt) return std::unexpected(stmt.error());
        stmt->bind(1, table);
        for (;;) {
            auto row = stmt->step();
            if (!row) return std::unexpected(row.error());
            if (!*row) break;
            present.push_back(stmt->column_text(0));
        }
        for (const auto& c : columns) {
            if (std::find(present.begin(), present.end(), c.name) != present.end()) continue;
            if (auto ok = exec("ALTER TABLE " + std::string(table) + " ADD COLUMN " +
                               std::string(c.name) + " " + std::string(c.declaration));
                !ok) {
                return ok;
            }
        }
        return {};
    });
}

Result<void> Db::exec(std::string_view sql) {
    char* message = nullptr;
    const int rc = sqlite3_exec(db_, std::string{sql}.c_str(), nullptr, nullptr, &message);
    if (rc == SQLITE_OK) return {};
    std::string text = message != nullptr ? message : sqlite3_errstr(rc);
    sqlite3_free(message);
    return fail(Errc::database, "exec: " + text);
}

Result<Stmt> Db::prepare(std::string_view sql) {
    if (only_blanks(sql)) return fail(Errc::database, "prepare: empty statement");
    sqlite3_stmt* raw = nullptr;
    const char* tail = nullptr;
    const int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &raw, &tail);
    Stmt stmt{raw, db_};
    if (rc != SQLITE_OK) return db_error(db_, "prepare");
    if (raw == nullptr) return fail(Errc::database, "prepare: empty statement");
    // Silently dropping a second statement would hide a bug at the call site.
    const auto used = static_cast<std::size_t>(tail - sql.data());
    if (!only_blanks(sql.substr(used)))
        return fail(Errc::database, "prepare: more than one statement");
    return stmt;
}

Result<CachedStmt> Db::cached(std::string_view sql) {
    const std::string key(sql);
    auto it = cache_.find(key);
    if (it == cache_.end()) {
        auto stmt = prepare(sql);
        if (!stmt) return std::unexpected(stmt.error());
        it = cache_.emplace(key, std::make_unique<Stmt>(std::move(*stmt))).first;
    }
    Stmt& stmt = *it->second;
    stmt.reset();
    sqlite3_clear_bindings(stmt.stmt_);
    return CachedStmt(stmt);
}

Result<void> Db::savepoint(const std::function<Result<void>()>& fn) {
    if (auto r = exec("SAVEPOINT part"); !r) return r;
    Result<void> result;
    try {
        result = fn();
    } catch (...) {
        (void)exec("ROLLBACK TO part");
        (void)exec("RELEASE part");
        throw;
    }
    if (!result) {
        // An error that ended the whole transaction (SQLITE_FULL) leaves no savepoint to undo.
        if (sqlite3_get_autocommit(db_) == 0) {
            (void)exec("ROLLBACK TO part");
            (void)exec("RELEASE part");
        }
        return result;
    }
    if (auto r = exec("RELEASE part"); !r) return r;
    return {};
}

Result<void> Db::transaction(const std::function<Result<void>()>& fn) {
    if (auto r = exec("BEGIN IMMEDIATE"); !r) return r;
    // Some errors (e.g. SQLITE_FULL) already roll back; a second ROLLBACK would only add noise.
    auto rollback = [this] {
        if (sqlite3_get_autocommit(db_) == 0) (void)exec("ROLLBACK");
    };
    Result<void> result;
    try {
        result = fn();
    } catch (...) {
        rollback();
        throw;
    }
    if (!result) {
        rollback();
        return result;
    }
    if (auto r = exec("COMMIT"); !r) {
        rollback();
        return r;
    }
    return {};
}

}  // namespace patchswarm::io
