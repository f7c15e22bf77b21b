#pragma once

#include <siamese/detail/format.hpp>
#include <siamese/errors.hpp>

#include <torch/torch.h>

#include <string>

/// Distance and similarity functors between embeddings.
///
/// Each functor is stateless apart from its constants and declares its `direction`: whether a
/// smaller value (a distance) or a larger value (a similarity) means "more alike". Use
/// is_match() / is_closer() instead of writing the comparison by hand.
namespace siamese {

enum class Direction {
  smaller_is_closer,  ///< a distance: 0 for identical embeddings
  larger_is_closer,   ///< a similarity
};

namespace detail {

/// Requires two 2-D float tensors with the same number of columns (and rows, if `same_rows`).
inline void check_embeddings(const torch::Tensor& a, const torch::Tensor& b, bool same_rows,
                             const char* who) {
  const bool ok = a.defined() && b.defined() && a.dim() == 2 && b.dim() == 2 &&
                  a.size(1) == b.size(1) && a.size(1) > 0 && (!same_rows || a.size(0) == b.size(0));
  if (!ok) {
    throw ShapeError(std::string(who) + " needs embeddings " +
                     (same_rows ? "[N,D] and [N,D]" : "[N,D] and [M,D]") + ", got " +
                     shape_string(a) + " and " + shape_string(b));
  }
  if (!a.is_floating_point() || !b.is_floating_point()) {
    throw ShapeError(std::string(who) + " needs floating-point embeddings, got " +
                     dtype_string(a) + " and " + dtype_string(b));
  }
  if (a.device() != b.device()) {
    throw DeviceError(std::string(who) + " needs both embeddings on one device, got " + a.device().str() + " and " +
                      b.device().str());
  }
}

}  // namespace detail

/// Euclidean distance exactly as the reference Keras model computes it:
/// `sqrt(max(sum((a - b)^2), eps))`. The clamp keeps the gradient of sqrt finite for identical
/// inputs, so the distance of identical embeddings is sqrt(eps), not 0.
struct EuclideanDistance {
  static constexpr Direction direction = Direction::smaller_is_closer;

  /// eps defaults to 1e-7, the value of Keras' K.epsilon(). Requires eps >= 0.
  explicit EuclideanDistance(double eps = 1e-7) : eps(eps) {
    if (!(eps >= 0.0)) throw Error("EuclideanDistance eps must be >= 0, got " + std::to_string(eps));
  }

  /// Row-wise: a, b [N,D] -> [N,1].
  torch::Tensor operator()(const torch::Tensor& a, const torch::Tensor& b) const {
    detail::check_embeddings(a, b, true, "EuclideanDistance");
    return torch::sqrt(torch::clamp_min((a - b).pow(2).sum(1, /*keepdim=*/true), eps));
  }

  /// All pairs: a [N,D], b [M,D] -> [N,M], one matrix product.
  torch::Tensor pairwise(const torch::Tensor& a, const torch::Tensor& b) const {
    detail::check_embeddings(a, b, false, "EuclideanDistance::pairwise");
    return torch::sqrt(torch::clamp_min(squared_pairwise(a, b), eps));
  }

  /// ||a||^2 + ||b||^2 - 2 a.b for all pairs, clamped at 0 against rounding.
  static torch::Tensor squared_pairwise(const torch::Tensor& a, const torch::Tensor& b) {
    const auto a2 = a.pow(2).sum(1, true);
    const auto b2 = b.pow(2).sum(1, true).t();
    return torch::clamp_min(torch::addmm(a2 + b2, a, b.t(), /*beta=*/1, /*alpha=*/-2), 0.0);
  }

  double eps;
};

/// Squared Euclidean distance `sum((a - b)^2)`, no clamp.
struct SquaredEuclideanDistance {
  static constexpr Direction direction = Direction::smaller_is_closer;

  torch::Tensor operator()(const torch::Tensor& a, const torch::Tensor& b) const {
    detail::check_embeddings(a, b, true, "SquaredEuclideanDistance");
    return (a - b).pow(2).sum(1, /*keepdim=*/true);
  }

  torch::Tensor pairwise(const torch::Tensor& a, const torch::Tensor& b) const {
    detail::check_embeddings(a, b, false, "SquaredEuclideanDistance::pairwise");
    return EuclideanDistance::squared_pairwise(a, b);
  }
};

/// Cosine similarity `a.b / max(|a| |b|, eps)`, in [-1, 1]; larger is closer.
struct CosineSimilarity {
  static constexpr Direction direction = Direction::larger_is_closer;

  explicit CosineSimilarity(double eps = 1e-8) : eps(eps) {}

  torch::Tensor operator()(const torch::Tensor& a, const torch::Tensor& b) const {
    detail::check_embeddings(a, b, true, "CosineSimilarity");
    return torch::cosine_similarity(a, b, 1, eps).unsqueeze(1);
  }

  torch::Tensor pairwise(const torch::Tensor& a, const torch::Tensor& b) const {
    detail::check_embeddings(a, b, false, "CosineSimilarity::pairwise");
    return torch::mm(unit_rows(a), unit_rows(b).t());
  }

  torch::Tensor unit_rows(const torch::Tensor& x) const {
    return x / torch::clamp_min(x.norm(2, 1, true), eps);
  }

  double eps;
};

/// Cosine distance `1 - cosine similarity`, in [0, 2]; smaller is closer.
struct CosineDistance {
  static constexpr Direction direction = Direction::smaller_is_closer;

  explicit CosineDistance(double eps = 1e-8) : similarity(eps) {}

  torch::Tensor operator()(const torch::Tensor& a, const torch::Tensor& b) const {
    return 1.0 - similarity(a, b);
  }

  torch::Tensor pairwise(const torch::Tensor& a, const torch::Tensor& b) const {
    return 1.0 - similarity.pairwise(a, b);
  }

  CosineSimilarity similarity;
};

/// True when `value` of metric `Metric` says "same" under `threshold`:
/// value <= threshold for a distance, value >= threshold for a similarity.
template <class Metric>
constexpr bool is_match(double value, double threshold) {
  return Metric::direction == Direction::smaller_is_closer ? value <= threshold
                                                           : value >= threshold;
}

/// True when `value` is strictly closer than `other` under metric `Metric`.
template <class Metric>
constexpr bool is_closer(double value, double other) {
  return Metric::direction == Direction::smaller_is_closer ? value < other : value > other;
}

}  // namespace siamese
