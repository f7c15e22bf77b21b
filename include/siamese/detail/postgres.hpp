#pragma once

// A thin RAII layer over libpq, for the PostgreSQL gallery store: one connection, statements
// with binary parameters, notifications, binary COPY out, and failures turned into the
// library's typed errors naming the server by its masked URL (never its password).

#include <siamese/detail/format.hpp>
#include <siamese/detail/postgres_url.hpp>
#include <siamese/errors.hpp>

#include <libpq-fe.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace siamese::detail::postgres {

/// How a failed command ended: the server said no (an SQL error, with its SQLSTATE), or the
/// connection is gone (the outcome of a commit in flight is then unknown).
enum class Failure { sql, connection };

/// Thrown inside this layer and turned into the library's errors by the store.
class CommandFailed : public GalleryError {
 public:
  CommandFailed(Failure failure, std::string sqlstate, const std::string& message)
      : GalleryError(message), failure(failure), sqlstate(std::move(sqlstate)) {}
  Failure failure;
  std::string sqlstate;  ///< "" for a lost connection
};

/// A result of one command; values are read as bytes (binary results) or text.
class Result {
 public:
  explicit Result(PGresult* result) : result_(result) {}
  int rows() const { return PQntuples(result_.get()); }
  bool is_null(int row, int column) const { return PQgetisnull(result_.get(), row, column) != 0; }
  std::string text(int row, int column) const {
    return std::string(PQgetvalue(result_.get(), row, column), static_cast<std::size_t>(PQgetlength(result_.get(), row, column)));
  }
  /// A bigint from a text result.
  std::int64_t integer(int row, int column) const { return std::stoll(text(row, column)); }
  /// Rows the command changed (INSERT, UPDATE, DELETE).
  std::int64_t changed() const {
    const char* count = PQcmdTuples(result_.get());
    return count[0] == '\0' ? 0 : std::stoll(count);
  }

 private:
  struct Clear {
    void operator()(PGresult* result) const { PQclear(result); }
  };
  std::unique_ptr<PGresult, Clear> result_;
};

/// A statement's parameters: text values, bytes (bytea) and NULLs, sent in the binary format
/// where that matters (bytea), as text otherwise.
class Parameters {
 public:
  Parameters& text(std::string value) { return add(std::move(value), 0); }
  Parameters& integer(std::int64_t value) { return add(std::to_string(value), 0); }
  Parameters& bytes(const void* data, std::size_t size) { return add(std::string(static_cast<const char*>(data), size), 1); }
  Parameters& null() {
    values_.emplace_back();
    formats_.push_back(0);
    nulls_.push_back(true);
    return *this;
  }
  int size() const { return static_cast<int>(values_.size()); }

  /// The pointer arrays libpq takes; valid while this object lives unchanged.
  struct Arrays {
    std::vector<const char*> values;
    std::vector<int> lengths, formats;
  };
  Arrays arrays() const {
    Arrays out;
    for (std::size_t i = 0; i < values_.size(); ++i) {
      out.values.push_back(nulls_[i] ? nullptr : values_[i].data());
      out.lengths.push_back(static_cast<int>(values_[i].size()));
      out.formats.push_back(formats_[i]);
    }
    return out;
  }

 private:
  Parameters& add(std::string value, int format) {
    values_.push_back(std::move(value));
    formats_.push_back(format);
    nulls_.push_back(false);
    return *this;
  }
  std::vector<std::string> values_;
  std::vector<int> formats_;
  std::vector<bool> nulls_;
};

/// One connection to a server. Not to be shared across fork(): each process opens its own.
class Connection {
 public:
  /// Connects to `url` (a postgresql:// URL; libpq's PG* environment variables, .pgpass,
  /// PGPASSFILE and sslmode apply). Throws GalleryLoginError when the server refuses the
  /// login, GalleryUnavailableError when it cannot be reached; both name the masked URL.
  explicit Connection(std::string url) : url_(std::move(url)), name_(masked(url_)) { connect(); }

  /// The URL with its password masked.
  const std::string& name() const { return name_; }

  bool is_open() const { return connection_ && PQstatus(connection_.get()) == CONNECTION_OK; }

  /// Drops the connection (if any) and connects again. Throws as the constructor.
  void reconnect() {
    connection_.reset();
    connect();
  }

  /// Runs `sql` with `parameters` ($1, $2...); text results. Throws CommandFailed.
  Result run(const std::string& sql, const Parameters& parameters = {}) {
    const auto arrays = parameters.arrays();
    PGresult* result = PQexecParams(connection_.get(), sql.c_str(), parameters.size(), nullptr, arrays.values.data(),
                                    arrays.lengths.data(), arrays.formats.data(), 0);
    return checked(result, sql);
  }

  /// Runs a statement, or several separated by semicolons (without parameters, in one round
  /// trip); returns the last one's result (text).
  Result execute(const std::string& sql) { return checked(PQexec(connection_.get(), sql.c_str()), sql); }

