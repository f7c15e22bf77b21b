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

/// Each person's template: the mean of their L2-normalised rows, at their rows' mean length,
/// kept up to date as rows arrive, one slot per person. Memory: one row and three numbers per
/// person (the sum of a person's unit rows is the template's direction at `direction_norms`).
struct PersonTemplates {
  torch::Tensor values;           ///< [C, D] float32: the templates; C >= people (spare slots are zero)
  torch::Tensor direction_norms;  ///< [C] float64: the length of the sum of each person's unit rows
  torch::Tensor length_sums;      ///< [C] float64: the sum of their rows' lengths
  torch::Tensor counts;           ///< [C] float64: their rows
  std::unordered_map<std::string, std::int64_t> slot;  ///< person -> row of the tensors above

  /// Adds `rows` [K, D] of `owners` and updates their templates. Requires: the tensors are not
  /// shared with a reader (copy() first).
  void add(const std::vector<std::string>& owners, const torch::Tensor& rows) {
    std::vector<std::int64_t> slots;
    for (const auto& person : owners) slots.push_back(slot.emplace(person, static_cast<std::int64_t>(slot.size())).first->second);
    const auto needed = static_cast<std::int64_t>(slot.size());
    if (!values.defined() || values.size(0) < needed) grow(needed + needed / 8, rows.size(1));
    // The people touched, once each, and each row's position among them.
    auto unique_slots = slots;
    std::sort(unique_slots.begin(), unique_slots.end());
    unique_slots.erase(std::unique(unique_slots.begin(), unique_slots.end()), unique_slots.end());
    std::vector<std::int64_t> positions;
    for (const auto s : slots) positions.push_back(std::lower_bound(unique_slots.begin(), unique_slots.end(), s) - unique_slots.begin());
    const auto touched = torch::tensor(unique_slots, torch::kInt64);
    const auto position = torch::tensor(positions, torch::kInt64);
    const auto lengths = rows.norm(2, 1).to(torch::kFloat64);
    const auto old = values.index_select(0, touched);
    const auto old_sums = old / old.norm(2, 1, true).clamp_min(1e-30) * direction_norms.index_select(0, touched).unsqueeze(1).to(torch::kFloat32);
    const auto sums = old_sums.index_add(0, position, rows / lengths.unsqueeze(1).clamp_min(1e-12).to(torch::kFloat32));
    length_sums.index_add_(0, touched, torch::zeros({touched.size(0)}, torch::kFloat64).index_add_(0, position, lengths));
    counts.index_add_(0, touched, torch::zeros({touched.size(0)}, torch::kFloat64).index_add_(0, position, torch::ones_like(lengths)));
    const auto norms = sums.norm(2, 1, true);
    direction_norms.index_copy_(0, touched, norms.squeeze(1).to(torch::kFloat64));
    const auto mean_length = (length_sums.index_select(0, touched) / counts.index_select(0, touched)).to(torch::kFloat32);
    values.index_copy_(0, touched, sums / norms.clamp_min(1e-12) * mean_length.unsqueeze(1));
    // A person with one row: the template is that row exactly, not its rounded reconstruction.
    const auto row_slots = torch::tensor(slots, torch::kInt64);
    const auto alone = counts.index_select(0, row_slots).eq(1.0).nonzero().squeeze(1);
    values.index_copy_(0, row_slots.index_select(0, alone), rows.index_select(0, alone));
  }

  /// An independent copy, for copy-on-write.
  PersonTemplates copy() const {
    return {values.defined() ? values.clone() : values, direction_norms.defined() ? direction_norms.clone() : direction_norms,
            length_sums.defined() ? length_sums.clone() : length_sums, counts.defined() ? counts.clone() : counts, slot};
  }

 private:
  void grow(std::int64_t capacity, std::int64_t dim) {
    const auto used = values.defined() ? values.size(0) : 0;
    const auto widen = [&](const torch::Tensor& old, torch::Tensor fresh) {
      if (used > 0) fresh.narrow(0, 0, used).copy_(old);
      return fresh;
    };
    values = widen(values, torch::zeros({capacity, dim}, torch::kFloat32));
    direction_norms = widen(direction_norms, torch::zeros({capacity}, torch::kFloat64));
    length_sums = widen(length_sums, torch::zeros({capacity}, torch::kFloat64));
    counts = widen(counts, torch::zeros({capacity}, torch::kFloat64));
  }
};

/// Embeddings [M, D] float32 on the CPU, the person of each row, the rows per person, each
/// person's template (PersonTemplates), and a VectorIndex over the rows. Copies share the embeddings, names and index until either side
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
        templates_(other.templates_),
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
    std::shared_ptr<const PersonTemplates> templates;
  };
  Snapshot snapshot() const { return {index_, owners_, most_rows_, rows_per_person_.size(), templates_}; }

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
    writable_templates().add(owners, rows);
  }

  /// The rows become exactly `rows` [M, D], owned by `owners` (M names).
  void replace(std::vector<std::string> owners, const torch::Tensor& rows) {
    rows_per_person_.clear();
    most_rows_ = 0;
    for (const auto& person : owners) most_rows_ = std::max(most_rows_, ++rows_per_person_[person]);
    templates_ = std::make_shared<PersonTemplates>();
    if (!owners.empty()) templates_->add(owners, rows);
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
    auto& slots = writable_templates().slot;
    const auto slot = slots.at(from);
    slots.erase(from);
    slots[to] = slot;
    return true;
  }

 private:
  // An index a snapshot holds is copied, not changed.
  VectorIndex& writable_index() {
    if (index_.use_count() > 1) index_ = std::shared_ptr<VectorIndex>(index_->clone());
    return *index_;
  }

  PersonTemplates& writable_templates() {
    if (templates_.use_count() > 1) templates_ = std::make_shared<PersonTemplates>(templates_->copy());
    return *templates_;
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
  std::shared_ptr<PersonTemplates> templates_ = std::make_shared<PersonTemplates>();  ///< derived from embeddings_
  std::shared_ptr<VectorIndex> index_;  ///< derived from embeddings_
};

}  // namespace siamese::detail
