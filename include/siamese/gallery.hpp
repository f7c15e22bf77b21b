#pragma once

#include <siamese/detail/files.hpp>
#include <siamese/detail/format.hpp>
#include <siamese/distance.hpp>
#include <siamese/errors.hpp>
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

/// A gallery file is damaged, from another model, or beyond the limits; nothing was changed.
class GalleryError : public Error {
 public:
  using Error::Error;
};

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
/// Thread safety: any number of threads may identify() while one thread enrolls, removes or
/// renames; readers see the gallery before or after each change, never half of one. Readers
/// search a snapshot without holding a lock; a writer copies the index first when a reader
/// still holds it (copy-on-write).
class Gallery {
 public:
  static constexpr std::uint32_t format_version = 1;

  Gallery(std::string model_name, std::int64_t embedding_size)
      : model_name_(std::move(model_name)), embedding_size_(embedding_size) {
    if (embedding_size < 1 || embedding_size > 65536) {
      throw GalleryError("embedding size must be in 1..65536, got " + std::to_string(embedding_size));
    }
    embeddings_ = torch::empty({0, embedding_size}, torch::kFloat32);
    index_ = std::make_shared<ExactIndex>();
    index_->reset(embeddings_);
  }

  Gallery(const Gallery& other) {
    std::shared_lock lock(other.mutex_);
    model_name_ = other.model_name_;
    embedding_size_ = other.embedding_size_;
    embeddings_ = other.embeddings_;
    owners_ = other.owners_;
    rows_per_person_ = other.rows_per_person_;
    most_rows_ = other.most_rows_;
    index_ = other.index_;  // shared until either side changes: copy-on-write
  }

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
    if (model_name != model_name_ || embedding_size != embedding_size_) {
      throw GalleryError("gallery was made with model '" + model_name_ + "' (" + std::to_string(embedding_size_) +
                         "-d) and cannot be used with '" + model_name + "' (" + std::to_string(embedding_size) + "-d)");
    }
  }

  /// Adds embeddings [K, D] (or one [D]) for `person` (a non-empty UTF-8 name of at most
  /// 1024 bytes, no control characters). Throws ShapeError for the wrong size, NumericError for
  /// non-finite values, Error for a bad name.
  void enroll(const std::string& person, const torch::Tensor& embeddings) {
    check_name(person);
    auto rows = embeddings.defined() && embeddings.dim() == 1 ? embeddings.unsqueeze(0) : embeddings;
    if (!rows.defined() || rows.dim() != 2 || rows.size(1) != embedding_size_ || rows.size(0) < 1) {
      throw ShapeError("gallery of " + std::to_string(embedding_size_) + "-d embeddings cannot enroll " +
                       detail::shape_string(embeddings));
    }
    rows = rows.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    if (!torch::isfinite(rows).all().item<bool>()) throw NumericError("cannot enroll non-finite embeddings for '" + person + "'");
    std::unique_lock lock(mutex_);
    const auto first_new = embeddings_.size(0);
    auto grown = torch::cat({embeddings_, rows});  // a new tensor: readers keep the old one
    writable_index().append(grown, first_new);
    embeddings_ = grown;
    auto& owners = writable_owners();
    owners.insert(owners.end(), static_cast<std::size_t>(rows.size(0)), person);
    most_rows_ = std::max(most_rows_, rows_per_person_[person] += rows.size(0));
  }

  /// Removes a person; returns false when there was none.
  bool remove(const std::string& person) {
    std::unique_lock lock(mutex_);
    std::vector<std::int64_t> keep;
    if (rows_per_person_.erase(person) == 0) return false;
    auto owners = std::make_shared<std::vector<std::string>>();
    for (std::size_t i = 0; i < owners_->size(); ++i) {
      if ((*owners_)[i] != person) {
        keep.push_back(static_cast<std::int64_t>(i));
        owners->push_back((*owners_)[i]);
      }
    }
    embeddings_ = embeddings_.index_select(0, torch::tensor(keep, torch::kInt64));
    owners_ = std::move(owners);
    most_rows_ = 0;
    for (const auto& entry : rows_per_person_) most_rows_ = std::max(most_rows_, entry.second);
    writable_index().reset(embeddings_);
    return true;
  }

  /// Renames a person; returns false when there was none. Throws Error when `to` is taken.
  bool rename(const std::string& from, const std::string& to) {
    check_name(to);
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
    std::shared_lock lock(mutex_);
    std::vector<std::pair<std::string, std::size_t>> list;
    for (const auto& [person, rows] : rows_per_person_) list.emplace_back(person, static_cast<std::size_t>(rows));
    std::sort(list.begin(), list.end());
    return list;
  }

  std::size_t size() const {
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
    for (std::uint64_t i = 0; i < count; ++i) {
      const auto length = get<std::uint32_t>(bytes, at, end, name);
      auto& owners = gallery.writable_owners();
      owners.push_back(take(bytes, at, end, length, name));
      if (!valid_name(owners.back())) throw GalleryError(name + " holds an invalid person name at entry " + std::to_string(i));
      gallery.most_rows_ = std::max(gallery.most_rows_, ++gallery.rows_per_person_[owners.back()]);
      std::memcpy(data.data_ptr<float>() + i * static_cast<std::uint64_t>(dim), take(bytes, at, end, row_bytes, name).data(), row_bytes);
    }
    if (at != end) throw GalleryError(name + " has " + std::to_string(end - at) + " unexpected bytes");
    gallery.embeddings_ = data;
    gallery.index_->reset(data);
    return gallery;
  }

 private:
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
  VectorIndex& writable_index() {
    if (index_.use_count() > 1) index_ = std::shared_ptr<VectorIndex>(index_->clone());
    return *index_;
  }

  std::vector<std::string>& writable_owners() {
    if (owners_.use_count() > 1) owners_ = std::make_shared<std::vector<std::string>>(*owners_);
    return *owners_;
  }

  mutable std::shared_mutex mutex_;
  std::string model_name_;
  std::int64_t embedding_size_ = 0;
  torch::Tensor embeddings_;          ///< [M, D] float32, CPU; replaced, never modified in place
  std::shared_ptr<std::vector<std::string>> owners_ = std::make_shared<std::vector<std::string>>();  ///< person of each row
  std::unordered_map<std::string, std::int64_t> rows_per_person_;
  std::int64_t most_rows_ = 0;  ///< the most rows any person has
  std::shared_ptr<VectorIndex> index_;  ///< derived from embeddings_
};

}  // namespace siamese