  /// Runs `COPY (...) TO STDOUT (FORMAT binary)` and hands each row's fields to `row`
  /// (pointers into a buffer valid during the call; a null pointer for NULL). Throws
  /// CommandFailed, GalleryError for a stream that breaks the binary COPY format.
  void copy_out(const std::string& copy_sql, const std::function<void(const std::vector<std::pair<const char*, int>>&)>& row) {
    checked(PQexec(connection_.get(), copy_sql.c_str()), copy_sql, PGRES_COPY_OUT);
    std::vector<std::pair<const char*, int>> fields;
    bool header = true;
    for (;;) {
      char* buffer = nullptr;
      const int length = PQgetCopyData(connection_.get(), &buffer, 0);
      if (length == -1) break;
      if (length == -2) throw lost("reading rows");
      std::unique_ptr<char, decltype(&PQfreemem)> owned(buffer, PQfreemem);
      const char* at = buffer;
      const char* end = buffer + length;
      if (header) {  // "PGCOPY\n\377\r\n\0", flags, extension length (and its bytes)
        if (length < 19 || std::memcmp(at, "PGCOPY\n\377\r\n\0", 11) != 0) throw bad_stream();
        at += 15;
        at += 4 + read_int32(at);
        header = false;
        if (at > end) throw bad_stream();
        if (at == end) continue;
      }
      const int count = static_cast<std::int16_t>(read_int16(at));
      at += 2;
      if (count == -1) continue;  // the trailer
      fields.clear();
      for (int f = 0; f < count; ++f) {
        if (end - at < 4) throw bad_stream();
        const auto size = static_cast<std::int32_t>(read_int32(at));
        at += 4;
        if (size < -1 || end - at < std::max(size, 0)) throw bad_stream();
        fields.emplace_back(size < 0 ? nullptr : at, std::max(size, 0));
        at += std::max(size, 0);
      }
      row(fields);
    }
    checked(PQgetResult(connection_.get()), copy_sql);
    while (PGresult* rest = PQgetResult(connection_.get())) PQclear(rest);
  }

  /// Reads what the server sent without waiting and returns how many notifications (on any
  /// channel this connection listens on) arrived. Returns std::nullopt when the connection is gone.
  std::optional<std::size_t> notifications() {
    if (!is_open() || PQconsumeInput(connection_.get()) == 0 || PQstatus(connection_.get()) != CONNECTION_OK) return std::nullopt;
    std::size_t count = 0;
    for (; PGnotify* notify = PQnotifies(connection_.get()); ++count) PQfreemem(notify);
    return count;
  }

  /// The value of a big-endian binary int8 or int4 field.
  static std::int64_t read_int64(const char* at) { return static_cast<std::int64_t>(read_be(at, 8)); }
  static std::uint32_t read_int32(const char* at) { return static_cast<std::uint32_t>(read_be(at, 4)); }
  static std::uint16_t read_int16(const char* at) { return static_cast<std::uint16_t>(read_be(at, 2)); }

 private:
  static std::uint64_t read_be(const char* at, int bytes) {
    std::uint64_t value = 0;
    for (int i = 0; i < bytes; ++i) value = (value << 8) | static_cast<unsigned char>(at[i]);
    return value;
  }

  void connect() {
    connection_.reset(PQconnectdb(url_.c_str()));
    if (!connection_) throw GalleryUnavailableError("gallery server '" + name_ + "': out of memory connecting");
    if (PQstatus(connection_.get()) == CONNECTION_OK) {
      PQsetNoticeProcessor(connection_.get(), [](void*, const char*) {}, nullptr);  // no NOTICE lines on the caller's stderr
      return;
    }
    const std::string reason = first_line(PQerrorMessage(connection_.get()));
    const bool refused = PQconnectionNeedsPassword(connection_.get()) != 0 || reason.find("authentication failed") != std::string::npos ||
                         reason.find("pg_hba.conf") != std::string::npos || reason.find("password") != std::string::npos ||
                         reason.find("does not exist") != std::string::npos;
    connection_.reset();
    const auto message = "gallery server '" + name_ + "' " + (refused ? "refused the login: " : "cannot be reached: ") + reason;
    if (refused) throw GalleryLoginError(message);
    throw GalleryUnavailableError(message);
  }

  static std::string first_line(const char* text) {
    std::string line = text != nullptr ? text : "";
    line = line.substr(0, line.find('\n'));
    return printable(line);
  }

  CommandFailed lost(const std::string& what) const {
    return CommandFailed(Failure::connection, "",
                         "gallery server '" + name_ + "': connection lost " + what + ": " + first_line(PQerrorMessage(connection_.get())));
  }
  CommandFailed bad_stream() const {
    return CommandFailed(Failure::sql, "", "gallery server '" + name_ + "' sent rows that break the binary COPY format");
  }

  // Throws CommandFailed unless `result` has the status a command of its kind ends with.
  Result checked(PGresult* raw, const std::string& sql, ExecStatusType wanted = PGRES_COMMAND_OK) {
    Result result(raw);
    const auto status = raw != nullptr ? PQresultStatus(raw) : PGRES_FATAL_ERROR;
    if (status == wanted || (wanted == PGRES_COMMAND_OK && status == PGRES_TUPLES_OK)) return result;
    if (raw == nullptr || PQstatus(connection_.get()) != CONNECTION_OK) throw lost("running '" + sql.substr(0, 80) + "'");
    const char* state = PQresultErrorField(raw, PG_DIAG_SQLSTATE);
    const std::string sqlstate = state != nullptr ? state : "";
    // Class 08 and the shutdowns of class 57P: the server went away under the command.
    const bool gone = sqlstate.rfind("08", 0) == 0 || sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03";
    throw CommandFailed(gone ? Failure::connection : Failure::sql, sqlstate,
                        "gallery server '" + name_ + "': cannot run '" + sql.substr(0, 120) + "': " +
                            first_line(PQresultErrorMessage(raw)) + (sqlstate.empty() ? "" : " (SQLSTATE " + sqlstate + ")"));
  }

  struct Finish {
    void operator()(PGconn* connection) const { PQfinish(connection); }
  };
  std::string url_;
  std::string name_;
  std::unique_ptr<PGconn, Finish> connection_;
};

}  // namespace siamese::detail::postgres
