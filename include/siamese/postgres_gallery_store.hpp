#pragma once

// The PostgreSQL engine of the gallery store: one gallery on a server, shared by any number of
// processes on any number of machines, each told of the others' commits as they happen.

#include <siamese/detail/format.hpp>
#include <siamese/detail/postgres.hpp>
#include <siamese/detail/postgres_schema.hpp>
#include <siamese/errors.hpp>
#include <siamese/gallery_store.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace siamese {

/// A gallery's embeddings in a PostgreSQL database (schema `siamese_gallery`), reached by a
/// `postgresql://user@host:port/database` URL; libpq's PG* environment variables, `.pgpass`,
/// PGPASSFILE and `sslmode` apply as in any libpq program. Every message names the server by
/// its URL with the password masked (location()).
///
/// The guarantees of GalleryStore, kept the way a server allows:
/// - Writers take the model row's lock first, so commits are serialised and embeddings' ids
///   grow in commit order: a node that knows the newest id it read misses no later row.
/// - Every commit announces its generation on the channel `siamese_gallery` (LISTEN/NOTIFY);
///   may_have_changed() reads what arrived without a round trip, so a node queries only after
///   a change. Removals and renames are recorded (table `rewrites`) and applied in place.
/// - A lost connection is opened again on the next call; the node then compares versions, so
///   nothing committed meanwhile is missed, and tells `on_event` what it did. A write whose
///   connection was lost before its commit is tried again (`attempts`); one lost during the
///   commit is a GalleryUnavailableError that says the outcome is unknown, and enrolling again
///   is safe for rows with a content hash (a unique key: never doubled).
/// - Opening checks the schema's version and every object of it against the catalog before a
///   row is read or written, as the SQLite store checks its file.
class PostgresGalleryStore final : public GalleryStore {
 public:
  /// Opens the gallery at `url`, creating its schema for the model (`model_name`,
  /// `embedding_size`) when the database has none. Throws GalleryLoginError when the server
  /// refuses the login, GalleryUnavailableError when it cannot be reached, GalleryError when
  /// the database holds something else or another model's gallery (naming both).
  static std::unique_ptr<PostgresGalleryStore> open_or_create(const std::string& url, const std::string& model_name,
                                                             std::int64_t embedding_size, GalleryStoreOptions options = {}) {
    detail::check_embedding_size(embedding_size);
    std::unique_ptr<PostgresGalleryStore> store(new PostgresGalleryStore(url, std::move(options)));
    store->guarded([&] {
      if (!detail::postgres::has_gallery_schema(store->db_)) detail::postgres::create_gallery_schema(store->db_, model_name, embedding_size);
      return 0;
    });
    store->check_and_prepare();
    store->check_model(model_name, embedding_size);
    return store;
  }

  /// Opens the existing gallery at `url`, whatever its model. Throws as open_or_create(), and
  /// GalleryError when the database holds no gallery.
  static std::unique_ptr<PostgresGalleryStore> open(const std::string& url, GalleryStoreOptions options = {}) {
    std::unique_ptr<PostgresGalleryStore> store(new PostgresGalleryStore(url, std::move(options)));
    store->check_and_prepare();
    return store;
  }

  const std::string& location() const override { return db_.name(); }

  /// How many times this store has connected again after losing its connection.
  std::int64_t reconnections() const {
    std::lock_guard lock(mutex_);
    return reconnections_;
  }

  std::size_t enroll(const std::vector<Enrollment>& batch) override {
    check_layout(batch);
    // Retried after a lost commit only when every row carries a content hash: then a second
    // try cannot double a row that the first one committed.
    const bool idempotent = std::all_of(batch.begin(), batch.end(), [](const Enrollment& e) {
      return !e.photos.empty() && std::all_of(e.photos.begin(), e.photos.end(), [](const EnrolledPhoto& p) { return p.content_hash.has_value(); });
    });
    std::lock_guard lock(mutex_);
    const auto enrolled = write_transaction(idempotent, [&](std::int64_t generation) {
      std::int64_t added = 0;
      for (const auto& enrollment : batch) {
        const auto person = db_.run(
                                   "WITH found AS (SELECT id FROM siamese_gallery.people WHERE name = $1),"
                                   " added AS (INSERT INTO siamese_gallery.people(name) SELECT $1 WHERE NOT EXISTS (SELECT 1 FROM found) RETURNING id)"
                                   " SELECT id FROM found UNION ALL SELECT id FROM added",
                                   detail::postgres::Parameters().text(enrollment.person))
                                .integer(0, 0);
        added += insert_rows(person, generation, enrollment);
      }
      if (added > 0) advance(generation, /*rewrite=*/false);
      return static_cast<std::size_t>(added);
    });
    // After a bulk load the planner's statistics are stale until autovacuum comes by: bring
    // them up to date now (a sample, ~0.1 s). Needs the tables' ownership; skipped without it.
    if (enrolled >= bulk_rows) {
      try {
        db_.execute("ANALYZE siamese_gallery.people, siamese_gallery.embeddings");
      } catch (const GalleryError&) {
      }
    }
    return enrolled;
  }

