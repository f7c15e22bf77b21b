#pragma once

#include <siamese/detail/format.hpp>
#include <siamese/detail/gallery_schema.hpp>
#include <siamese/detail/sqlite.hpp>
#include <siamese/errors.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
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

namespace detail {
/// Throws GalleryError naming both models when (`name`, `size`) is not the gallery's
/// (`gallery_name`, `gallery_size`); `which` names the gallery ("gallery 'x.db'").
inline void check_same_model(const std::string& which, const std::string& gallery_name, std::int64_t gallery_size,
                             const std::string& name, std::int64_t size) {
  if (name != gallery_name || size != gallery_size) {
    throw GalleryError(which + " was made with model '" + gallery_name + "' (" + std::to_string(gallery_size) +
                       "-d) and cannot be used with '" + name + "' (" + std::to_string(size) + "-d)");
  }
}
}  // namespace detail

/// Where an enrolled photo came from, when the caller knows: kept beside its embedding.
struct EnrolledPhoto {
  std::string source;                         ///< a file name or any label; may be empty
  std::optional<std::uint64_t> content_hash;  ///< e.g. content_hash(bytes).value
};

/// One person's new embeddings: [K, D] float32 (or one [D]), and optionally K photo records.
struct Enrollment {
  std::string person;
  torch::Tensor embeddings;
  std::vector<EnrolledPhoto> photos;  ///< empty, or one per embedding row
};

/// How a GalleryStore waits for other processes.
struct GalleryStoreOptions {
  /// How long one statement waits for another process's lock before giving up.
  std::chrono::milliseconds busy_timeout{10000};
  /// How many times a write transaction is tried when the lock stays taken through a whole
  /// busy_timeout; then GalleryBusyError.
  int attempts = 3;
};

/// The version of a gallery database: `generation` moves with every change, `last_rewrite`
/// is the generation of the last removal or rename, `last_row` the newest embedding's id.
/// A reader that knows one version and sees only `generation` move can append the rows after
/// `last_row`; a moved `last_rewrite` means rows were renamed or deleted: read everything.
struct GalleryStoreVersion {
  std::int64_t generation = -1;
  std::int64_t last_rewrite = -1;
  std::int64_t last_row = 0;
  friend bool operator==(const GalleryStoreVersion& a, const GalleryStoreVersion& b) {
    return a.generation == b.generation && a.last_rewrite == b.last_rewrite;
  }
};

/// Rows read from a gallery database, oldest first.
struct GalleryStoreRows {
  GalleryStoreVersion version;       ///< the database's version when they were read
  bool complete = false;             ///< every row (true), or only those after the asked version
  std::vector<std::string> owners;   ///< the person of each row
  torch::Tensor embeddings;          ///< [rows, D] float32, CPU
};

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
class GalleryStore {
 public:
  static constexpr std::int64_t schema_version = detail::gallery_schema_version;
  static constexpr std::int64_t application_id = detail::gallery_application_id;

  /// Opens the gallery database `file`, creating it for the model (`model_name`,
  /// `embedding_size`) when it does not exist. Throws GalleryError when the file is not a
  /// gallery database or was made with another model (naming both).
  static std::unique_ptr<GalleryStore> open_or_create(const std::filesystem::path& file, const std::string& model_name,
                                                      std::int64_t embedding_size, GalleryStoreOptions options = {}) {
    if (embedding_size < 1 || embedding_size > 65536) {
      throw GalleryError("embedding size must be in 1..65536, got " + std::to_string(embedding_size));
    }
    std::unique_ptr<GalleryStore> store(new GalleryStore(file, /*create=*/true, options));
    store->create_schema(model_name, embedding_size);
    store->check_and_prepare();
    store->check_model(model_name, embedding_size);
    return store;
  }

