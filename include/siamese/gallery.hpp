#pragma once

#include <siamese/detail/files.hpp>
#include <siamese/detail/format.hpp>
#include <siamese/distance.hpp>
#include <siamese/errors.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
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

/// People and their face embeddings, for 1:N identification with exact search.
///
/// Each person holds one or more embeddings (one per enrolled photo); a probe's distance to a
/// person is its distance to the nearest of them. A gallery records the model it was made
/// with (name and embedding size) and refuses embeddings of any other.
///
/// Thread safety: any number of threads may identify() while one thread enrolls, removes or
/// renames; readers see the gallery before or after each change, never half of one.
class Gallery {
 public:
  static constexpr std::uint32_t format_version = 1;

  Gallery(std::string model_name, std::int64_t embedding_size)
      : model_name_(std::move(model_name)), embedding_size_(embedding_size),
        embeddings_(torch::empty({0, embedding_size}, torch::kFloat32)) {
    if (embedding_size < 1 || embedding_size > 65536) {
      throw GalleryError("embedding size must be in 1..65536, got " + std::to_string(embedding_size));
    }
  }

  Gallery(const Gallery& other) {
    std::shared_lock lock(other.mutex_);
    model_name_ = other.model_name_;
    embedding_size_ = other.embedding_size_;
    embeddings_ = other.embeddings_;
    owners_ = other.owners_;
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
    embeddings_ = torch::cat({embeddings_, rows});  // a new tensor: readers keep the old one
    owners_.insert(owners_.end(), static_cast<std::size_t>(rows.size(0)), person);
  }

  /// Removes a person; returns false when there was none.
  bool remove(const std::string& person) {
    std::unique_lock lock(mutex_);
    std::vector<std::int64_t> keep;
    std::vector<std::string> owners;
    for (std::size_t i = 0; i < owners_.size(); ++i) {
      if (owners_[i] != person) {
        keep.push_back(static_cast<std::int64_t>(i));
        owners.push_back(owners_[i]);
      }
    }
    if (owners.size() == owners_.size()) return false;
    embeddings_ = embeddings_.index_select(0, torch::tensor(keep, torch::kInt64));
    owners_ = std::move(owners);
    return true;
  }

  /// Renames a person; returns false when there was none. Throws Error when `to` is taken.
  bool rename(const std::string& from, const std::string& to) {
    check_name(to);
    std::unique_lock lock(mutex_);
    if (from != to && std::find(owners_.begin(), owners_.end(), to) != owners_.end()) {
      throw Error("cannot rename '" + from + "' to '" + to + "': that person is already enrolled");
    }
    bool found = false;
    for (auto& owner : owners_) {
      if (owner == from) {
        owner = to;
        found = true;
      }
    }
    return found;
  }

  /// People and how many embeddings each has, sorted by name.
  std::vector<std::pair<std::string, std::size_t>> people() const {
    std::shared_lock lock(mutex_);
    std::unordered_map<std::string, std::size_t> counts;
    for (const auto& owner : owners_) ++counts[owner];
    std::vector<std::pair<std::string, std::size_t>> list(counts.begin(), counts.end());
    std::sort(list.begin(), list.end());
    return list;
  }

  std::size_t size() const {
    std::shared_lock lock(mutex_);
    return owners_.size();
  }

  /// Identifies probes [P, D] (or one [D]) in one matrix product against the whole gallery.
  /// Ensures: one Identification per probe, at most `k` distinct people each, nearest first;
  /// `known` when the nearest is within `threshold`.
  std::vector<Identification> identify(const torch::Tensor& probes, std::size_t k, double threshold) const {
    auto rows = probes.defined() && probes.dim() == 1 ? probes.unsqueeze(0) : probes;
    if (!rows.defined() || rows.dim() != 2 || rows.size(1) != embedding_size_) {
      throw ShapeError("gallery of " + std::to_string(embedding_size_) + "-d embeddings cannot search " +
                       detail::shape_string(probes));
    }
    torch::Tensor gallery;
    std::vector<std::string> owners;
    {
      std::shared_lock lock(mutex_);
      gallery = embeddings_;  // tensors are never modified in place: a consistent snapshot
      owners = owners_;
    }
    std::vector<Identification> results(static_cast<std::size_t>(rows.size(0)));
    if (owners.empty() || k == 0) return results;
    torch::NoGradGuard no_grad;
    // If no person has more than R rows, the k*R nearest rows hold at least k people, and the
    // first time a person appears in them is at that person's nearest row: exact top-k people.
    std::unordered_map<std::string, std::int64_t> rows_of;
    std::int64_t most_rows = 0;
    for (const auto& owner : owners) most_rows = std::max(most_rows, ++rows_of[owner]);
    const auto distances = EuclideanDistance{}.pairwise(rows.to(torch::kCPU, torch::kFloat32), gallery);
    const auto take = std::min<std::int64_t>(gallery.size(0), static_cast<std::int64_t>(k) * most_rows);
    const auto [values, indices] = distances.topk(take, 1, /*largest=*/false, /*sorted=*/true);
    const auto v = values.to(torch::kFloat64).contiguous();
    const auto ix = indices.contiguous();
    for (std::int64_t p = 0; p < rows.size(0); ++p) {
      auto& result = results[static_cast<std::size_t>(p)];
      for (std::int64_t j = 0; j < take && result.candidates.size() < k; ++j) {
        const auto& person = owners[static_cast<std::size_t>(ix.data_ptr<std::int64_t>()[p * take + j])];
        const bool seen = std::any_of(result.candidates.begin(), result.candidates.end(),
                                      [&](const GalleryMatch& m) { return m.person == person; });
        if (!seen) result.candidates.push_back({person, v.data_ptr<double>()[p * take + j]});
      }
      result.known = is_match<EuclideanDistance>(result.candidates.front().distance, threshold);
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
      put(bytes, static_cast<std::uint64_t>(owners_.size()));
      const auto data = embeddings_.contiguous();
      const auto row_bytes = static_cast<std::size_t>(embedding_size_) * sizeof(float);
      for (std::size_t i = 0; i < owners_.size(); ++i) {
        put(bytes, static_cast<std::uint32_t>(owners_[i].size()));
        bytes += owners_[i];
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
      gallery.owners_.push_back(take(bytes, at, end, length, name));
      if (!valid_name(gallery.owners_.back())) throw GalleryError(name + " holds an invalid person name at entry " + std::to_string(i));
      std::memcpy(data.data_ptr<float>() + i * static_cast<std::uint64_t>(dim), take(bytes, at, end, row_bytes, name).data(), row_bytes);
    }
    if (at != end) throw GalleryError(name + " has " + std::to_string(end - at) + " unexpected bytes");
    gallery.embeddings_ = data;
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

  mutable std::shared_mutex mutex_;
  std::string model_name_;
  std::int64_t embedding_size_ = 0;
  torch::Tensor embeddings_;          ///< [M, D] float32, CPU; replaced, never modified in place
  std::vector<std::string> owners_;   ///< person of each row
};

}  // namespace siamese