  std::vector<std::string> people_with_photo(std::uint64_t content_hash) override {
    std::lock_guard lock(mutex_);
    return guarded([&] {
      const auto found = db_.run(
          "SELECT DISTINCT p.name FROM siamese_gallery.embeddings e JOIN siamese_gallery.people p ON p.id = e.person"
          " WHERE e.content_hash = $1 ORDER BY p.name",
          detail::postgres::Parameters().integer(static_cast<std::int64_t>(content_hash)));
      std::vector<std::string> people;
      for (int i = 0; i < found.rows(); ++i) people.push_back(found.text(i, 0));
      return people;
    });
  }

  bool remove(const std::string& person) override {
    std::lock_guard lock(mutex_);
    return write_transaction(/*idempotent=*/true, [&](std::int64_t generation) {
      const auto id = person_id(person);
      if (!id) return false;
      detail::postgres::Parameters by_id;
      by_id.integer(*id);
      db_.run("DELETE FROM siamese_gallery.embeddings WHERE person = $1", by_id);
      db_.run("DELETE FROM siamese_gallery.people WHERE id = $1", by_id);
      db_.run("INSERT INTO siamese_gallery.rewrites VALUES ($1, $2, NULL)", detail::postgres::Parameters().integer(generation).text(person));
      advance(generation, /*rewrite=*/true);
      return true;
    });
  }

  bool rename(const std::string& from, const std::string& to) override {
    std::lock_guard lock(mutex_);
    return write_transaction(/*idempotent=*/false, [&](std::int64_t generation) {
      const auto id = person_id(from);
      if (!id) return false;
      if (from == to) return true;
      if (person_id(to)) {
        throw Error("cannot rename '" + from + "' to '" + to + "' in '" + location() + "': that person is already enrolled");
      }
      db_.run("UPDATE siamese_gallery.people SET name = $1 WHERE id = $2", detail::postgres::Parameters().text(to).integer(*id));
      db_.run("INSERT INTO siamese_gallery.rewrites VALUES ($1, $2, $3)",
              detail::postgres::Parameters().integer(generation).text(from).text(to));
      advance(generation, /*rewrite=*/true);
      return true;
    });
  }

  GalleryStoreVersion version() override {
    std::lock_guard lock(mutex_);
    return guarded([&] { return read_version(); });
  }

  /// Reads in one REPEATABLE READ snapshot; after removals and renames, the rewrites since
  /// `known` and the rows after it (every row when more than a thousand rewrites came).
  std::optional<GalleryStoreRows> changes_since(const GalleryStoreVersion& known) override {
    std::lock_guard lock(mutex_);
    auto changes = guarded([&]() -> std::optional<GalleryStoreRows> {
      drain_notifications();  // what arrives from here on is newer than the snapshot below
      return read_transaction([&]() -> std::optional<GalleryStoreRows> {
        GalleryStoreRows out;
        out.version = read_version();
        if (out.version == known) return std::nullopt;
        out.complete = known.generation < 0;
        if (!out.complete && out.version.last_rewrite != known.last_rewrite) {
          const auto rewrites = db_.run("SELECT generation, person, renamed_to FROM siamese_gallery.rewrites WHERE generation > $1"
                                        " ORDER BY generation LIMIT 1001",
                                        detail::postgres::Parameters().integer(known.generation));
          out.complete = rewrites.rows() > 1000;
          for (int i = 0; i < rewrites.rows() && !out.complete; ++i) {
            out.rewrites.push_back({rewrites.integer(i, 0), rewrites.text(i, 1),
                                    rewrites.is_null(i, 2) ? std::nullopt : std::optional<std::string>(rewrites.text(i, 2))});
          }
          if (out.complete) out.rewrites.clear();
        }
        read_rows(out, out.complete ? 0 : known.last_row, nullptr);
        if (out.rewrites.empty()) out.row_generations.clear();
        return out;
      });
    });
    if (reconnected_ && known.generation >= 0) {  // reconnected before this call, or within it
      tell(!changes ? std::string("caught up after reconnecting: nothing was missed")
           : changes->complete ? "fell behind while disconnected and read every row again (" +
                                     std::to_string(changes->owners.size()) + " embeddings)"
                               : "caught up after reconnecting: " + std::to_string(changes->owners.size()) + " new embeddings, " +
                                     std::to_string(changes->rewrites.size()) + " removals or renames");
    }
    reconnected_ = false;
    return changes;
  }