  /// Opens an existing gallery database, whatever its model. Throws FileError when `file`
  /// does not exist, GalleryError as open_or_create().
  static std::unique_ptr<GalleryStore> open(const std::filesystem::path& file, GalleryStoreOptions options = {}) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec)) {
      throw FileError("gallery database '" + file.string() + "' does not exist");
    }
    std::unique_ptr<GalleryStore> store(new GalleryStore(file, /*create=*/false, options));
    store->check_and_prepare();
    return store;
  }

  const std::string& file() const { return db_.file(); }
  const std::string& model_name() const { return model_name_; }
  std::int64_t embedding_size() const { return embedding_size_; }

  /// Throws GalleryError naming both models when they differ from the database's.
  void check_model(const std::string& model_name, std::int64_t embedding_size) const {
    detail::check_same_model("gallery '" + file() + "'", model_name_, embedding_size_, model_name, embedding_size);
  }

  /// Adds every enrollment in one transaction: all of them or, on any error, none. A row whose
  /// photo record has a content hash the same person already has (in the database, or earlier
  /// in the batch) is skipped: the same photo enrolled twice is one row.
  /// Requires: rows [K, D] float32, CPU, contiguous and finite, `photos` empty or K long, names
  /// valid, as Gallery::enroll() checks them (use that: it also keeps its index up to date).
  /// The layout is checked here too (ShapeError), the values and names are not.
  /// Ensures: returns the rows added.
  std::size_t enroll(const std::vector<Enrollment>& batch) {
    for (const auto& e : batch) {
      const auto& rows = e.embeddings;
      if (!rows.defined() || rows.dim() != 2 || rows.size(1) != embedding_size_ || rows.scalar_type() != torch::kFloat32 ||
          !rows.device().is_cpu() || !rows.is_contiguous() ||
          (!e.photos.empty() && e.photos.size() != static_cast<std::size_t>(rows.size(0)))) {
        throw ShapeError("gallery '" + file() + "' stores contiguous float32 CPU rows [K, " + std::to_string(embedding_size_) +
                         "] with K photo records or none; got " + detail::shape_string(rows) + " " +
                         detail::dtype_string(rows) + " with " + std::to_string(e.photos.size()) + " records for '" +
                         e.person + "'");
      }
    }
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
        const auto row_bytes = static_cast<std::size_t>(embedding_size_) * sizeof(float);
        for (std::int64_t i = 0; i < rows.size(0); ++i) {
          add_row.bind(1, person).bind_blob(2, rows.data_ptr<float>() + i * embedding_size_, row_bytes);
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

  /// The people who have a photo with `content_hash` enrolled, sorted by name.
  std::vector<std::string> people_with_photo(std::uint64_t content_hash) {
    std::lock_guard lock(mutex_);
    auto query = db_.prepare(
        "SELECT DISTINCT p.name FROM embeddings e JOIN people p ON p.id = e.person WHERE e.content_hash = ?1 ORDER BY p.name");
    query.bind(1, static_cast<std::int64_t>(content_hash));
    std::vector<std::string> people;
    while (query.step()) people.push_back(query.text(0));
    return people;
  }

  /// Deletes a person and their embeddings; false when there was none (nothing changed).
  bool remove(const std::string& person) {
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

  /// Renames a person; false when there was none. Throws Error when `to` is taken.
  bool rename(const std::string& from, const std::string& to) {
    std::lock_guard lock(mutex_);
    return db_.write_transaction(options_.attempts, [&] {
      auto find = db_.prepare("SELECT id FROM people WHERE name = ?1");
      if (!find.bind(1, from).step()) return false;
      const auto id = find.integer(0);
      if (from == to) return true;
      find.reset();
      if (find.bind(1, to).step()) {
        throw Error("cannot rename '" + from + "' to '" + to + "' in '" + file() + "': that person is already enrolled");
      }
      db_.prepare("UPDATE people SET name = ?1 WHERE id = ?2").bind(1, to).bind(2, id).run();
      mark_rewrite();
      return true;
    });
  }

  /// The database's version now.
  GalleryStoreVersion version() {
    std::lock_guard lock(mutex_);
    return read_version();
  }

  /// What changed since `known`, read in one snapshot: nothing (std::nullopt) when the version
  /// is the same; the rows after `known.last_row` when only enrollments happened; every row
  /// otherwise (`complete`). Throws GalleryError for a row of the wrong size or non-finite values.
  std::optional<GalleryStoreRows> changes_since(const GalleryStoreVersion& known) {
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

  /// SQLite's own check of the whole file: "ok", or what is wrong.
  std::string integrity_check() {
    std::lock_guard lock(mutex_);
    auto check = db_.prepare("PRAGMA integrity_check");
    std::string report;
    while (check.step()) report += (report.empty() ? "" : "; ") + check.text(0);
    return report;
  }

 private:
  GalleryStore(const std::filesystem::path& file, bool create, GalleryStoreOptions options)
      : db_((check_file_kind(file), file.string()), create, options.busy_timeout), options_(options) {}

  // Refuses, before SQLite touches it, a file that is neither empty nor a SQLite database.
  static void check_file_kind(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return;  // absent: created, or refused by open()
    char header[16] = {};
    in.read(header, sizeof header);
    const auto got = static_cast<std::size_t>(in.gcount());
    if (got == 0) return;  // empty: SQLite's own new-database state
    if (got >= 8 && std::memcmp(header, "SIAMGAL", 8) == 0) {
      throw GalleryError("'" + file.string() + "' is a gallery file of the single-file format, not a gallery database: "
                         "convert it with `gallery import " + file.string() + " NEW.db` (Gallery::enrollments())");
    }
    if (got < 16 || std::memcmp(header, "SQLite format 3", 16) != 0) {
      throw GalleryError("'" + file.string() + "' is not a siamese gallery database (not a SQLite file)");
    }
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
    const std::string name = "'" + file() + "'";
    detail::check_gallery_schema(db_);
    {  // the statement ends before the journal mode changes: no open read may remain
      auto model = db_.prepare("SELECT name, embedding_size FROM model WHERE id = 1");
      if (!model.step()) throw GalleryError(name + " has no model record");
      model_name_ = model.text(0);
      embedding_size_ = model.integer(1);
    }
    if (!detail::is_valid_name(model_name_)) {
      throw GalleryError(name + " names its model '" + detail::printable(model_name_.substr(0, 64)) +
                         "': a model name must be 1..1024 bytes without control characters");
    }
    if (embedding_size_ < 1 || embedding_size_ > 65536) {
      throw GalleryError(name + " claims embedding size " + std::to_string(embedding_size_));
    }
    auto mode = db_.prepare("PRAGMA journal_mode = WAL");
    if (!mode.step() || mode.text(0) != "wal") throw GalleryError(name + " cannot be switched to WAL mode");
    db_.execute("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON");
  }

  GalleryStoreVersion read_version() {
    auto statement = db_.prepare("SELECT generation, last_rewrite, (SELECT coalesce(max(id), 0) FROM embeddings) FROM model");
    if (!statement.step()) throw GalleryError("'" + file() + "' has no model record");
    return {statement.integer(0), statement.integer(1), statement.integer(2)};
  }

  void read_rows(GalleryStoreRows& out, std::int64_t after) {
    auto counter = db_.prepare("SELECT count(*) FROM embeddings WHERE id > ?1");
    counter.bind(1, after).step();
    const auto rows = counter.integer(0);
    out.embeddings = torch::empty({rows, embedding_size_}, torch::kFloat32);
    out.owners.reserve(static_cast<std::size_t>(rows));
    auto select = db_.prepare(
        "SELECT e.id, p.name, e.vector FROM embeddings e JOIN people p ON p.id = e.person WHERE e.id > ?1 ORDER BY e.id");
    select.bind(1, after);
    const auto row_bytes = static_cast<std::size_t>(embedding_size_) * sizeof(float);
    std::int64_t i = 0;
    for (; select.step(); ++i) {
      const auto [data, size] = select.blob(2);
      if (i >= rows || size != row_bytes) {
        throw GalleryError("gallery database '" + file() + "' is damaged: embedding " + std::to_string(select.integer(0)) +
                           " holds " + std::to_string(size) + " bytes, expected " + std::to_string(row_bytes));
      }
      std::memcpy(out.embeddings.data_ptr<float>() + i * embedding_size_, data, row_bytes);
      out.owners.push_back(select.text(1));
      if (!detail::is_valid_name(out.owners.back())) {
        // Printed raw, a newline breaks every line-based reader and an escape takes over a terminal.
        throw GalleryError("gallery database '" + file() + "' is damaged: embedding " + std::to_string(select.integer(0)) +
                           " belongs to '" + detail::printable(out.owners.back().substr(0, 64)) +
                           "', a name enroll refuses (empty, over 1024 bytes, or with control characters)");
      }
    }
    if (i != rows) throw GalleryError("gallery database '" + file() + "' is damaged: embeddings without a person");
    if (!torch::isfinite(out.embeddings).all().item<bool>()) {
      throw GalleryError("gallery database '" + file() + "' is damaged: it holds non-finite embeddings");
    }
  }

  void mark_rewrite() { db_.execute("UPDATE model SET generation = generation + 1, last_rewrite = generation + 1"); }

  std::mutex mutex_;
  detail::sqlite::Connection db_;
  GalleryStoreOptions options_;
  std::string model_name_;
  std::int64_t embedding_size_ = 0;
};

}  // namespace siamese
