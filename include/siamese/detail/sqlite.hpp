#pragma once

// A thin RAII layer over SQLite's C API, for the gallery store: one connection, prepared
// statements, and errors turned into the library's typed errors naming the file.

#include <siamese/errors.hpp>

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>

namespace siamese::detail::sqlite {

/// Throws the error that fits SQLite's result `code`: GalleryBusyError when the database is
/// locked, GalleryError otherwise; `what` says what was being done, `file` names the database.
[[noreturn]] inline void fail(int code, const std::string& what, const std::string& file, sqlite3* db = nullptr) {
  const std::string reason = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(code);
  const std::string message = "gallery database '" + file + "': " + what + ": " + reason;
  const int primary = code & 0xff;
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) throw GalleryBusyError(message);
  if (primary == SQLITE_NOTADB || primary == SQLITE_CORRUPT) {
    throw GalleryError("gallery database '" + file + "' is damaged or not a database (" + reason + ")");
  }
  throw GalleryError(message);
}

/// A prepared statement; step() runs it one row at a time.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& sql, std::string file) : db_(db), file_(std::move(file)) {
    sqlite3_stmt* statement = nullptr;
    const int code = sqlite3_prepare_v2(db, sql.c_str(), static_cast<int>(sql.size()), &statement, nullptr);
    if (code != SQLITE_OK) fail(code, "cannot prepare '" + sql + "'", file_, db);
    statement_.reset(statement);
  }

  Statement& bind(int index, std::int64_t value) {
    check(sqlite3_bind_int64(statement_.get(), index, value), "bind");
    return *this;
  }
  Statement& bind(int index, const std::string& text) {
    check(sqlite3_bind_text(statement_.get(), index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT), "bind");
    return *this;
  }
  Statement& bind_blob(int index, const void* data, std::size_t size) {
    check(sqlite3_bind_blob64(statement_.get(), index, data, size, SQLITE_TRANSIENT), "bind");
    return *this;
  }
  Statement& bind_null(int index) {
    check(sqlite3_bind_null(statement_.get(), index), "bind");
    return *this;
  }

  /// Runs to the next row: true when there is one, false when the statement is done.
  bool step() {
    const int code = sqlite3_step(statement_.get());
    if (code == SQLITE_ROW) return true;
    if (code == SQLITE_DONE) return false;
    fail(code, std::string("cannot run '") + sqlite3_sql(statement_.get()) + "'", file_, db_);
  }

  /// Runs a statement that returns no rows, then makes it ready to run again.
  void run() {
    step();
    reset();
  }

  void reset() {
    sqlite3_reset(statement_.get());
    sqlite3_clear_bindings(statement_.get());
  }

  std::int64_t integer(int column) const { return sqlite3_column_int64(statement_.get(), column); }
  bool is_null(int column) const { return sqlite3_column_type(statement_.get(), column) == SQLITE_NULL; }
  std::string text(int column) const {
    const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(statement_.get(), column));
    return data != nullptr ? std::string(data, static_cast<std::size_t>(sqlite3_column_bytes(statement_.get(), column))) : std::string();
  }
  /// The bytes of a BLOB column; valid until the next step() or reset().
  std::pair<const void*, std::size_t> blob(int column) const {
    const void* data = sqlite3_column_blob(statement_.get(), column);
    return {data, static_cast<std::size_t>(sqlite3_column_bytes(statement_.get(), column))};
  }

 private:
  struct Finalizer {
    void operator()(sqlite3_stmt* statement) const { sqlite3_finalize(statement); }
  };
  void check(int code, const char* what) {
    if (code != SQLITE_OK) fail(code, what, file_, db_);
  }
  sqlite3* db_;
  std::string file_;
  std::unique_ptr<sqlite3_stmt, Finalizer> statement_;
};

/// One connection to a database file. Not to be shared across fork(): each process opens its own.
class Connection {
 public:
  /// Opens `file` read-write, creating it only when `create` is true. Waits up to
  /// `busy_timeout` for another process's lock before a statement reports the database busy.
  ///
  /// Every database is treated as coming from an untrusted source, as SQLite advises for files
  /// people copy and share (sqlite.org/security.html): defensive mode (no writable schema, no
  /// direct page writes), an untrusted schema (functions with side effects and virtual tables
  /// cannot run from triggers or views), and every cell's size checked as it is read. The
  /// caller still checks that the schema is the one it expects before reading a row.
  Connection(const std::string& file, bool create, std::chrono::milliseconds busy_timeout) : file_(file) {
    sqlite3* db = nullptr;
    const int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX;
    const int code = sqlite3_open_v2(file.c_str(), &db, flags, nullptr);
    db_.reset(db);  // closed even when the open failed
    if (code != SQLITE_OK) fail(code, "cannot open", file_, db);
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, static_cast<int>(busy_timeout.count()));
    configure(SQLITE_DBCONFIG_DEFENSIVE, 1, "defensive mode");
    configure(SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, "an untrusted schema");
    execute("PRAGMA cell_size_check = ON");
  }

  Statement prepare(const std::string& sql) { return Statement(db_.get(), sql, file_); }

  /// Runs one or more statements that return no rows.
  void execute(const std::string& sql) {
    char* message = nullptr;
    const int code = sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &message);
    std::unique_ptr<char, decltype(&sqlite3_free)> owned(message, sqlite3_free);
    if (code != SQLITE_OK) fail(code, "cannot run '" + sql + "'", file_, db_.get());
  }

  /// The integer the query's first row starts with (0 when it returns no row).
  std::int64_t integer(const std::string& sql) {
    auto statement = prepare(sql);
    return statement.step() ? statement.integer(0) : 0;
  }

  /// Runs `body` inside BEGIN IMMEDIATE ... COMMIT: the write lock is taken first, so two
  /// writers never deadlock upgrading a read lock. Rolled back when `body` throws. A database
  /// still locked after the busy timeout is tried `attempts` times in all, with a growing pause,
  /// then GalleryBusyError.
  template <class Body>
  auto write_transaction(int attempts, Body body) {
    for (int attempt = 1;; ++attempt) {
      try {
        execute("BEGIN IMMEDIATE");
        break;
      } catch (const GalleryBusyError&) {
        if (attempt >= attempts) throw;
        std::this_thread::sleep_for(std::chrono::milliseconds(50 * attempt));
      }
    }
    return finish_transaction(body);
  }

  /// Runs `body` inside one read transaction: every query in it sees the same snapshot.
  template <class Body>
  auto read_transaction(Body body) {
    execute("BEGIN");
    return finish_transaction(body);
  }

  const std::string& file() const { return file_; }

 private:
  void configure(int option, int value, const char* what) {
    int now = -1;
    const int code = sqlite3_db_config(db_.get(), option, value, &now);
    if (code != SQLITE_OK || now != value) fail(code == SQLITE_OK ? SQLITE_ERROR : code, std::string("cannot set ") + what, file_, db_.get());
  }

  template <class Body>
  auto finish_transaction(Body& body) {
    try {
      auto result = body();
      execute("COMMIT");
      return result;
    } catch (...) {
      sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }

  struct Closer {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
  };
  std::string file_;
  std::unique_ptr<sqlite3, Closer> db_;
};

}  // namespace siamese::detail::sqlite