  /// True when a commit was announced since the last changes_since(), or the connection was
  /// lost and opened again (what was missed meanwhile is then read). While the server cannot
  /// be reached, false: the caller keeps what it holds (a connection is tried again at most
  /// every `reconnect_interval`).
  bool may_have_changed() override {
    std::lock_guard lock(mutex_);
    if (pending_) return true;
    if (const auto payloads = db_.notifications()) {
      pending_ = !payloads->empty();
      return pending_;
    }
    try_reconnect("the connection was lost");
    return pending_;
  }

  std::vector<Enrollment> enrollments() override {
    std::lock_guard lock(mutex_);
    return guarded([&] {
      return read_transaction([&] {
        GalleryStoreRows rows;
        std::vector<EnrolledPhoto> photos;
        read_rows(rows, 0, &photos);
        return detail::group_by_person(rows.owners, rows.embeddings, std::move(photos));
      });
    });
  }

  /// The schema against the catalog, rows of the wrong size, rows without a person and
  /// non-finite values: "ok", or what is wrong.
  std::string integrity_check() override {
    std::lock_guard lock(mutex_);
    return guarded([&] {
      std::string report;
      try {
        detail::postgres::check_gallery_schema(db_);
        GalleryStoreRows rows;
        read_transaction([&] {
          read_rows(rows, 0, nullptr);
          return 0;
        });
      } catch (const detail::postgres::CommandFailed&) {
        throw;
      } catch (const GalleryError& e) {
        report = e.what();
      }
      return report.empty() ? std::string("ok") : report;
    });
  }

  /// How long a store that lost its server waits between attempts to connect again, so that
  /// identifying from memory does not knock on a dead server at every probe.
  static constexpr std::chrono::milliseconds reconnect_interval{250};

  /// An enrollment batch of at least this many rows refreshes the planner's statistics.
  static constexpr std::size_t bulk_rows = 10000;

 private:
  PostgresGalleryStore(const std::string& url, GalleryStoreOptions options) : db_(url), options_(std::move(options)) {
    prepare_session();
  }

  // Each session, in one round trip: how long to wait for a writer's lock; no parallel workers
  // (this store's queries are small, and a worker's start costs more than they do); the
  // channel commits are announced on.
  void prepare_session() {
    db_.execute("SET lock_timeout = " + std::to_string(options_.busy_timeout.count()) +
                "; SET max_parallel_workers_per_gather = 0; LISTEN " + detail::postgres::gallery_channel);
  }

  void check_and_prepare() {
    guarded([&] {
      detail::postgres::check_gallery_schema(db_);
      const auto model = db_.run("SELECT name, embedding_size FROM siamese_gallery.model WHERE id = 1");
      if (model.rows() != 1) throw GalleryError("'" + location() + "' has no model record");
      set_model(model.text(0, 0), model.integer(0, 1));
      return 0;
    });
  }

  void tell(const std::string& what) const {
    if (options_.on_event) options_.on_event("gallery server '" + location() + "': " + what);
  }

