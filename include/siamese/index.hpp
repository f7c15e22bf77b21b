#pragma once

#include <siamese/detail/format.hpp>
#include <siamese/distance.hpp>
#include <siamese/errors.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>

namespace siamese {

/// The nearest stored rows to each probe: Euclidean distances and row numbers, nearest first.
struct Neighbours {
  torch::Tensor distances;  ///< [P, k] float32; +inf where `rows` is -1
  torch::Tensor rows;       ///< [P, k] int64 row numbers into the index; -1 when fewer were found
};

/// A nearest-neighbour search structure over the rows of a [M, D] float32 matrix, as a
/// Gallery uses it. The gallery's matrix is the truth; an index is derived from it and can be
/// rebuilt from it at any time. Implementations need not be thread-safe: the gallery copies an
/// index (clone()) before changing one that readers may be using.
class VectorIndex {
 public:
  virtual ~VectorIndex() = default;

  /// Rebuilds the index from all `rows` [M, D] (float32, CPU, contiguous; M may be 0).
  virtual void reset(const torch::Tensor& rows) = 0;

  /// Rows `first_new` onward of `all_rows` were appended; rows before it are unchanged.
  virtual void append(const torch::Tensor& all_rows, std::int64_t first_new) = 0;

  /// The `k` nearest rows to each probe [P, D] (float32, CPU). Requires k >= 1.
  virtual Neighbours search(const torch::Tensor& probes, std::int64_t k) const = 0;

  /// An independent copy, for copy-on-write.
  virtual std::unique_ptr<VectorIndex> clone() const = 0;

  /// A short description for logs and benchmarks ("exact", "faiss IVF1024,Flat nprobe 16", ...).
  virtual std::string description() const = 0;

  /// True when search() always returns the true nearest rows.
  virtual bool exact() const = 0;
};

/// Exact search by matrix products: ||p||^2 + ||g||^2 - 2 p.g for all rows, with the row norms
/// kept from one change to the next, probes taken in blocks so that at most
/// `max_block_elements` distances exist at once. Memory: the gallery's matrix is shared, not
/// copied, plus M floats of norms.
class ExactIndex final : public VectorIndex {
 public:
  explicit ExactIndex(std::int64_t max_block_elements = 32 << 20) : max_block_elements_(max_block_elements) {}

  void reset(const torch::Tensor& rows) override {
    rows_ = rows;
    norms_ = rows.pow(2).sum(1);
    norm_capacity_ = norms_;
  }

  // The new rows' norms go into spare room that grows by an eighth when full, as the
  // gallery's rows do: an append costs its own rows, not a copy of every norm.
  void append(const torch::Tensor& all_rows, std::int64_t first_new) override {
    const auto added = all_rows.narrow(0, first_new, all_rows.size(0) - first_new);
    const auto needed = all_rows.size(0);
    if (norm_capacity_.size(0) < needed) {
      auto bigger = torch::empty({needed + needed / 8}, torch::kFloat32);
      bigger.narrow(0, 0, first_new).copy_(norms_.narrow(0, 0, first_new));
      norm_capacity_ = bigger;
    }
    norm_capacity_.narrow(0, first_new, added.size(0)).copy_(added.pow(2).sum(1));
    norms_ = norm_capacity_.narrow(0, 0, needed);
    rows_ = all_rows;
  }

  Neighbours search(const torch::Tensor& probes, std::int64_t k) const override {
    torch::NoGradGuard no_grad;
    const auto m = rows_.defined() ? rows_.size(0) : 0;
    const auto take = std::min<std::int64_t>(k, m);
    Neighbours out{torch::full({probes.size(0), k}, std::numeric_limits<float>::infinity()),
                   torch::full({probes.size(0), k}, -1, torch::kInt64)};
    if (take == 0) return out;
    const auto block = std::max<std::int64_t>(1, max_block_elements_ / std::max<std::int64_t>(m, 1));
    for (std::int64_t start = 0; start < probes.size(0); start += block) {
      const auto p = probes.narrow(0, start, std::min(block, probes.size(0) - start));
      // One probe: a matrix-vector product streams the gallery once, at memory speed (GEMM with
      // one row runs 3-4x slower in this BLAS); more probes: one GEMM.
      auto squared = p.size(0) == 1 ? torch::mv(rows_, p[0]).mul_(-2).add_(norms_).unsqueeze(0)
                                    : torch::addmm(norms_.unsqueeze(0), p, rows_.t(), /*beta=*/1, /*alpha=*/-2);
      squared.add_(p.pow(2).sum(1, true));
      const auto [values, indices] = squared.topk(take, 1, /*largest=*/false, /*sorted=*/true);
      // The same clamp as EuclideanDistance: sqrt(max(d^2, eps)).
      out.distances.narrow(0, start, p.size(0)).narrow(1, 0, take).copy_(torch::sqrt(torch::clamp_min(values, EuclideanDistance{}.eps)));
      out.rows.narrow(0, start, p.size(0)).narrow(1, 0, take).copy_(indices);
    }
    return out;
  }

  /// A copy without spare room: the copy and this index never append into the same memory.
  std::unique_ptr<VectorIndex> clone() const override {
    auto copy = std::make_unique<ExactIndex>(*this);
    copy->norm_capacity_ = norms_;
    return copy;
  }
  std::string description() const override { return "exact"; }
  bool exact() const override { return true; }

 private:
  std::int64_t max_block_elements_;
  torch::Tensor rows_;   ///< the gallery's matrix, shared: never modified in place
  torch::Tensor norms_;  ///< [M] squared row norms: the first M of norm_capacity_
  torch::Tensor norm_capacity_;
};

}  // namespace siamese
