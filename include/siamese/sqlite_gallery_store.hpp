#pragma once

// The SQLite engine of the gallery store: one database file, any number of processes on one
// machine.

#include <siamese/detail/format.hpp>
#include <siamese/detail/gallery_schema.hpp>
#include <siamese/detail/sqlite.hpp>
#include <siamese/errors.hpp>
#include <siamese/gallery_store.hpp>

#include <torch/torch.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace siamese {

/// A gallery's embeddings in a SQLite database file, safe for many processes at once.
///
/// One file holds the model identity (name and embedding size), the people, their embeddings
/// (float32 blobs, with the photo's source and content hash when known) and a change counter.
/// Enroll, remove and rename are each one transaction that touches only its own rows; the
/// database runs in WAL mode with full sync, so readers never wait for writers, a process
/// killed at any moment loses nothing that was committed, and concurrent writers are
/// serialised by SQLite's lock (each waits up to `busy_timeout`, `attempts` times).
///
/// The schema has a version (PRAGMA user_version) and an application id; opening checks both,
/// and refuses a damaged file, a foreign SQLite database, a gallery file of the older
/// single-file format and a newer schema, each with GalleryError naming the file, before
/// anything is written. Thread safety: the methods of one store may be called from any thread
/// (one connection behind a mutex). After fork(), a child opens its own store.
class SqliteGalleryStore final : public GalleryStore {
 public:
  static constexpr std::int64_t schema_version = detail::gallery_schema_version;
  static constexpr std::int64_t application_id = detail::gallery_application_id;

  /// Opens the gallery database `file`, creating it for the model (`model_name`,
  /// `embedding_size`) when it does not exist. Throws GalleryError when the file is not a
  /// gallery database or was made with another model (naming both).
  static std::unique_ptr<SqliteGalleryStore> open_or_create(const std::filesystem::path& file, const std::string& model_name,
                                                      std::int64_t embedding_size, GalleryStoreOptions options = {}) {
    detail::check_embedding_size(embedding_size);
    std::unique_ptr<SqliteGalleryStore> store(new SqliteGalleryStore(file, /*create=*/true, options));
    store->create_schema(model_name, embedding_size);
    store->check_and_prepare();
    store->check_model(model_name, embedding_size);
    return store;
  }

