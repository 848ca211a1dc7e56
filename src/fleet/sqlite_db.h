// Thin RAII wrappers over the SQLite C API for the fleet store: a connection,
// prepared statements kept for reuse, a cursor that resets its statement
// when done, and a write transaction that rolls back unless committed.
// Errors are values carrying SQLite's message. Not thread-safe: a Database
// and its statements belong to one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/result.h"

struct sqlite3;
struct sqlite3_stmt;

namespace custos::fleet::sqlite {

// A bound parameter. Text is copied by SQLite, so temporaries are fine.
using Value = std::variant<std::nullptr_t, std::int64_t, std::string_view>;

class Cursor {
 public:
  Cursor(Cursor&& other) noexcept;
  Cursor& operator=(Cursor&&) = delete;
  ~Cursor();

  // Steps to the next row: true if there is one, false when done.
  Result<bool> Next();
  // Steps until done, for statements that return no rows.
  Status Run();

  bool IsNull(int column) const;
  std::int64_t Int(int column) const;
  std::string Text(int column) const;

 private:
  friend class Statement;
  Cursor(sqlite3_stmt* statement, Error bind_error);
  sqlite3_stmt* statement_;
  Error bind_error_;
};

class Statement {
 public:
  Statement() = default;
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  ~Statement();

  // Binds the parameters (?1, ?2, ... in order) for one use. Bind errors
  // surface from the cursor's first Next/Run. Use one cursor at a time.
  Cursor Bind(std::initializer_list<Value> values);
  Cursor Bind(const std::vector<Value>& values);

 private:
  friend class Database;
  explicit Statement(sqlite3_stmt* statement) : statement_(statement) {}
  sqlite3_stmt* statement_ = nullptr;
};

class Database {
 public:
  // Opens or creates the file. SQLite reads lazily, so a file that is not a
  // database is only noticed by the first statement.
  static Result<Database> Open(const std::filesystem::path& path,
                               std::chrono::milliseconds busy_timeout);
  Database(Database&&) noexcept = default;
  Database& operator=(Database&&) noexcept = default;

  // Runs one or more statements without parameters (schema, pragmas).
  Status Execute(const std::string& sql);
  Result<Statement> Prepare(const std::string& sql);
  // Rows changed by the last INSERT/UPDATE/DELETE on this connection.
  std::int64_t Changes() const;
  sqlite3* handle() const { return db_.get(); }

 private:
  struct Closer {
    void operator()(sqlite3* db) const;
  };
  explicit Database(sqlite3* db) : db_(db) {}
  std::unique_ptr<sqlite3, Closer> db_;
};

// BEGIN IMMEDIATE: takes the write lock up front (waiting up to the busy
// timeout), so a read-then-write transaction cannot fail half-way with
// SQLITE_BUSY. Rolls back on destruction unless committed.
class WriteTransaction {
 public:
  static Result<WriteTransaction> Begin(Database& db);
  WriteTransaction(WriteTransaction&& other) noexcept;
  WriteTransaction& operator=(WriteTransaction&&) = delete;
  ~WriteTransaction();
  Status Commit();

 private:
  explicit WriteTransaction(Database* db) : db_(db) {}
  Database* db_;
};

}  // namespace custos::fleet::sqlite
