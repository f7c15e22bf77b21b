#pragma once

// The PostgreSQL engine of the gallery store: one gallery on a server, shared by any number of
// processes on any number of machines, each told of the others' commits as they happen.

#include <siamese/detail/format.hpp>
#include <siamese/detail/postgres.hpp>
#include <siamese/detail/postgres_rows.hpp>
#include <siamese/detail/postgres_schema.hpp>
#include <siamese/detail/postgres_session.hpp>
#include <siamese/errors.hpp>
#include <siamese/gallery_store.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
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
    store->session_.guarded([&] {
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

  const std::string& location() const override { return session_.name(); }

  /// How many times this store has connected again after losing its connection.
  std::int64_t reconnections() const {
    std::lock_guard lock(mutex_);
    return session_.reconnections();
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
        added += detail::postgres::insert_embeddings(db_, person, generation, enrollment, embedding_size());
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
    return session_.guarded([&] {
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
    return session_.guarded([&] { return read_version(); });
  }

  /// Reads in one REPEATABLE READ snapshot; after removals and renames, the rewrites since
  /// `known` and the rows after it (every row when more than a thousand rewrites came).
  std::optional<GalleryStoreRows> changes_since(const GalleryStoreVersion& known) override {
    std::lock_guard lock(mutex_);
    auto changes = session_.guarded([&]() -> std::optional<GalleryStoreRows> {
      session_.forget_announcements();  // what arrives from here on is newer than the snapshot below
      return session_.read_transaction([&]() -> std::optional<GalleryStoreRows> {
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
    if (session_.take_reconnected() && known.generation >= 0) {  // before this call, or within it
      session_.tell(!changes ? std::string("caught up after reconnecting: nothing was missed")
           : changes->complete ? "fell behind while disconnected and read every row again (" +
                                     std::to_string(changes->owners.size()) + " embeddings)"
                               : "caught up after reconnecting: " + std::to_string(changes->owners.size()) + " new embeddings, " +
                                     std::to_string(changes->rewrites.size()) + " removals or renames");
    }
    return changes;
  }

  /// True when a commit was announced since the last changes_since(), or the connection was
  /// lost and opened again (what was missed meanwhile is then read). While the server cannot
  /// be reached, false: the caller keeps what it holds (a connection is tried again at most
  /// every Session::reconnect_interval).
  bool may_have_changed() override {
    std::lock_guard lock(mutex_);
    return session_.announced();
  }

  std::vector<Enrollment> enrollments() override {
    std::lock_guard lock(mutex_);
    return session_.guarded([&] {
      return session_.read_transaction([&] {
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
    return session_.guarded([&] {
      std::string report;
      try {
        detail::postgres::check_gallery_schema(db_);
        GalleryStoreRows rows;
        session_.read_transaction([&] {
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

  /// An enrollment batch of at least this many rows refreshes the planner's statistics.
  static constexpr std::size_t bulk_rows = 10000;

 private:
  PostgresGalleryStore(const std::string& url, GalleryStoreOptions options)
      : session_(url, detail::postgres::gallery_channel, std::move(options)), db_(session_.connection()) {}

  void check_and_prepare() {
    session_.guarded([&] {
      detail::postgres::check_gallery_schema(db_);
      const auto model = db_.run("SELECT name, embedding_size FROM siamese_gallery.model WHERE id = 1");
      if (model.rows() != 1) throw GalleryError("'" + location() + "' has no model record");
      set_model(model.text(0, 0), model.integer(0, 1));
      return 0;
    });
  }

  // Runs body(the next generation) in a transaction that took the model row's lock with its
  // first statement: writers commit one at a time, in the order of their generations.
  template <class Body>
  auto write_transaction(bool idempotent, Body body) -> decltype(body(std::int64_t{})) {
    return session_.write_transaction("BEGIN; SELECT generation FROM siamese_gallery.model WHERE id = 1 FOR UPDATE", idempotent,
                                      [&](const detail::postgres::Result& begun) { return body(begun.integer(0, 0) + 1); });
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

  GalleryStoreVersion read_version() {
    const auto found = db_.run(
        "SELECT generation, last_rewrite, (SELECT coalesce(max(id), 0) FROM siamese_gallery.embeddings) FROM siamese_gallery.model");
    if (found.rows() != 1) throw GalleryError("'" + location() + "' has no model record");
    return {found.integer(0, 0), found.integer(0, 1), found.integer(0, 2)};
  }

  // Reads the rows after id `after` (detail::postgres::copy_embeddings) and checks them.
  void read_rows(GalleryStoreRows& out, std::int64_t after, std::vector<EnrolledPhoto>* photos) {
    detail::postgres::copy_embeddings(db_, after, embedding_size(), out, photos);
    check_rows_read(out.owners, out.embeddings);
  }

  mutable std::mutex mutex_;  ///< one call at a time on the session
  detail::postgres::Session session_;
  detail::postgres::Connection& db_;  ///< the session's connection
};

}  // namespace siamese
