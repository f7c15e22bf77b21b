#pragma once

#include <siamese/detail/files.hpp>
#include <siamese/detail/format.hpp>
#include <siamese/distance.hpp>
#include <siamese/errors.hpp>
#include <siamese/gallery_store.hpp>
#include <siamese/index.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace siamese {

/// One candidate of an identification.
struct GalleryMatch {
  std::string person;
  double distance = 0.0;  ///< Euclidean distance to the person's nearest enrolled embedding
};

/// The answer to "who is this?": the top-k people, and whether the best is close enough.
struct Identification {
  std::vector<GalleryMatch> candidates;  ///< nearest first
  bool known = false;                    ///< best distance <= the threshold; else "unknown"
  const std::string& best() const {
    static const std::string unknown = "unknown";
    return known ? candidates.front().person : unknown;
  }
};

/// People and their face embeddings, for 1:N identification.
///
/// Each person holds one or more embeddings (one per enrolled photo); a probe's distance to a
/// person is its distance to the nearest of them. A gallery records the model it was made
/// with (name and embedding size) and refuses embeddings of any other. Search goes through a
/// VectorIndex: ExactIndex (matrix products) by default, an approximate FAISS index
/// (siamese/faiss_index.hpp) for millions of embeddings.
///
/// Storage: a gallery lives in memory (the constructor; save() and load() move it to and from
/// a single checksummed file), or in a gallery database (open(): a GalleryStore, SQLite),
/// where every enroll, remove and rename is a transaction of its own and any number of
/// processes may change and read one gallery at once. A database-backed gallery keeps its
/// index in memory, built from the database, and brings it up to date before each read
/// (identify, people, size) when the database's change counter has moved: enrollments by
/// other processes are appended, a removal or rename anywhere reloads every row.
///
/// Thread safety: any number of threads may identify() while one thread enrolls, removes or
/// renames; readers see the gallery before or after each change, never half of one. Readers
/// search a snapshot without holding a lock; a writer copies the index first when a reader
/// still holds it (copy-on-write).
class Gallery {
 public:
  static constexpr std::uint32_t format_version = 1;

  /// The gallery in the database `file`, created for this model when it does not exist.
  /// Throws GalleryError when the file is not a gallery database, or was made with another
  /// model (naming both); FileError when it cannot be created.
  static Gallery open(const std::filesystem::path& file, const std::string& model_name, std::int64_t embedding_size,
                      GalleryStoreOptions options = {}) {
    return Gallery(GalleryStore::open_or_create(file, model_name, embedding_size, options));
  }

  /// The gallery in the existing database `file`, whatever its model. Throws FileError when
  /// there is none, GalleryError when it is not a gallery database.
  static Gallery open(const std::filesystem::path& file, GalleryStoreOptions options = {}) {
    return Gallery(GalleryStore::open(file, options));
  }

  Gallery(std::string model_name, std::int64_t embedding_size)
      : model_name_(std::move(model_name)), embedding_size_(embedding_size) {
    if (embedding_size < 1 || embedding_size > 65536) {
      throw GalleryError("embedding size must be in 1..65536, got " + std::to_string(embedding_size));
    }
    embeddings_ = torch::empty({0, embedding_size}, torch::kFloat32);
    capacity_ = embeddings_;
    index_ = std::make_shared<ExactIndex>();
    index_->reset(embeddings_);
  }

  Gallery(const Gallery& other) {
    std::shared_lock lock(other.mutex_);
    model_name_ = other.model_name_;
    embedding_size_ = other.embedding_size_;
    embeddings_ = other.embeddings_;
    capacity_ = other.embeddings_;  // no spare rows: the other gallery may still fill its own
    owners_ = other.owners_;
    rows_per_person_ = other.rows_per_person_;
    most_rows_ = other.most_rows_;
    index_ = other.index_;  // shared until either side changes: copy-on-write
    store_ = other.store_;
    known_ = other.known_;
  }

  /// The database behind this gallery; null for an in-memory gallery.
  GalleryStore* store() const { return store_.get(); }

  /// Searches through `index` from now on, built from the enrolled embeddings.
  /// Requires: a non-null index.
  void set_index(std::unique_ptr<VectorIndex> index) {
    if (!index) throw Error("Gallery::set_index needs an index");
    std::unique_lock lock(mutex_);
    index->reset(embeddings_);
    index_ = std::move(index);
  }

  /// What the gallery searches with.
  std::string index_description() const {
    std::shared_lock lock(mutex_);
    return index_->description();
  }

  const std::string& model_name() const { return model_name_; }
  std::int64_t embedding_size() const { return embedding_size_; }

