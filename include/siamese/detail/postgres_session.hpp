#pragma once

// A gallery store's connection to its server, kept usable: reconnecting after a loss (and
// telling the store's owner), the notifications that say another node committed, transactions
// with retries, and this layer's failures turned into the library's typed errors.

#include <siamese/detail/postgres.hpp>
#include <siamese/errors.hpp>
#include <siamese/gallery_store.hpp>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <utility>

namespace siamese::detail::postgres {

/// One connection with the session settings a store needs (a lock timeout, no parallel
/// workers, LISTEN on `channel`), opened again when it is lost. Not thread-safe: its owner
/// holds a lock around every call.
class Session {
 public:
  /// How long a session that lost its server waits between attempts to connect again, so that
  /// a node identifying from memory does not knock on a dead server at every probe.
  static constexpr std::chrono::milliseconds reconnect_interval{250};

  /// Connects to `url`. Throws GalleryLoginError or GalleryUnavailableError (Connection).
  Session(const std::string& url, std::string channel, GalleryStoreOptions options)
      : db_(url), channel_(std::move(channel)), options_(std::move(options)) {
    prepare();
  }

  Connection& connection() { return db_; }
  const std::string& name() const { return db_.name(); }

  /// How many times the connection was opened again after a loss.
  std::int64_t reconnections() const { return reconnections_; }

  /// Tells GalleryStoreOptions::on_event, naming the server.
  void tell(const std::string& what) const {
    if (options_.on_event) options_.on_event("gallery server '" + name() + "': " + what);
  }

  /// Whether a commit may have happened since the last forget_announcements(): a notification
  /// arrived (read without a round trip), or the connection was lost and opened again. While
  /// the server cannot be reached, false (tried again at most every reconnect_interval).
  bool announced() {
    if (pending_) return true;
    if (const auto arrived = db_.notifications()) {
      pending_ = *arrived > 0;
      return pending_;
    }
    try_reconnect("the connection was lost");
    return pending_;
  }

  /// Forgets what was announced so far: called before a read, so that what arrives later is
  /// newer than what the read sees.
  void forget_announcements() {
    if (db_.notifications()) pending_ = false;
  }

  /// Whether the connection was opened again since the last call.
  bool take_reconnected() { return std::exchange(reconnected_, false); }

  /// Runs `body` on an open connection (opened again if it was lost), turning CommandFailed
  /// into GalleryUnavailableError (the connection went) or GalleryError.
  template <class Body>
  auto guarded(Body body) -> decltype(body()) {
    ensure_connected();
    try {
      return body();
    } catch (const CommandFailed& e) {
      if (e.failure == Failure::connection) throw GalleryUnavailableError(e.what() + std::strlen("siamese: "));
      throw GalleryError(e.what() + std::strlen("siamese: "));
    }
  }

  /// Runs `body` in one REPEATABLE READ, read-only transaction: one snapshot.
  template <class Body>
  auto read_transaction(Body body) -> decltype(body()) {
    db_.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    try {
      auto result = body();
      db_.execute("COMMIT");
      return result;
    } catch (...) {
      rollback_quietly();
      throw;
    }
  }

  /// Runs `begin` (a BEGIN and the statements that take the store's write lock, in one round
  /// trip), then body(its result), then COMMIT. A lock still taken after the lock timeout, or a
  /// connection lost before the commit, is tried again, `attempts` times in all, with a
  /// growing pause: then GalleryBusyError or GalleryUnavailableError. A connection lost during
  /// the commit is tried again only when the body is `idempotent`; otherwise it is a
  /// GalleryUnavailableError saying the outcome is unknown.
  template <class Body>
  auto write_transaction(const std::string& begin, bool idempotent, Body body) -> decltype(body(std::declval<const Result&>())) {
    for (int attempt = 1;; ++attempt) {
      bool committing = false;
      const auto pause = [&] { std::this_thread::sleep_for(std::chrono::milliseconds(250 * attempt)); };
      try {
        ensure_connected();
        auto result = body(db_.execute(begin));
        committing = true;
        db_.execute("COMMIT");
        return result;
      } catch (const CommandFailed& e) {
        rollback_quietly();
        const std::string message = e.what() + std::strlen("siamese: ");
        const bool busy = e.sqlstate == "55P03" || e.sqlstate == "40001" || e.sqlstate == "40P01";
        if (e.failure == Failure::connection && committing && !idempotent) {
          throw GalleryUnavailableError(message + "; the connection was lost during the commit, so whether the change was made is "
                                                  "unknown: read the gallery before trying again");
        }
        if (e.failure != Failure::connection && !busy) throw GalleryError(message);
        if (attempt >= options_.attempts) {
          const auto tried = message + " (tried " + std::to_string(attempt) + " times)";
          if (busy) throw GalleryBusyError(tried);
          throw GalleryUnavailableError(tried);
        }
        pause();
      } catch (const GalleryUnavailableError&) {
        if (attempt >= options_.attempts) throw;
        pause();
      } catch (...) {
        rollback_quietly();
        throw;
      }
    }
  }

 private:
  // In one round trip: how long to wait for a writer's lock; no parallel workers (a store's
  // queries are small, and a worker's start costs more than they do); the channel.
  void prepare() {
    db_.execute("SET lock_timeout = " + std::to_string(options_.busy_timeout.count()) +
                "; SET max_parallel_workers_per_gather = 0; LISTEN " + channel_);
  }

  // Connects again if the connection is gone, at most every reconnect_interval; tells
  // on_event what happened (a failure once, until it succeeds).
  void try_reconnect(const std::string& why) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_attempt_ < reconnect_interval) return;
    last_attempt_ = now;
    try {
      db_.reconnect();
      prepare();
    } catch (const GalleryError& e) {
      if (!unreachable_) tell(why + "; cannot reconnect yet: " + e.what());
      unreachable_ = true;
      return;
    }
    ++reconnections_;
    unreachable_ = false;
    reconnected_ = pending_ = true;
    tell(why + "; reconnected");
  }

  // Throws GalleryUnavailableError unless the connection is open, or opens again now.
  void ensure_connected() {
    if (db_.is_open()) return;
    last_attempt_ = {};
    try_reconnect("the connection was lost");
    if (!db_.is_open()) throw GalleryUnavailableError("gallery server '" + name() + "' cannot be reached");
  }

  void rollback_quietly() {
    try {
      if (db_.is_open()) db_.execute("ROLLBACK");
    } catch (const GalleryError&) {  // the connection is gone: the server rolled back
    }
  }

  Connection db_;
  std::string channel_;
  GalleryStoreOptions options_;
  bool pending_ = true;       ///< a commit may have happened since forget_announcements()
  bool reconnected_ = false;  ///< reconnected since take_reconnected()
  bool unreachable_ = false;  ///< the last attempt to reconnect failed (told once)
  std::int64_t reconnections_ = 0;
  std::chrono::steady_clock::time_point last_attempt_{};
};

}  // namespace siamese::detail::postgres
