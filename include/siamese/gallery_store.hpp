#pragma once

// What a gallery database is, whatever engine keeps it: the interface GalleryStore, with the
// records it takes and returns. The engines: SqliteGalleryStore (sqlite_gallery_store.hpp, a
// file), PostgresGalleryStore (postgres_gallery_store.hpp, a server); open_gallery_store()
// (gallery_database.hpp) picks one from a location.

#include <siamese/detail/format.hpp>
#include <siamese/errors.hpp>

#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
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

/// Throws GalleryError unless `size` is an embedding size a gallery takes (1..65536).
inline void check_embedding_size(std::int64_t size) {
  if (size < 1 || size > 65536) throw GalleryError("embedding size must be in 1..65536, got " + std::to_string(size));
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

/// Rows (oldest first) grouped into one Enrollment per person, people in order of their first
/// row; `photos` is empty, or one record per row.
namespace detail {
inline std::vector<Enrollment> group_by_person(const std::vector<std::string>& owners, const torch::Tensor& rows,
                                               std::vector<EnrolledPhoto> photos = {}) {
  std::vector<Enrollment> out;
  std::vector<std::vector<std::int64_t>> picked;
  std::unordered_map<std::string, std::size_t> slot;
  for (std::size_t i = 0; i < owners.size(); ++i) {
    const auto [at, added] = slot.emplace(owners[i], out.size());
    if (added) {
      out.push_back({owners[i], {}, {}});
      picked.emplace_back();
    }
    picked[at->second].push_back(static_cast<std::int64_t>(i));
    if (!photos.empty()) out[at->second].photos.push_back(std::move(photos[i]));
  }
  for (std::size_t p = 0; p < out.size(); ++p) out[p].embeddings = rows.index_select(0, torch::tensor(picked[p]));
  return out;
}
}  // namespace detail

/// How a GalleryStore waits for others and tells what it does on its own.
struct GalleryStoreOptions {
  /// How long one statement waits for another writer's lock before giving up.
  std::chrono::milliseconds busy_timeout{10000};
  /// How many times a write transaction is tried when the lock stays taken through a whole
  /// busy_timeout (then GalleryBusyError), or, on a server, when the connection is lost before
  /// the commit (then GalleryUnavailableError).
  int attempts = 3;
  /// Told, in one line, of what a store does unasked: a server store reconnecting, or falling
  /// behind and reading every row again. Called on the thread that called the store; by
  /// default nobody is told (the library writes nothing to standard error).
  std::function<void(const std::string&)> on_event;
};

/// The version of a gallery database: `generation` moves with every change, `last_rewrite`
/// is the generation of the last removal or rename, `last_row` the newest embedding's id.
/// A reader that knows one version and sees only `generation` move can append the rows after
/// `last_row`; a moved `last_rewrite` means rows were renamed or deleted.
struct GalleryStoreVersion {
  std::int64_t generation = -1;
  std::int64_t last_rewrite = -1;
  std::int64_t last_row = 0;
  friend bool operator==(const GalleryStoreVersion& a, const GalleryStoreVersion& b) {
    return a.generation == b.generation && a.last_rewrite == b.last_rewrite;
  }
};

/// A removal (no new name) or a rename, at the generation that made it.
struct GalleryStoreRewrite {
  std::int64_t generation = 0;
  std::string person;
  std::optional<std::string> renamed_to;
};

/// Rows read from a gallery database, oldest first.
struct GalleryStoreRows {
  GalleryStoreVersion version;       ///< the database's version when they were read
  bool complete = false;             ///< every row (true), or only the changes since the asked version
  std::vector<std::string> owners;   ///< the person of each row
  torch::Tensor embeddings;          ///< [rows, D] float32, CPU
  /// When not complete: the removals and renames since the asked version, oldest first, and
  /// each row's generation, to apply both in the order they were made (a row enrolled after a
  /// person's removal stays). Empty unless the store records rewrites (PostgreSQL does; SQLite
  /// reads every row again after one).
  std::vector<GalleryStoreRewrite> rewrites;
  std::vector<std::int64_t> row_generations;  ///< one per row when `rewrites` is not empty
};

/// A gallery's embeddings in a database that many processes, on one machine or several, may
/// change and read at once.
///
/// A database holds the model identity (name and embedding size), the people, their
/// embeddings (float32, with the photo's source and content hash when known) and a change
/// counter. Every engine gives the same guarantees: enroll, remove and rename are each one
/// transaction, a batch is all or nothing, what was committed survives a killed process, the
/// model and the schema are checked on open before anything is written, and a photo's content
/// hash enrolled twice for one person is one row (so an enrollment retried after a lost
/// connection is not doubled).
///
/// Thread safety: the methods of one store may be called from any thread. After fork(), a
/// child opens its own store.
class GalleryStore {
 public:
  virtual ~GalleryStore() = default;

  /// The database: a file's path, or a server's URL with its password masked. Every error
  /// names the database this way.
  virtual const std::string& location() const = 0;
  const std::string& model_name() const { return model_name_; }
  std::int64_t embedding_size() const { return embedding_size_; }

  /// Throws GalleryError naming both models when they differ from the database's.
  void check_model(const std::string& model_name, std::int64_t embedding_size) const {
    detail::check_same_model("gallery '" + location() + "'", model_name_, embedding_size_, model_name, embedding_size);
  }

  /// Adds every enrollment in one transaction: all of them or, on any error, none. A row whose
  /// photo record has a content hash the same person already has (in the database, or earlier
  /// in the batch) is skipped: the same photo enrolled twice is one row.
  /// Requires: rows [K, D] float32, CPU, contiguous and finite, `photos` empty or K long, names
  /// valid, as Gallery::enroll() checks them (use that: it also keeps its index up to date).
  /// The layout is checked here too (ShapeError), the values and names are not.
  /// Ensures: returns the rows added.
  virtual std::size_t enroll(const std::vector<Enrollment>& batch) = 0;

  /// The people who have a photo with `content_hash` enrolled, sorted by name.
  virtual std::vector<std::string> people_with_photo(std::uint64_t content_hash) = 0;

  /// Deletes a person and their embeddings; false when there was none (nothing changed).
  virtual bool remove(const std::string& person) = 0;

  /// Renames a person; false when there was none. Throws Error when `to` is taken.
  virtual bool rename(const std::string& from, const std::string& to) = 0;

  /// The database's version now.
  virtual GalleryStoreVersion version() = 0;

  /// What changed since `known`, read in one snapshot: nothing (std::nullopt) when the version
  /// is the same; the changes after `known` when the store can tell them; every row otherwise
  /// (`complete`). Throws GalleryError for a row of the wrong size or non-finite values.
  virtual std::optional<GalleryStoreRows> changes_since(const GalleryStoreVersion& known) = 0;

  /// Whether changes_since() may find anything new: always true for a store that must ask
  /// (SQLite: one cheap query); a store told of every commit (PostgreSQL's notifications)
  /// answers from what it was told, without a round trip.
  virtual bool may_have_changed() { return true; }

  /// Every person's embeddings with their photo records, people in order of their first row:
  /// what enroll() takes, to copy a gallery into another database, on any engine.
  virtual std::vector<Enrollment> enrollments() = 0;

  /// The engine's own check of the whole database: "ok", or what is wrong.
  virtual std::string integrity_check() = 0;

 protected:
  GalleryStore() = default;
  GalleryStore(const GalleryStore&) = delete;
  GalleryStore& operator=(const GalleryStore&) = delete;

  /// Throws ShapeError unless every enrollment's rows are laid out as enroll() requires.
  void check_layout(const std::vector<Enrollment>& batch) const {
    for (const auto& e : batch) {
      const auto& rows = e.embeddings;
      if (!rows.defined() || rows.dim() != 2 || rows.size(1) != embedding_size_ || rows.scalar_type() != torch::kFloat32 ||
          !rows.device().is_cpu() || !rows.is_contiguous() ||
          (!e.photos.empty() && e.photos.size() != static_cast<std::size_t>(rows.size(0)))) {
        throw ShapeError("gallery '" + location() + "' stores contiguous float32 CPU rows [K, " + std::to_string(embedding_size_) +
                         "] with K photo records or none; got " + detail::shape_string(rows) + " " +
                         detail::dtype_string(rows) + " with " + std::to_string(e.photos.size()) + " records for '" +
                         e.person + "'");
      }
    }
  }

  /// Throws GalleryError unless the model record read from the database is one a gallery takes.
  void set_model(std::string model_name, std::int64_t embedding_size) {
    if (!detail::is_valid_name(model_name)) {
      throw GalleryError("'" + location() + "' names its model '" + detail::printable(model_name.substr(0, 64)) +
                         "': a model name must be 1..1024 bytes without control characters");
    }
    if (embedding_size < 1 || embedding_size > 65536) {
      throw GalleryError("'" + location() + "' claims embedding size " + std::to_string(embedding_size));
    }
    model_name_ = std::move(model_name);
    embedding_size_ = embedding_size;
  }

  /// Throws GalleryError unless `rows` read from the database are whole and finite and their
  /// `owners` are names enroll takes.
  void check_rows_read(const std::vector<std::string>& owners, const torch::Tensor& rows) const {
    for (const auto& owner : owners) {
      if (!detail::is_valid_name(owner)) {
        // Printed raw, a newline breaks every line-based reader and an escape takes over a terminal.
        throw GalleryError("gallery database '" + location() + "' is damaged: an embedding belongs to '" +
                           detail::printable(owner.substr(0, 64)) +
                           "', a name enroll refuses (empty, over 1024 bytes, or with control characters)");
      }
    }
    if (!torch::isfinite(rows).all().item<bool>()) {
      throw GalleryError("gallery database '" + location() + "' is damaged: it holds non-finite embeddings");
    }
  }

 private:
  std::string model_name_;
  std::int64_t embedding_size_ = 0;
};

}  // namespace siamese