  /// Throws GalleryError naming both models when `model_name`/`embedding_size` differ from
  /// the gallery's.
  void check_model(const std::string& model_name, std::int64_t embedding_size) const {
    if (store_) return store_->check_model(model_name, embedding_size);
    detail::check_same_model("gallery", model_name_, embedding_size_, model_name, embedding_size);
  }

  /// Adds embeddings [K, D] (or one [D]) for `person` (a non-empty UTF-8 name of at most
  /// 1024 bytes, no control characters); `photos`, when given, says where each row came from
  /// (kept by a database, ignored in memory). Throws ShapeError for the wrong size, NumericError
  /// for non-finite values, Error for a bad name or a `photos` list of the wrong length.
  void enroll(const std::string& person, const torch::Tensor& embeddings, std::vector<EnrolledPhoto> photos = {}) {
    enroll(std::vector<Enrollment>{{person, embeddings, std::move(photos)}});
  }

  /// Adds several people's embeddings at once, each checked as enroll() checks one: in a
  /// database, one transaction for all of them (all or none).
  void enroll(const std::vector<Enrollment>& batch) {
    std::vector<Enrollment> checked;
    checked.reserve(batch.size());
    for (const auto& enrollment : batch) checked.push_back(check_enrollment(enrollment));
    if (store_) {
      store_->enroll(checked);
      sync();
      return;
    }
    std::vector<std::string> owners;
    std::vector<torch::Tensor> rows;
    for (const auto& enrollment : checked) {
      owners.insert(owners.end(), static_cast<std::size_t>(enrollment.embeddings.size(0)), enrollment.person);
      rows.push_back(enrollment.embeddings);
    }
    std::unique_lock lock(mutex_);
    append_rows(owners, torch::cat(rows));  // one copy of the matrix for the whole batch
  }

  /// Every person's embeddings, in order of enrollment (photo records are not kept in
  /// memory): what enroll() takes, to copy a gallery into another (an in-memory gallery into
  /// a database, or back).
  std::vector<Enrollment> enrollments() const {
    sync();
    std::shared_lock lock(mutex_);
    std::unordered_map<std::string, std::size_t> slot;
    std::vector<std::vector<std::int64_t>> rows;
    std::vector<Enrollment> out;
    for (std::size_t i = 0; i < owners_->size(); ++i) {
      const auto [at, added] = slot.emplace((*owners_)[i], out.size());
      if (added) {
        out.push_back({(*owners_)[i], {}, {}});
        rows.emplace_back();
      }
      rows[at->second].push_back(static_cast<std::int64_t>(i));
    }
    for (std::size_t p = 0; p < out.size(); ++p) out[p].embeddings = embeddings_.index_select(0, torch::tensor(rows[p]));
    return out;
  }

  /// Removes a person; returns false when there was none.
  bool remove(const std::string& person) {
    if (store_) {
      const bool removed = store_->remove(person);
      sync();
      return removed;
    }
    std::unique_lock lock(mutex_);
    if (rows_per_person_.count(person) == 0) return false;
    std::vector<std::int64_t> keep;
    std::vector<std::string> owners;
    for (std::size_t i = 0; i < owners_->size(); ++i) {
      if ((*owners_)[i] != person) {
        keep.push_back(static_cast<std::int64_t>(i));
        owners.push_back((*owners_)[i]);
      }
    }
    replace_rows(std::move(owners), embeddings_.index_select(0, torch::tensor(keep, torch::kInt64)));
    return true;
  }

  /// Renames a person; returns false when there was none. Throws Error when `to` is taken.
  bool rename(const std::string& from, const std::string& to) {
    check_name(to);
    if (store_) {
      const bool renamed = store_->rename(from, to);
      sync();
      return renamed;
    }
    std::unique_lock lock(mutex_);
    if (from != to && rows_per_person_.count(to) > 0) {
      throw Error("cannot rename '" + from + "' to '" + to + "': that person is already enrolled");
    }
    const auto found = rows_per_person_.find(from);
    if (found == rows_per_person_.end()) return false;
    const auto rows = found->second;
    rows_per_person_.erase(found);
    rows_per_person_[to] = rows;
    for (auto& owner : writable_owners()) {
      if (owner == from) owner = to;
    }
    return true;
  }

  /// People and how many embeddings each has, sorted by name.
  std::vector<std::pair<std::string, std::size_t>> people() const {
    sync();
    std::shared_lock lock(mutex_);
    std::vector<std::pair<std::string, std::size_t>> list;
    for (const auto& [person, rows] : rows_per_person_) list.emplace_back(person, static_cast<std::size_t>(rows));
    std::sort(list.begin(), list.end());
    return list;
  }

