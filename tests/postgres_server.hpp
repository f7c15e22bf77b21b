#pragma once

// A PostgreSQL 15 server of the test's own (tools/scratch-postgres.sh: initdb and pg_ctl in a
// temporary folder, a Unix socket, the `postgres` account when the tests run as root). Tests
// that need one skip, with one clear line, where Debian's postgresql-15 is not installed.

#include "fixtures.hpp"

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <pwd.h>
#include <stdexcept>
#include <string>
#include <unistd.h>

namespace fixtures {

class PostgresServer {
 public:
  /// Why a server cannot be started here, or std::nullopt.
  static std::optional<std::string> unavailable() {
    if (!std::filesystem::exists("/usr/lib/postgresql/15/bin/pg_ctl")) {
      return "PostgreSQL 15 server binaries not found (Debian: apt-get install postgresql-15)";
    }
    if (geteuid() == 0 && getpwnam("postgres") == nullptr) return "running as root without a 'postgres' account to run the server";
    return std::nullopt;
  }

  /// Creates and starts a server: superuser `postgres` (trusted), role `secret` with the
  /// password "s3cret pass", database `gallery`. With a `tls_port`, it also listens on
  /// 127.0.0.1:tls_port, TLS only, with a self-signed certificate (certificate()).
  explicit PostgresServer(int tls_port = 0) : port_(tls_port > 0 ? tls_port : 5432), tls_(tls_port > 0) { start(); }

  ~PostgresServer() {
    try {
      stop();
    } catch (const std::exception&) {
    }
  }

  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  /// A URL for `database` as `user` (with `password`, already URL-encoded, when given).
  std::string url(const std::string& database = "gallery", const std::string& user = "postgres",
                  const std::string& password = "") const {
    std::string socket;
    for (const char c : dir_.path().string()) socket += c == '/' ? std::string("%2F") : std::string(1, c);
    return "postgresql://" + user + (password.empty() ? "" : ":" + password) + "@" + socket + ":" + std::to_string(port_) + "/" +
           database;
  }

  /// A URL over TCP to the TLS listener, with `parameters` ("sslmode=require").
  std::string tcp_url(const std::string& database, const std::string& parameters) const {
    return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" + database + "?" + parameters;
  }

  /// The server's self-signed certificate (with a `tls_port`).
  std::string certificate() const { return (dir_ / "server.crt").string(); }

  void start() {
    script("start", tls_ ? "tls " + std::to_string(port_) : "");
    running_ = true;
  }

  void stop() {
    if (!running_) return;
    running_ = false;
    script("stop");
  }

  /// Runs `sql` as the superuser in `database`; throws when it fails.
  void psql(const std::string& sql, const std::string& database = "postgres") const {
    const auto file = dir_ / "statement.sql";
    std::ofstream(file) << sql;
    script("psql", database + " < " + file.string());
  }

 private:
  void script(const std::string& command, const std::string& rest = "") const {
    const std::string line = "bash " SIAMESE_SOURCE_DIR "/tools/scratch-postgres.sh " + command + " " + dir_.path().string() + " " + rest;
    if (std::system(line.c_str()) != 0) throw std::runtime_error("test PostgreSQL server: '" + line + "' failed");
  }

  TempDir dir_;
  int port_;
  bool tls_;
  bool running_ = false;
};

}  // namespace fixtures
