#pragma once

#include <siamese/detail/format.hpp>
#include <siamese/errors.hpp>

#include <torch/torch.h>

#include <string>

/// Training losses as plain functions on tensors. Label convention everywhere: 1 = same person.
/// Contrastive and triplet losses act on raw distances, never on the sigmoid's output (a
/// known mistake of popular Keras examples: a squashed distance saturates and stops learning).
namespace siamese::train {

namespace detail {
inline void check_same_shape(const torch::Tensor& a, const torch::Tensor& b, const char* who) {
  if (!a.defined() || !b.defined() || a.sizes() != b.sizes() || a.numel() == 0) {
    throw ShapeError(std::string(who) + " needs two non-empty tensors of the same shape, got " +
                     siamese::detail::shape_string(a) + " and " + siamese::detail::shape_string(b));
  }
}
}  // namespace detail

/// Binary cross-entropy of the head, from its logits `w*d + b` (numerically stable), the loss
/// of the reference Siamese model. Requires: logits and labels of the same shape.
/// Ensures: mean of -[y log p + (1 - y) log(1 - p)], p = sigmoid(logits).
inline torch::Tensor binary_cross_entropy(const torch::Tensor& logits, const torch::Tensor& labels) {
  detail::check_same_shape(logits, labels, "binary_cross_entropy");
  return torch::binary_cross_entropy_with_logits(logits, labels.to(logits.dtype()));
}

/// Contrastive loss (Hadsell, Chopra, LeCun 2006) on distances:
/// mean of y * d^2 + (1 - y) * max(margin - d, 0)^2. Requires margin > 0.
inline torch::Tensor contrastive_loss(const torch::Tensor& distances, const torch::Tensor& labels,
                                      double margin) {
  detail::check_same_shape(distances, labels, "contrastive_loss");
  if (!(margin > 0.0)) throw Error("contrastive_loss margin must be positive, got " + std::to_string(margin));
  const auto y = labels.to(distances.dtype());
  return (y * distances.pow(2) + (1 - y) * torch::clamp_min(margin - distances, 0).pow(2)).mean();
}

/// Triplet loss (Schroff, Kalenichenko, Philbin 2015) on anchor-positive and anchor-negative
/// distances: mean of max(d_ap - d_an + margin, 0). Requires margin >= 0.
inline torch::Tensor triplet_loss(const torch::Tensor& anchor_positive, const torch::Tensor& anchor_negative,
                                  double margin) {
  detail::check_same_shape(anchor_positive, anchor_negative, "triplet_loss");
  if (!(margin >= 0.0)) throw Error("triplet_loss margin must be >= 0, got " + std::to_string(margin));
  return torch::clamp_min(anchor_positive - anchor_negative + margin, 0).mean();
}

}  // namespace siamese::train