  std::size_t size() const {
    sync();
    std::shared_lock lock(mutex_);
    return owners_->size();
  }

  /// Identifies probes [P, D] (or one [D]) in one search of the whole gallery (one matrix
  /// product with the exact index).
  /// Ensures: one Identification per probe, at most `k` distinct people each, nearest first;
  /// `known` when the nearest is within `threshold`. With an approximate index the people
  /// found may miss a nearer one; their distances are exact.
  std::vector<Identification> identify(const torch::Tensor& probes, std::size_t k, double threshold) const {
    auto rows = probes.defined() && probes.dim() == 1 ? probes.unsqueeze(0) : probes;
    if (!rows.defined() || rows.dim() != 2 || rows.size(1) != embedding_size_) {
      throw ShapeError("gallery of " + std::to_string(embedding_size_) + "-d embeddings cannot search " +
                       detail::shape_string(probes));
    }
    sync();
    std::shared_ptr<const VectorIndex> index;
    std::shared_ptr<const std::vector<std::string>> owners;
    std::int64_t most_rows = 0;
    {
      std::shared_lock lock(mutex_);
      index = index_;  // snapshots: writers copy what readers hold before changing it
      owners = owners_;
      most_rows = most_rows_;
    }
    std::vector<Identification> results(static_cast<std::size_t>(rows.size(0)));
    if (owners->empty() || k == 0) return results;
    torch::NoGradGuard no_grad;
    // If no person has more than R rows, the k*R nearest rows hold at least k people, and the
    // first time a person appears in them is at that person's nearest row: exact top-k people.
    const auto take = std::min<std::int64_t>(static_cast<std::int64_t>(owners->size()), static_cast<std::int64_t>(k) * most_rows);
    const auto found = index->search(rows.to(torch::kCPU, torch::kFloat32).contiguous(), take);
    const auto v = found.distances.to(torch::kFloat64).contiguous();
    const auto ix = found.rows.contiguous();
    for (std::int64_t p = 0; p < rows.size(0); ++p) {
      auto& result = results[static_cast<std::size_t>(p)];
      for (std::int64_t j = 0; j < take && result.candidates.size() < k; ++j) {
        const auto row = ix.data_ptr<std::int64_t>()[p * take + j];
        if (row < 0) break;
        const auto& person = (*owners)[static_cast<std::size_t>(row)];
        const bool seen = std::any_of(result.candidates.begin(), result.candidates.end(),
                                      [&](const GalleryMatch& m) { return m.person == person; });
        if (!seen) result.candidates.push_back({person, v.data_ptr<double>()[p * take + j]});
      }
      result.known = !result.candidates.empty() && is_match<EuclideanDistance>(result.candidates.front().distance, threshold);
    }
    return results;
  }

  /// Saves to `file` atomically: written to FILE.tmp, flushed to disk, then renamed over the
  /// old file, so a crash or a full disk leaves the previous gallery intact.
  /// Format: "SIAMGAL\\0", u32 version, u32 name length, model name, i64 embedding size,
  /// u64 count, count x (u32 name length, name, D float32), then u64 FNV-1a of all before.
  void save(const std::filesystem::path& file) const {
    std::string bytes;
    {
      std::shared_lock lock(mutex_);
      bytes.append("SIAMGAL", 8);
      put(bytes, format_version);
      put(bytes, static_cast<std::uint32_t>(model_name_.size()));
      bytes += model_name_;
      put(bytes, embedding_size_);
      const auto& owners = *owners_;
      put(bytes, static_cast<std::uint64_t>(owners.size()));
      const auto data = embeddings_.contiguous();
      const auto row_bytes = static_cast<std::size_t>(embedding_size_) * sizeof(float);
      for (std::size_t i = 0; i < owners.size(); ++i) {
        put(bytes, static_cast<std::uint32_t>(owners[i].size()));
        bytes += owners[i];
        bytes.append(reinterpret_cast<const char*>(data.data_ptr<float>()) + i * row_bytes, row_bytes);
      }
    }
    put(bytes, detail::fnv1a(bytes.data(), bytes.size()));
    detail::write_file_atomically(file, bytes, "gallery");
  }

