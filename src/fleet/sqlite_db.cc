#include "fleet/sqlite_db.h"

#include <sqlite3.h>

#include <utility>

namespace custos::fleet::sqlite {
namespace {

Error SqliteError(sqlite3* db, int code) {
  // The connection's message is more specific ("no such table: x") when it
  // belongs to this code; errstr is the fallback.
  std::string message =
      db && sqlite3_errcode(db) == code ? sqlite3_errmsg(db) : sqlite3_errstr(code);
  return Error{message + " (sqlite code " + std::to_string(code) + ")"};
}

Status BindAll(sqlite3_stmt* statement, const Value* values, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    int index = static_cast<int>(i) + 1;
    int code = SQLITE_OK;
    if (const auto* number = std::get_if<std::int64_t>(&values[i])) {
      code = sqlite3_bind_int64(statement, index, *number);
    } else if (const auto* text = std::get_if<std::string_view>(&values[i])) {
      code = sqlite3_bind_text64(statement, index, text->data(), text->size(), SQLITE_TRANSIENT,
                                 SQLITE_UTF8);
    } else {
      code = sqlite3_bind_null(statement, index);
    }
    if (code != SQLITE_OK) return SqliteError(sqlite3_db_handle(statement), code);
  }
  return {};
}

}  // namespace

Cursor::Cursor(sqlite3_stmt* statement, Error bind_error)
    : statement_(statement), bind_error_(std::move(bind_error)) {}

Cursor::Cursor(Cursor&& other) noexcept
    : statement_(std::exchange(other.statement_, nullptr)),
      bind_error_(std::move(other.bind_error_)) {}

Cursor::~Cursor() {
  if (statement_ == nullptr) return;
  // A statement left mid-way would hold its read snapshot open and keep WAL
  // checkpoints from finishing.
  sqlite3_reset(statement_);
  sqlite3_clear_bindings(statement_);
}

Result<bool> Cursor::Next() {
  if (!bind_error_.message.empty()) return bind_error_;
  int code = sqlite3_step(statement_);
  if (code == SQLITE_ROW) return true;
  if (code == SQLITE_DONE) return false;
  return SqliteError(sqlite3_db_handle(statement_), code);
}

Status Cursor::Run() {
  for (;;) {
    auto row = Next();
    if (!row) return row.error();
    if (!*row) return {};
  }
}

bool Cursor::IsNull(int column) const {
  return sqlite3_column_type(statement_, column) == SQLITE_NULL;
}

std::int64_t Cursor::Int(int column) const { return sqlite3_column_int64(statement_, column); }

std::string Cursor::Text(int column) const {
  const auto* text = sqlite3_column_text(statement_, column);
  if (text == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<std::size_t>(sqlite3_column_bytes(statement_, column)));
}

Statement::Statement(Statement&& other) noexcept
    : statement_(std::exchange(other.statement_, nullptr)) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(statement_);
    statement_ = std::exchange(other.statement_, nullptr);
  }
  return *this;
}

Statement::~Statement() { sqlite3_finalize(statement_); }

Cursor Statement::Bind(std::initializer_list<Value> values) {
  auto bound = BindAll(statement_, values.begin(), values.size());
  return Cursor(statement_, bound ? Error{} : bound.error());
}

Cursor Statement::Bind(const std::vector<Value>& values) {
  auto bound = BindAll(statement_, values.data(), values.size());
  return Cursor(statement_, bound ? Error{} : bound.error());
}

void Database::Closer::operator()(sqlite3* db) const { sqlite3_close_v2(db); }

Result<Database> Database::Open(const std::filesystem::path& path,
                                std::chrono::milliseconds busy_timeout) {
  sqlite3* raw = nullptr;
  int flags =
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
  int code = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  Database db(raw);  // owns the handle even when opening failed
  if (code != SQLITE_OK) return SqliteError(raw, code);
  sqlite3_busy_timeout(raw, static_cast<int>(busy_timeout.count()));
  return db;
}

Status Database::Execute(const std::string& sql) {
  char* message = nullptr;
  int code = sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &message);
  if (code == SQLITE_OK) return {};
  std::string text = message ? message : sqlite3_errstr(code);
  sqlite3_free(message);
  return Error{text + " (sqlite code " + std::to_string(code) + ")"};
}

Result<Statement> Database::Prepare(const std::string& sql) {
  sqlite3_stmt* statement = nullptr;
  int code = sqlite3_prepare_v3(db_.get(), sql.c_str(), static_cast<int>(sql.size() + 1),
                                SQLITE_PREPARE_PERSISTENT, &statement, nullptr);
  if (code != SQLITE_OK) return SqliteError(db_.get(), code);
  return Statement(statement);
}

std::int64_t Database::Changes() const { return sqlite3_changes64(db_.get()); }

Result<WriteTransaction> WriteTransaction::Begin(Database& db) {
  CUSTOS_TRY(db.Execute("BEGIN IMMEDIATE"));
  return WriteTransaction(&db);
}

WriteTransaction::WriteTransaction(WriteTransaction&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)) {}

WriteTransaction::~WriteTransaction() {
  // After some errors (SQLITE_FULL, IOERR) SQLite has rolled back already;
  // then there is no transaction left and ROLLBACK is skipped.
  if (db_ != nullptr && !sqlite3_get_autocommit(db_->handle())) {
    (void)db_->Execute("ROLLBACK");
  }
}

Status WriteTransaction::Commit() {
  CUSTOS_TRY(db_->Execute("COMMIT"));
  db_ = nullptr;
  return {};
}

}  // namespace custos::fleet::sqlite
