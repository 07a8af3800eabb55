// A thin RAII wrapper around SQLite. One Db per thread; statements are prepared per call site.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace patchswarm {

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

    // true: a row is available; false: done. Errc::database on error.
    [[nodiscard]] Result<bool> step();
    // step() until done, for statements that return no rows.
    [[nodiscard]] Result<void> run();
    void reset();

    std::int64_t column_int(int col) const;
    std::string column_text(int col) const;
    std::vector<std::uint8_t> column_blob(int col) const;
    bool column_is_null(int col) const;

private:
    friend class Db;
    Stmt(sqlite3_stmt* stmt, sqlite3* db) : stmt_(stmt), db_(db) {}
    sqlite3_stmt* stmt_ = nullptr;
    sqlite3* db_ = nullptr;
};

class Db {
public:
    // Opens (creating if needed) with WAL journal, synchronous=NORMAL... FULL for durability
    // of state transitions, busy_timeout 5 s, foreign keys on.
    [[nodiscard]] static Result<std::unique_ptr<Db>> open(const std::filesystem::path& path);
    ~Db();

    [[nodiscard]] Result<void> exec(std::string_view sql);
    [[nodiscard]] Result<Stmt> prepare(std::string_view sql);
    // BEGIN IMMEDIATE; fn; COMMIT (or ROLLBACK when fn fails).
    [[nodiscard]] Result<void> transaction(const std::function<Result<void>()>& fn);

private:
    explicit Db(sqlite3* db) : db_(db) {}
    sqlite3* db_;
};

}  // namespace patchswarm