  /// Opens an existing gallery database, whatever its model. Throws FileError when `file`
  /// does not exist, GalleryError as open_or_create().
  static std::unique_ptr<SqliteGalleryStore> open(const std::filesystem::path& file, GalleryStoreOptions options = {}) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec)) {
      throw FileError("gallery database '" + file.string() + "' does not exist");
    }
    std::unique_ptr<SqliteGalleryStore> store(new SqliteGalleryStore(file, /*create=*/false, options));
    store->check_and_prepare();
    return store;
  }

  /// Whether `file` starts as every SQLite database does (a gallery database or another).
  static bool is_sqlite_file(const std::filesystem::path& file) { return is_sqlite_header(file_header(file)); }

  const std::string& location() const override { return db_.file(); }

  std::size_t enroll(const std::vector<Enrollment>& batch) override {
    check_layout(batch);
    std::lock_guard lock(mutex_);
    std::size_t added = 0;
    db_.write_transaction(options_.attempts, [&] {
      added = 0;  // a retried transaction counts again
      auto add_person = db_.prepare("INSERT INTO people(name) VALUES(?1) ON CONFLICT(name) DO NOTHING");
      auto find_person = db_.prepare("SELECT id FROM people WHERE name = ?1");
      auto find_photo = db_.prepare("SELECT 1 FROM embeddings WHERE person = ?1 AND content_hash = ?2");
      auto add_row = db_.prepare("INSERT INTO embeddings(person, vector, source, content_hash) VALUES(?1, ?2, ?3, ?4)");
      for (const auto& enrollment : batch) {
        add_person.bind(1, enrollment.person).run();
        find_person.bind(1, enrollment.person).step();
        const auto person = find_person.integer(0);
        find_person.reset();
        const auto& rows = enrollment.embeddings;
        const auto row_bytes = static_cast<std::size_t>(embedding_size()) * sizeof(float);
        for (std::int64_t i = 0; i < rows.size(0); ++i) {
          add_row.bind(1, person).bind_blob(2, rows.data_ptr<float>() + i * embedding_size(), row_bytes);
          const auto* photo = enrollment.photos.empty() ? nullptr : &enrollment.photos[static_cast<std::size_t>(i)];
          if (photo != nullptr && photo->content_hash) {
            const bool enrolled = find_photo.bind(1, person).bind(2, static_cast<std::int64_t>(*photo->content_hash)).step();
            find_photo.reset();
            if (enrolled) continue;
          }
          ++added;
          if (photo != nullptr && !photo->source.empty()) add_row.bind(3, photo->source); else add_row.bind_null(3);
          if (photo != nullptr && photo->content_hash) add_row.bind(4, static_cast<std::int64_t>(*photo->content_hash)); else add_row.bind_null(4);
          add_row.run();
        }
      }
      db_.execute("UPDATE model SET generation = generation + 1");
      return 0;
    });
    return added;
  }

  std::vector<std::string> people_with_photo(std::uint64_t content_hash) override {
    std::lock_guard lock(mutex_);
    auto query = db_.prepare(
        "SELECT DISTINCT p.name FROM embeddings e JOIN people p ON p.id = e.person WHERE e.content_hash = ?1 ORDER BY p.name");
    query.bind(1, static_cast<std::int64_t>(content_hash));
    std::vector<std::string> people;
    while (query.step()) people.push_back(query.text(0));
    return people;
  }

  bool remove(const std::string& person) override {
    std::lock_guard lock(mutex_);
    return db_.write_transaction(options_.attempts, [&] {
      auto find = db_.prepare("SELECT id FROM people WHERE name = ?1");
      if (!find.bind(1, person).step()) return false;
      const auto id = find.integer(0);
      db_.prepare("DELETE FROM embeddings WHERE person = ?1").bind(1, id).run();
      db_.prepare("DELETE FROM people WHERE id = ?1").bind(1, id).run();
      mark_rewrite();
      return true;
    });
  }

  bool rename(const std::string& from, const std::string& to) override {
    std::lock_guard lock(mutex_);
    return db_.write_transaction(options_.attempts, [&] {
      auto find = db_.prepare("SELECT id FROM people WHERE name = ?1");
      if (!find.bind(1, from).step()) return false;
      const auto id = find.integer(0);
      if (from == to) return true;
      find.reset();
      if (find.bind(1, to).step()) {
        throw Error("cannot rename '" + from + "' to '" + to + "' in '" + location() + "': that person is already enrolled");
      }
      db_.prepare("UPDATE people SET name = ?1 WHERE id = ?2").bind(1, to).bind(2, id).run();
      mark_rewrite();
      return true;
    });
  }

  GalleryStoreVersion version() override {
    std::lock_guard lock(mutex_);
    return read_version();
  }

  /// Every row again after a removal or rename (this schema keeps no record of them).
  std::optional<GalleryStoreRows> changes_since(const GalleryStoreVersion& known) override {
    std::lock_guard lock(mutex_);
    return db_.read_transaction([&]() -> std::optional<GalleryStoreRows> {
      GalleryStoreRows out;
      out.version = read_version();
      if (out.version == known) return std::nullopt;
      out.complete = known.generation < 0 || out.version.last_rewrite != known.last_rewrite;
      read_rows(out, out.complete ? 0 : known.last_row);
      return out;
    });
  }

  std::vector<Enrollment> enrollments() override {
    std::lock_guard lock(mutex_);
    return db_.read_transaction([&] {
      GalleryStoreRows rows;
      read_rows(rows, 0);
      std::vector<EnrolledPhoto> photos;
      photos.reserve(rows.owners.size());
      auto select = db_.prepare("SELECT source, content_hash FROM embeddings e JOIN people p ON p.id = e.person ORDER BY e.id");
      while (select.step()) {
        photos.push_back({select.text(0), select.is_null(1) ? std::nullopt
                                                            : std::optional<std::uint64_t>(static_cast<std::uint64_t>(select.integer(1)))});
      }
      return detail::group_by_person(rows.owners, rows.embeddings, std::move(photos));
    });
  }

  /// SQLite's own check of the whole file: "ok", or what is wrong.
  std::string integrity_check() override {
    std::lock_guard lock(mutex_);
    auto check = db_.prepare("PRAGMA integrity_check");
    std::string report;
    while (check.step()) report += (report.empty() ? "" : "; ") + check.text(0);
    return report;
  }

 private:
  SqliteGalleryStore(const std::filesystem::path& file, bool create, GalleryStoreOptions options)
      : db_((check_file_kind(file), file.string()), create, options.busy_timeout), options_(options) {}

  // Refuses, before SQLite touches it, a file that is neither empty nor a SQLite database.
  static void check_file_kind(const std::filesystem::path& file) {
    const auto header = file_header(file);
    if (header.empty()) return;  // absent (created, or refused by open()), or SQLite's own new-database state
    if (header.size() >= 8 && std::memcmp(header.data(), "SIAMGAL", 8) == 0) {
      throw GalleryError("'" + file.string() + "' is a gallery file of the single-file format, not a gallery database: "
                         "convert it with `gallery import " + file.string() + " NEW.db` (Gallery::enrollments())");
    }
    if (!is_sqlite_header(header)) {
      throw GalleryError("'" + file.string() + "' is not a siamese gallery database (not a SQLite file)");
    }
  }

  // The first 16 bytes of `file`: fewer when it is shorter, none when it is absent.
  static std::string file_header(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    char header[16] = {};
    in.read(header, sizeof header);
    return std::string(header, static_cast<std::size_t>(in.gcount()));
  }

  static bool is_sqlite_header(const std::string& header) {
    return header.size() == 16 && std::memcmp(header.data(), "SQLite format 3", 16) == 0;
  }

  // A new, empty file becomes a gallery inside one write transaction; a process that
  // created it at the same moment is seen here as done.
  void create_schema(const std::string& model_name, std::int64_t embedding_size) {
    db_.write_transaction(options_.attempts, [&] {
      if (!detail::is_empty_database(db_)) return 0;
      detail::create_gallery_schema(db_, model_name, embedding_size);
      return 0;
    });
  }

  // Checks the database before anything is written (detail::check_gallery_schema: the
  // application, the version and every object of the schema), reads the model, then switches
  // to WAL and full sync.
  void check_and_prepare() {
    const std::string name = "'" + location() + "'";
    detail::check_gallery_schema(db_);
    {  // the statement ends before the journal mode changes: no open read may remain
      auto model = db_.prepare("SELECT name, embedding_size FROM model WHERE id = 1");
      if (!model.step()) throw GalleryError(name + " has no model record");
      set_model(model.text(0), model.integer(1));
    }
    auto mode = db_.prepare("PRAGMA journal_mode = WAL");
    if (!mode.step() || mode.text(0) != "wal") throw GalleryError(name + " cannot be switched to WAL mode");
    db_.execute("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON");
  }

  GalleryStoreVersion read_version() {
    auto statement = db_.prepare("SELECT generation, last_rewrite, (SELECT coalesce(max(id), 0) FROM embeddings) FROM model");
    if (!statement.step()) throw GalleryError("'" + location() + "' has no model record");
    return {statement.integer(0), statement.integer(1), statement.integer(2)};
  }

  void read_rows(GalleryStoreRows& out, std::int64_t after) {
    auto counter = db_.prepare("SELECT count(*) FROM embeddings WHERE id > ?1");
    counter.bind(1, after).step();
    const auto rows = counter.integer(0);
    out.embeddings = torch::empty({rows, embedding_size()}, torch::kFloat32);
    out.owners.reserve(static_cast<std::size_t>(rows));
    auto select = db_.prepare(
        "SELECT e.id, p.name, e.vector FROM embeddings e JOIN people p ON p.id = e.person WHERE e.id > ?1 ORDER BY e.id");
    select.bind(1, after);
    const auto row_bytes = static_cast<std::size_t>(embedding_size()) * sizeof(float);
    std::int64_t i = 0;
    for (; select.step(); ++i) {
      const auto [data, size] = select.blob(2);
      if (i >= rows || size != row_bytes) {
        throw GalleryError("gallery database '" + location() + "' is damaged: embedding " + std::to_string(select.integer(0)) +
                           " holds " + std::to_string(size) + " bytes, expected " + std::to_string(row_bytes));
      }
      std::memcpy(out.embeddings.data_ptr<float>() + i * embedding_size(), data, row_bytes);
      out.owners.push_back(select.text(1));
    }
    if (i != rows) throw GalleryError("gallery database '" + location() + "' is damaged: embeddings without a person");
    check_rows_read(out.owners, out.embeddings);
  }

  void mark_rewrite() { db_.execute("UPDATE model SET generation = generation + 1, last_rewrite = generation + 1"); }

  std::mutex mutex_;
  detail::sqlite::Connection db_;
  GalleryStoreOptions options_;
};

}  // namespace siamese
