#pragma once

// A gallery's rows in memory, with the index that searches them: what Gallery holds under its
// lock, whether the rows live only in memory or mirror a database.

#include <siamese/errors.hpp>
#include <siamese/index.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace siamese::detail {

/// Embeddings [M, D] float32 on the CPU, the person of each row, the rows per person, and a
/// VectorIndex over them. Copies share the embeddings, names and index until either side
/// changes (copy-on-write), so a reader may search a snapshot() while a writer changes the
/// rows. Not thread-safe itself: the owner's lock orders readers and writers.
class GalleryRows {
 public:
  /// No rows, searched exactly (ExactIndex). Requires: embedding_size >= 1.
  explicit GalleryRows(std::int64_t embedding_size)
      : embedding_size_(embedding_size),
        embeddings_(torch::empty({0, embedding_size}, torch::kFloat32)),
        capacity_(embeddings_),
        index_(std::make_shared<ExactIndex>()) {
    index_->reset(embeddings_);
  }

  /// Shares `other`'s rows, names and index; without its spare rows, which `other` may still fill.
  GalleryRows(const GalleryRows& other)
      : embedding_size_(other.embedding_size_),
        embeddings_(other.embeddings_),
        capacity_(other.embeddings_),
        owners_(other.owners_),
        rows_per_person_(other.rows_per_person_),
        most_rows_(other.most_rows_),
        index_(other.index_) {}

  GalleryRows& operator=(const GalleryRows& other) {
    if (this != &other) *this = GalleryRows(other);
    return *this;
  }
  GalleryRows(GalleryRows&&) = default;
  GalleryRows& operator=(GalleryRows&&) = default;

  /// What a reader searches: the index and the names as they are now. Writers never change
  /// what a snapshot holds.
  struct Snapshot {
    std::shared_ptr<const VectorIndex> index;
    std::shared_ptr<const std::vector<std::string>> owners;
    std::int64_t most_rows = 0;  ///< the most rows any person has
    std::size_t people = 0;      ///< distinct people among the owners
  };
  Snapshot snapshot() const { return {index_, owners_, most_rows_, rows_per_person_.size()}; }

  const torch::Tensor& embeddings() const { return embeddings_; }
  const std::vector<std::string>& owners() const { return *owners_; }
  const std::unordered_map<std::string, std::int64_t>& rows_per_person() const { return rows_per_person_; }
  std::size_t size() const { return owners_->size(); }
  std::string index_description() const { return index_->description(); }

  /// Searches through `index` from now on, built from the rows. Requires: a non-null index.
  void set_index(std::unique_ptr<VectorIndex> index) {
    index->reset(embeddings_);
    index_ = std::move(index);
  }

  /// Adds rows [K, D] owned by `owners` (K names). They go into the spare rows of capacity_,
  /// which grows by an eighth when full: an enrollment costs its own rows (and, amortised,
  /// eight row copies each), not a copy of the gallery, for at most 12.5% more memory.
  /// Snapshots end before the spare rows, so writing there changes nothing they see.
  void append(const std::vector<std::string>& owners, const torch::Tensor& rows) {
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

  /// The rows become exactly `rows` [M, D], owned by `owners` (M names).
  void replace(std::vector<std::string> owners, const torch::Tensor& rows) {
    rows_per_person_.clear();
    most_rows_ = 0;
    for (const auto& person : owners) most_rows_ = std::max(most_rows_, ++rows_per_person_[person]);
    owners_ = std::make_shared<std::vector<std::string>>(std::move(owners));
    embeddings_ = rows;
    capacity_ = rows;
    writable_index().reset(embeddings_);
  }

  /// Drops `person`'s rows; false when there were none.
  bool remove(const std::string& person) {
    if (rows_per_person_.count(person) == 0) return false;
    std::vector<std::int64_t> keep;
    std::vector<std::string> owners;
    for (std::size_t i = 0; i < owners_->size(); ++i) {
      if ((*owners_)[i] != person) {
        keep.push_back(static_cast<std::int64_t>(i));
        owners.push_back((*owners_)[i]);
      }
    }
    replace(std::move(owners), embeddings_.index_select(0, torch::tensor(keep, torch::kInt64)));
    return true;
  }

  /// Gives `from`'s rows to `to`; false when `from` has none. Throws Error when `to` is taken.
  bool rename(const std::string& from, const std::string& to) {
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

 private:
  // An index a snapshot holds is copied, not changed.
  VectorIndex& writable_index() {
    if (index_.use_count() > 1) index_ = std::shared_ptr<VectorIndex>(index_->clone());
    return *index_;
  }

  std::vector<std::string>& writable_owners() {
    if (owners_.use_count() > 1) owners_ = std::make_shared<std::vector<std::string>>(*owners_);
    return *owners_;
  }

  std::int64_t embedding_size_;
  torch::Tensor embeddings_;  ///< [M, D]: the first M rows of capacity_; rows never change
  torch::Tensor capacity_;    ///< [C >= M, D]: embeddings_ and the spare rows appends fill
  std::shared_ptr<std::vector<std::string>> owners_ = std::make_shared<std::vector<std::string>>();
  std::unordered_map<std::string, std::int64_t> rows_per_person_;
  std::int64_t most_rows_ = 0;
  std::shared_ptr<VectorIndex> index_;  ///< derived from embeddings_
};

}  // namespace siamese::detail