  /// Loads a gallery saved by save(). Reads at most `max_bytes`; checks the checksum before
  /// trusting any count, so a truncated, tampered or hostile file raises GalleryError (naming
  /// the file) without allocating what it claims.
  static Gallery load(const std::filesystem::path& file, std::uintmax_t max_bytes = 8ULL << 30) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec)) throw FileError("gallery file '" + file.string() + "' does not exist");
    const auto size = std::filesystem::file_size(file, ec);
    const std::string name = "gallery '" + file.string() + "'";
    if (ec || size > max_bytes) throw GalleryError(name + " is larger than the limit of " + std::to_string(max_bytes) + " bytes");
    std::string bytes(static_cast<std::size_t>(size), '\0');
    std::ifstream in(file, std::ios::binary);
    if (!in.read(bytes.data(), static_cast<std::streamsize>(size))) throw FileError("cannot read " + name);
    return parse(bytes, name);
  }

  /// A gallery from the bytes of a gallery file; `name` labels errors. Throws as load().
  static Gallery parse(const std::string& bytes, const std::string& name) {
    if (bytes.size() < 8 + 4 + 8 || bytes.compare(0, 8, std::string("SIAMGAL", 8)) != 0) {
      throw GalleryError(name + " is not a siamese gallery file");
    }
    std::uint64_t stored = 0;
    std::memcpy(&stored, bytes.data() + bytes.size() - 8, 8);
    if (stored != detail::fnv1a(bytes.data(), bytes.size() - 8)) {
      throw GalleryError(name + " is damaged (checksum mismatch: truncated or modified)");
    }
    std::size_t at = 8;
    const auto end = bytes.size() - 8;
    const auto version = get<std::uint32_t>(bytes, at, end, name);
    if (version != format_version) throw GalleryError(name + " has format version " + std::to_string(version));
    const auto name_length = get<std::uint32_t>(bytes, at, end, name);
    const auto model = take(bytes, at, end, name_length, name);
    const auto dim = get<std::int64_t>(bytes, at, end, name);
    const auto count = get<std::uint64_t>(bytes, at, end, name);
    if (dim < 1 || dim > 65536) throw GalleryError(name + " claims embedding size " + std::to_string(dim));
    const auto row_bytes = static_cast<std::uint64_t>(dim) * sizeof(float);
    if (count > (end - at) / (row_bytes + 4)) {
      throw GalleryError(name + " claims " + std::to_string(count) + " entries, more than its size can hold");
    }
    Gallery gallery(model, dim);
    auto data = torch::empty({static_cast<std::int64_t>(count), dim}, torch::kFloat32);
    std::vector<std::string> owners;
    for (std::uint64_t i = 0; i < count; ++i) {
      const auto length = get<std::uint32_t>(bytes, at, end, name);
      owners.push_back(take(bytes, at, end, length, name));
      if (!valid_name(owners.back())) throw GalleryError(name + " holds an invalid person name at entry " + std::to_string(i));
      std::memcpy(data.data_ptr<float>() + i * static_cast<std::uint64_t>(dim), take(bytes, at, end, row_bytes, name).data(), row_bytes);
    }
    if (at != end) throw GalleryError(name + " has " + std::to_string(end - at) + " unexpected bytes");
    std::unique_lock lock(gallery.mutex_);
    gallery.replace_rows(std::move(owners), data);
    return gallery;
  }

 private:
  explicit Gallery(std::unique_ptr<GalleryStore> store) : Gallery(store->model_name(), store->embedding_size()) {
    store_ = std::move(store);
    sync();
  }

  Enrollment check_enrollment(const Enrollment& enrollment) const {
    check_name(enrollment.person);
    const auto& embeddings = enrollment.embeddings;
    auto rows = embeddings.defined() && embeddings.dim() == 1 ? embeddings.unsqueeze(0) : embeddings;
    if (!rows.defined() || rows.dim() != 2 || rows.size(1) != embedding_size_ || rows.size(0) < 1) {
      throw ShapeError("gallery of " + std::to_string(embedding_size_) + "-d embeddings cannot enroll " +
                       detail::shape_string(embeddings));
    }
    rows = rows.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    if (!torch::isfinite(rows).all().item<bool>()) {
      throw NumericError("cannot enroll non-finite embeddings for '" + enrollment.person + "'");
    }
    if (!enrollment.photos.empty() && enrollment.photos.size() != static_cast<std::size_t>(rows.size(0))) {
      throw Error("enrolling '" + enrollment.person + "': " + std::to_string(enrollment.photos.size()) + " photo records for " +
                  std::to_string(rows.size(0)) + " embeddings");
    }
    return {enrollment.person, rows, enrollment.photos};
  }

  // Brings a database-backed gallery up to date with its database (see the class comment).
  void sync() const {
    if (!store_) return;
    std::lock_guard syncing(sync_mutex_);
    auto changes = store_->changes_since(known_);
    if (!changes) return;
    std::unique_lock lock(mutex_);
    if (changes->complete) {
      replace_rows(std::move(changes->owners), changes->embeddings);
    } else {
      append_rows(changes->owners, changes->embeddings);
    }
    known_ = changes->version;
  }

  // Called with the lock held for writing: rows [K, D] owned by `owners` (K names) are added.
  // They go into the spare rows of capacity_, which grows by an eighth when full: an
  // enrollment costs its own rows (and, amortised, eight row copies each), not a copy of the
  // gallery, for at most 12.5% more memory. Readers' snapshots end before the spare rows, so
  // writing there changes nothing they see.
  void append_rows(const std::vector<std::string>& owners, const torch::Tensor& rows) const {
    if (owners.empty()) return;
    const auto first_new = embeddings_.size(0);
    const auto needed = first_new + rows.size(0);
    if (capacity_.size(0) < needed) {
      auto bigger = torch::empty({needed + needed / 8, embedding_size_}, torch::kFloat32);
      bigger.narrow(0, 0, first_new).copy_(embeddings_);
      capacity_ = bigger;
    }
    capacity_.narrow(0, first_new, rows.size(0)).copy_(rows);
    const auto grown = capacity_.narrow(0, 0, needed);
    writable_index().append(grown, first_new);
    embeddings_ = grown;
    auto& all_owners = writable_owners();
    all_owners.insert(all_owners.end(), owners.begin(), owners.end());
    for (const auto& person : owners) most_rows_ = std::max(most_rows_, ++rows_per_person_[person]);
  }

  // Called with the lock held for writing: the gallery becomes exactly these rows.
  void replace_rows(std::vector<std::string> owners, const torch::Tensor& rows) const {
    rows_per_person_.clear();
    most_rows_ = 0;
    for (const auto& person : owners) most_rows_ = std::max(most_rows_, ++rows_per_person_[person]);
    owners_ = std::make_shared<std::vector<std::string>>(std::move(owners));
    embeddings_ = rows;
    capacity_ = rows;
    writable_index().reset(embeddings_);
  }

  static bool valid_name(const std::string& person) {
    const bool control = std::any_of(person.begin(), person.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; });
    return !person.empty() && person.size() <= 1024 && !control;
  }

  static void check_name(const std::string& person) {
    if (!valid_name(person)) throw Error("a person's name must be 1..1024 bytes without control characters");
  }

  template <class T>
  static void put(std::string& bytes, T value) {
    bytes.append(reinterpret_cast<const char*>(&value), sizeof value);
  }

  static std::string take(const std::string& bytes, std::size_t& at, std::size_t end, std::uint64_t n, const std::string& name) {
    if (n > end - at) throw GalleryError(name + " ends early");
    std::string out = bytes.substr(at, static_cast<std::size_t>(n));
    at += static_cast<std::size_t>(n);
    return out;
  }

  template <class T>
  static T get(const std::string& bytes, std::size_t& at, std::size_t end, const std::string& name) {
    T value;
    std::memcpy(&value, take(bytes, at, end, sizeof value, name).data(), sizeof value);
    return value;
  }

  // Called with the lock held for writing: an index a reader holds is copied, not changed.
  VectorIndex& writable_index() const {
    if (index_.use_count() > 1) index_ = std::shared_ptr<VectorIndex>(index_->clone());
    return *index_;
  }

  std::vector<std::string>& writable_owners() const {
    if (owners_.use_count() > 1) owners_ = std::make_shared<std::vector<std::string>>(*owners_);
    return *owners_;
  }

  mutable std::shared_mutex mutex_;
  std::string model_name_;
  std::int64_t embedding_size_ = 0;
  // The rows and their index: for a database-backed gallery a cache of the database, which
  // readers (const) bring up to date, hence mutable.
  mutable torch::Tensor embeddings_;  ///< [M, D] float32, CPU: the first M rows of capacity_; rows never change
  mutable torch::Tensor capacity_;    ///< [C >= M, D]: embeddings_ and the spare rows appends fill
  mutable std::shared_ptr<std::vector<std::string>> owners_ = std::make_shared<std::vector<std::string>>();  ///< person of each row
  mutable std::unordered_map<std::string, std::int64_t> rows_per_person_;
  mutable std::int64_t most_rows_ = 0;  ///< the most rows any person has
  mutable std::shared_ptr<VectorIndex> index_;  ///< derived from embeddings_
  std::shared_ptr<GalleryStore> store_;  ///< the database, or null in memory
  mutable std::mutex sync_mutex_;        ///< one sync() at a time
  mutable GalleryStoreVersion known_;    ///< the database version the rows reflect
};

}  // namespace siamese