  // Connects again if the connection is gone, at most every reconnect_interval. Throws
  // GalleryUnavailableError (and tells on_event) when the server cannot be reached.
  void try_reconnect(const std::string& why) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_attempt_ < reconnect_interval) return;
    last_attempt_ = now;
    try {
      db_.reconnect();
      prepare_session();
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

  void ensure_connected() {
    if (db_.is_open()) return;
    last_attempt_ = {};
    try_reconnect("the connection was lost");
    if (!db_.is_open()) throw GalleryUnavailableError("gallery server '" + location() + "' cannot be reached");
  }

  // Runs `body` on an open connection, turning this layer's failures into the library's.
  template <class Body>
  auto guarded(Body body) -> decltype(body()) {
    ensure_connected();
    try {
      return body();
    } catch (const detail::postgres::CommandFailed& e) {
      if (e.failure == detail::postgres::Failure::connection) throw GalleryUnavailableError(e.what() + std::strlen("siamese: "));
      throw GalleryError(e.what() + std::strlen("siamese: "));
    }
  }

  void rollback_quietly() {
    try {
      if (db_.is_open()) db_.execute("ROLLBACK");
    } catch (const GalleryError&) {  // the connection is gone: the server rolled back
    }
  }

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

  // Runs body(next generation) in a transaction that holds the model row's lock from its
  // first statement: writers commit one at a time, in the order of their generations. Retried
  // as GalleryStoreOptions says (see the class comment for a commit whose outcome is unknown).
  template <class Body>
  auto write_transaction(bool idempotent, Body body) -> decltype(body(std::int64_t{})) {
    using detail::postgres::CommandFailed;
    using detail::postgres::Failure;
    for (int attempt = 1;; ++attempt) {
      bool committing = false;
      const auto give_up = [&](const std::string& message, bool busy) {
        if (busy) throw GalleryBusyError(message);
        throw GalleryUnavailableError(message);
      };
      const auto pause = [&] { std::this_thread::sleep_for(std::chrono::milliseconds(250 * attempt)); };
      try {
        ensure_connected();
        const auto generation =
            db_.execute("BEGIN; SELECT generation FROM siamese_gallery.model WHERE id = 1 FOR UPDATE").integer(0, 0);
        auto result = body(generation + 1);
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
        if (attempt >= options_.attempts) give_up(message + " (tried " + std::to_string(attempt) + " times)", busy);
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

  // Records the commit's generation and announces it (delivered at the commit), in one round trip.
  void advance(std::int64_t generation, bool rewrite) {
    db_.run(std::string("WITH bump AS (UPDATE siamese_gallery.model SET generation = $1") + (rewrite ? ", last_rewrite = $1" : "") +
                " RETURNING generation) SELECT pg_notify('" + detail::postgres::gallery_channel + "', generation::text) FROM bump",
            detail::postgres::Parameters().integer(generation));
  }

  std::optional<std::int64_t> person_id(const std::string& person) {
    const auto found = db_.run("SELECT id FROM siamese_gallery.people WHERE name = $1", detail::postgres::Parameters().text(person));
    if (found.rows() == 0) return std::nullopt;
    return found.integer(0, 0);
  }

  // Inserts an enrollment's rows, a thousand per statement; a row whose (person, content
  // hash) is there already is skipped by the unique key. Returns the rows added.
  std::int64_t insert_rows(std::int64_t person, std::int64_t generation, const Enrollment& enrollment) {
    const auto& rows = enrollment.embeddings;
    const auto row_bytes = static_cast<std::size_t>(embedding_size()) * sizeof(float);
    std::int64_t added = 0;
    constexpr std::int64_t chunk = 1000;
    for (std::int64_t start = 0; start < rows.size(0); start += chunk) {
      const auto count = std::min(chunk, rows.size(0) - start);
      std::string sql = "INSERT INTO siamese_gallery.embeddings(person, generation, vector, source, content_hash) VALUES ";
      detail::postgres::Parameters values;
      for (std::int64_t i = start; i < start + count; ++i) {
        const int base = values.size();
        sql += (i == start ? "(" : ",(") + std::string("$") + std::to_string(base + 1) + ",$" + std::to_string(base + 2) + ",$" +
               std::to_string(base + 3) + ",$" + std::to_string(base + 4) + ",$" + std::to_string(base + 5) + ")";
        values.integer(person).integer(generation).bytes(rows.data_ptr<float>() + i * embedding_size(), row_bytes);
        const auto* photo = enrollment.photos.empty() ? nullptr : &enrollment.photos[static_cast<std::size_t>(i)];
        if (photo != nullptr && !photo->source.empty()) values.text(photo->source); else values.null();
        if (photo != nullptr && photo->content_hash) values.integer(static_cast<std::int64_t>(*photo->content_hash)); else values.null();
      }
      added += db_.run(sql + " ON CONFLICT (person, content_hash) DO NOTHING", values).changed();
    }
    return added;
  }

  GalleryStoreVersion read_version() {
    const auto found = db_.run(
        "SELECT generation, last_rewrite, (SELECT coalesce(max(id), 0) FROM siamese_gallery.embeddings) FROM siamese_gallery.model");
    if (found.rows() != 1) throw GalleryError("'" + location() + "' has no model record");
    return {found.integer(0, 0), found.integer(0, 1), found.integer(0, 2)};
  }

  // Reads the rows after id `after`, oldest first, in one binary COPY; their photo records too
  // when `photos` is given. Checks every row (size, owner, finite values).
  void read_rows(GalleryStoreRows& out, std::int64_t after, std::vector<EnrolledPhoto>* photos) {
    using detail::postgres::Connection;
    const auto rows = db_.run("SELECT count(*) FROM siamese_gallery.embeddings WHERE id > $1", detail::postgres::Parameters().integer(after))
                          .integer(0, 0);
    out.embeddings = torch::empty({rows, embedding_size()}, torch::kFloat32);
    out.owners.reserve(static_cast<std::size_t>(rows));
    out.row_generations.reserve(static_cast<std::size_t>(rows));
    const auto row_bytes = static_cast<int>(embedding_size() * static_cast<std::int64_t>(sizeof(float)));
    std::int64_t i = 0;
    // Every row: one join. The rows after a known one: each row's person by its key, so the
    // read costs what it returns, whatever the planner's statistics say of the tables.
    const std::string person = after == 0 ? "p.name" : "(SELECT p.name FROM siamese_gallery.people p WHERE p.id = e.person)";
    const std::string join = after == 0 ? " LEFT JOIN siamese_gallery.people p ON p.id = e.person" : "";
    db_.copy_out("COPY (SELECT e.id, " + person + ", e.vector, e.generation, e.source, e.content_hash FROM siamese_gallery.embeddings e" +
                     join + " WHERE e.id > " + std::to_string(after) + " ORDER BY e.id) TO STDOUT (FORMAT binary)",
                 [&](const std::vector<std::pair<const char*, int>>& fields) {
                   const auto id = fields.size() == 6 && fields[0].second == 8 ? Connection::read_int64(fields[0].first) : -1;
                   const std::string which = "gallery database '" + location() + "' is damaged: embedding " + std::to_string(id);
                   if (fields.size() != 6 || fields[0].second != 8 || fields[3].second != 8 || i >= rows) {
                     throw GalleryError("gallery database '" + location() + "' sent a row that is not one of its embeddings");
                   }
                   if (fields[1].first == nullptr) throw GalleryError(which + " has no person (embeddings without a person)");
                   if (fields[2].second != row_bytes) {
                     throw GalleryError(which + " holds " + std::to_string(fields[2].second) + " bytes, expected " + std::to_string(row_bytes));
                   }
                   std::memcpy(out.embeddings.data_ptr<float>() + i * embedding_size(), fields[2].first, static_cast<std::size_t>(row_bytes));
                   out.owners.emplace_back(fields[1].first, static_cast<std::size_t>(fields[1].second));
                   out.row_generations.push_back(Connection::read_int64(fields[3].first));
                   if (photos != nullptr) {
                     EnrolledPhoto photo;
                     if (fields[4].first != nullptr) photo.source.assign(fields[4].first, static_cast<std::size_t>(fields[4].second));
                     if (fields[5].first != nullptr && fields[5].second == 8) {
                       photo.content_hash = static_cast<std::uint64_t>(Connection::read_int64(fields[5].first));
                     }
                     photos->push_back(std::move(photo));
                   }
                   ++i;
                 });
    if (i != rows) throw GalleryError("gallery database '" + location() + "' is damaged: it lost rows while they were read");
    check_rows_read(out.owners, out.embeddings);
  }

  void drain_notifications() {
    if (db_.notifications()) pending_ = false;
  }

  mutable std::mutex mutex_;
  detail::postgres::Connection db_;
  GalleryStoreOptions options_;
  bool pending_ = true;       ///< a commit may have happened since the last changes_since()
  bool reconnected_ = false;  ///< reconnected since the last changes_since()
  bool unreachable_ = false;  ///< the last attempt to reconnect failed (told once)
  std::int64_t reconnections_ = 0;
  std::chrono::steady_clock::time_point last_attempt_{};
};

}  // namespace siamese
