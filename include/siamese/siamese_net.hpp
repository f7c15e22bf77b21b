#pragma once

#include <siamese/backbone.hpp>
#include <siamese/decision.hpp>
#include <siamese/detail/format.hpp>
#include <siamese/distance.hpp>
#include <siamese/eval/calibration.hpp>
#include <siamese/errors.hpp>
#include <siamese/head.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <mutex>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace siamese {

/// The answer to "are these two faces the same person?".
struct VerifyResult {
  double distance = 0.0;     ///< the Distance functor's value (a similarity, if it is one)
  double probability = 0.0;  ///< the head's probability of "same person"
  bool same = false;         ///< probability >= the net's decision threshold
};

namespace detail {

template <class T, class = void>
struct has_metadata : std::false_type {};
template <class T>
struct has_metadata<T, std::void_t<decltype(std::declval<const T&>().metadata().pretrained)>>
    : std::true_type {};

template <class T, class = void>
struct is_movable_module : std::false_type {};
template <class T>
struct is_movable_module<T, std::void_t<decltype(std::declval<T&>()->to(torch::Device(torch::kCPU)))>>
    : std::true_type {};

/// Prints one loud warning per backbone file whose metadata says its weights are random.
template <class Backbone>
void warn_if_untrained(const Backbone& backbone) {
  if constexpr (has_metadata<Backbone>::value) {
    if (backbone.metadata().pretrained) return;
    static std::mutex mutex;
    static std::set<std::string> warned;
    const std::string name = backbone.metadata().name;
    std::lock_guard<std::mutex> lock(mutex);
    if (!warned.insert(name).second) return;
    std::cerr << "siamese: WARNING: backbone '" << name
              << "' has RANDOM, untrained weights (metadata pretrained=false); its verdicts on "
                 "real faces are meaningless. Load pretrained weights for real use.\n";
  }
}

/// Makes a single image [3,H,W] a batch [1,3,H,W]; passes batches through.
inline torch::Tensor as_batch(const torch::Tensor& image) {
  return image.defined() && image.dim() == 3 ? image.unsqueeze(0) : image;
}

}  // namespace detail

/// A Siamese network: ONE backbone (one set of weights) embeds both inputs, a Distance
/// functor compares the embeddings, and a Head maps the distance to P(same person).
///
/// Requirements on the parts:
/// - Backbone: `torch::Tensor embed(const torch::Tensor&) const` mapping [N,3,H,W] float32 to
///   [N,D], and `Device device() const`. TorchScriptBackbone is the standard one.
/// - Distance: `torch::Tensor operator()(a [N,D], b [N,D]) const -> [N,1]` and a static
///   `direction` (see distance.hpp).
/// - Head: callable on [N,1] distances, returning [N,1] probabilities. When it is a torch
///   module holder (SigmoidHead), the net holds its own copy on the backbone's device
///   (Module::clone: the module must be a torch::nn::Cloneable); the caller's head is left
///   where it was, and head() reaches the net's copy.
///
/// Inference runs under torch::InferenceMode. Concurrent calls from several threads are safe
/// as long as no thread changes the parts at the same time.
template <class Backbone, class Distance = EuclideanDistance, class Head = SigmoidHead>
class SiameseNet {
 public:
  using backbone_type = Backbone;
  using distance_type = Distance;
  using head_type = Head;

  /// Everything one forward pass computes, for N pairs.
  struct Output {
    torch::Tensor embeddings_a;   ///< [N,D]
    torch::Tensor embeddings_b;   ///< [N,D]
    torch::Tensor distances;      ///< [N,1]
    torch::Tensor probabilities;  ///< [N,1]
  };

  explicit SiameseNet(Backbone backbone, Distance distance = Distance{}, Head head = Head{})
      : backbone_(std::move(backbone)), distance_(std::move(distance)), head_(std::move(head)) {
    if constexpr (detail::is_movable_module<Head>::value) {
      using Impl = typename Head::Impl;
      const auto device = backbone_.device().torch_device();
      try {
        head_ = Head(std::dynamic_pointer_cast<Impl>(head_->clone(device)));
      } catch (const c10::Error& e) {
        throw DeviceError("SiameseNet cannot place its head on " + device.str() + ": " + detail::error_summary(e.what()));
      }
    }
  }

  /// [N,3,H,W] float32 -> [N,D] on the backbone's device.
  torch::Tensor embed(const torch::Tensor& images) const { return backbone_.embed(images); }

  /// Compares N pairs. Requires: a and b [N,3,H,W] float32 with the same N, on one device
  /// (any: the backbone moves them to its own). When a and b have the same shape, both go
  /// through the backbone in ONE call.
  /// Throws ShapeError when the batch sizes differ, DeviceError naming both devices when a and
  /// b are on different ones.
  Output forward(const torch::Tensor& a, const torch::Tensor& b) const {
    if (!a.defined() || !b.defined() || a.dim() != 4 || b.dim() != 4 || a.size(0) != b.size(0)) {
      throw ShapeError("SiameseNet::forward needs two batches [N,3,H,W] with the same N, got " +
                       detail::shape_string(a) + " and " + detail::shape_string(b));
    }
    if (a.device() != b.device()) {
      throw DeviceError("SiameseNet::forward needs both batches on one device, got " + a.device().str() + " and " +
                        b.device().str());
    }
    torch::InferenceMode guard;
    Output out;
    if (a.sizes() == b.sizes()) {
      const auto both = backbone_.embed(torch::cat({a, b}));
      out.embeddings_a = both.narrow(0, 0, a.size(0));
      out.embeddings_b = both.narrow(0, a.size(0), b.size(0));
    } else {
      out.embeddings_a = backbone_.embed(a);
      out.embeddings_b = backbone_.embed(b);
    }
    out.distances = distance_(out.embeddings_a, out.embeddings_b);
    out.probabilities = head_(out.distances);
    return out;
  }

  /// Verifies N pairs. Requires: as forward(); single images [3,H,W] are accepted too.
  /// Ensures: one result per pair, in order.
  std::vector<VerifyResult> verify_batch(const torch::Tensor& a, const torch::Tensor& b) const {
    detail::warn_if_untrained(backbone_);
    const auto out = forward(detail::as_batch(a), detail::as_batch(b));
    const auto distances = out.distances.to(torch::kCPU, torch::kFloat64).contiguous();
    const auto probabilities = out.probabilities.to(torch::kCPU, torch::kFloat64).contiguous();
    std::vector<VerifyResult> results(static_cast<std::size_t>(distances.size(0)));
    for (std::size_t i = 0; i < results.size(); ++i) {
      results[i].distance = distances.template data_ptr<double>()[i];
      results[i].probability = probabilities.template data_ptr<double>()[i];
      results[i].same = results[i].probability >= decision_threshold_;
    }
    return results;
  }

  /// Verifies one pair of images, each [3,H,W] or [1,3,H,W].
  VerifyResult verify(const torch::Tensor& a, const torch::Tensor& b) const {
    const auto batch_a = detail::as_batch(a);
    if (!batch_a.defined() || batch_a.dim() != 4 || batch_a.size(0) != 1) {
      throw ShapeError("SiameseNet::verify takes one image [3,H,W] or [1,3,H,W] per side, got " +
                       detail::shape_string(a) + "; use verify_batch for batches");
    }
    return verify_batch(a, b).front();
  }

  /// The probability at or above which verify() says "same". Requires 0 < p < 1.
  void set_decision_threshold(double probability) {
    if (!(probability > 0.0 && probability < 1.0)) {
      throw Error("decision threshold must be in (0, 1), got " + std::to_string(probability));
    }
    decision_threshold_ = probability;
  }
  double decision_threshold() const { return decision_threshold_; }

  Backbone& backbone() { return backbone_; }
  const Backbone& backbone() const { return backbone_; }
  const Distance& distance() const { return distance_; }
  Head& head() { return head_; }
  const Head& head() const { return head_; }

 private:
  Backbone backbone_;
  Distance distance_;
  mutable Head head_;  // torch module holders call forward() through a non-const operator()
  double decision_threshold_ = 0.5;
};

/// The standard face verifier: a TorchScript backbone, Euclidean distance, a sigmoid head.
using FaceVerifier = SiameseNet<TorchScriptBackbone, EuclideanDistance, SigmoidHead>;

/// The same with cosine distance, for backbones trained with angular losses.
using CosineFaceVerifier = SiameseNet<TorchScriptBackbone, CosineDistance, SigmoidHead>;

/// A FaceVerifier whose head and verdict follow `decision`: verify() says "same" at or below
/// decision.distance_threshold.
inline FaceVerifier make_face_verifier(TorchScriptBackbone backbone, const FittedDecision& decision) {
  FaceVerifier net(std::move(backbone), EuclideanDistance{}, SigmoidHead(decision.head));
  const double logit = decision.head.weight * decision.distance_threshold + decision.head.bias;
  net.set_decision_threshold(std::clamp(1.0 / (1.0 + std::exp(-logit)), 1e-12, 1.0 - 1e-12));
  return net;
}

/// Loads a FaceVerifier from a backbone file, with the decision fitted to it
/// (fitted_decision()): its calibration when there is one (MODEL.calibration.json, written by
/// `evaluate --calibrate`), else the threshold its metadata publishes.
/// Throws UncalibratedModelError, saying what to run, when the backbone has neither: a verdict
/// from a head fitted to another network's distances would be confident and meaningless. For
/// its distances alone, build `FaceVerifier(TorchScriptBackbone(model))` and read
/// VerifyResult::distance. Throws as TorchScriptBackbone; MetadataError when the calibration
/// names another model.
inline FaceVerifier load_face_verifier(const std::filesystem::path& model, BackboneOptions options = {}) {
  TorchScriptBackbone backbone(model, std::move(options));
  const auto decision = fitted_decision(model, backbone.metadata());
  if (!decision) throw UncalibratedModelError(uncalibrated_message(model, backbone.metadata()));
  return make_face_verifier(std::move(backbone), *decision);
}

}  // namespace siamese
