#pragma once

#include <siamese/detail/format.hpp>
#include <siamese/errors.hpp>

#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <string>

namespace siamese {

/// Parameters of a SigmoidHead: `p = sigmoid(weight * d + bias)`.
struct SigmoidHeadOptions {
  /// The default puts p = 0.5 at d = 0.6, the same-person threshold of the dlib face model
  /// (the library's default backbone), with a negative slope so that a larger distance gives a
  /// lower probability.
  double weight = -10.0;
  double bias = 6.0;

  /// A head whose probability is 0.5 at `threshold`, falling with `slope` < 0 per unit of
  /// distance (or rising, for a similarity, with `slope` > 0).
  static SigmoidHeadOptions centered_at(double threshold, double slope = -10.0) {
    if (!std::isfinite(threshold) || !std::isfinite(slope) || slope == 0.0) {
      throw Error("SigmoidHead needs a finite threshold and a finite non-zero slope, got " +
                  std::to_string(threshold) + " and " + std::to_string(slope));
    }
    return {slope, -slope * threshold};
  }
};

/// The Dense(1) on the distance: `p = sigmoid(w * d + b)` with learnable scalars w and b.
/// Cloneable, so that a SiameseNet can hold its own copy on its own device.
class SigmoidHeadImpl : public torch::nn::Cloneable<SigmoidHeadImpl> {
 public:
  explicit SigmoidHeadImpl(SigmoidHeadOptions options = {}) : options_(options) { reset(); }

  /// (Re)creates the parameters from the options (torch::nn::Cloneable's contract).
  void reset() override {
    weight = register_parameter("weight", torch::tensor({options_.weight}, torch::kFloat32));
    bias = register_parameter("bias", torch::tensor({options_.bias}, torch::kFloat32));
  }

  /// Requires: distances of any shape (typically [N,1]), floating point.
  /// Ensures: probabilities of the same shape in (0, 1).
  torch::Tensor forward(const torch::Tensor& distances) {
    return torch::sigmoid(logits(distances));
  }

  /// The pre-sigmoid value `w * d + b`, for numerically stable losses.
  torch::Tensor logits(const torch::Tensor& distances) {
    if (!distances.defined() || !distances.is_floating_point()) {
      throw ShapeError("SigmoidHead needs floating-point distances, got " +
                       detail::dtype_string(distances));
    }
    if (distances.device() != weight.device()) {
      throw DeviceError("SigmoidHead lives on " + weight.device().str() + " but got distances on " +
                        distances.device().str());
    }
    return distances * weight + bias;
  }

  /// The distance at which p = `probability`, the inverse of forward().
  double distance_at(double probability) const {
    if (!(probability > 0.0 && probability < 1.0)) {
      throw Error("SigmoidHead::distance_at needs a probability in (0, 1), got " +
                  std::to_string(probability));
    }
    const double logit = std::log(probability / (1.0 - probability));
    return (logit - bias.item<double>()) / weight.item<double>();
  }

  torch::Tensor weight;
  torch::Tensor bias;

 private:
  SigmoidHeadOptions options_;
};
TORCH_MODULE(SigmoidHead);

/// Saves the head's parameters (torch::save archive) from a CPU copy, wherever the head lives,
/// so that a head trained on a GPU loads on a machine without one. `head` is not changed.
inline void save_head(const SigmoidHead& head, const std::filesystem::path& file) {
  try {
    const auto on_cpu = std::dynamic_pointer_cast<SigmoidHeadImpl>(head->clone(torch::kCPU));
    torch::save(SigmoidHead(on_cpu), file.string());
  } catch (const c10::Error& e) {
    throw FileError("cannot write head '" + file.string() + "': " + e.what_without_backtrace());
  }
}

/// Loads a head saved by save_head() onto `device` (the CPU unless given).
/// Ensures: one finite float32 weight, not 0, and one finite bias, on `device`.
/// Throws FileError when the file is missing, ModelError when it holds no head parameters or
/// parameters of another shape, NumericError when they are not finite or the weight is 0 (a
/// head that cannot tell distances apart).
inline SigmoidHead load_head(const std::filesystem::path& file, torch::Device device = torch::kCPU) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) {
    throw FileError("head file '" + file.string() + "' does not exist");
  }
  SigmoidHead head;
  try {
    torch::load(head, file.string(), torch::Device(torch::kCPU));
  } catch (const c10::Error& e) {
    throw ModelError("'" + file.string() + "' is not a saved SigmoidHead: " + detail::error_summary(e.what()));
  }
  // torch::load replaces each parameter with the stored tensor, whatever its shape.
  for (const auto* parameter : {&head->weight, &head->bias}) {
    if (parameter->numel() != 1 || !parameter->is_floating_point()) {
      throw ModelError("'" + file.string() + "' is not a saved SigmoidHead: a parameter is " +
                       detail::shape_string(*parameter) + " " + detail::dtype_string(*parameter) + ", not one number");
    }
  }
  const double weight = head->weight.item<double>(), bias = head->bias.item<double>();
  if (!std::isfinite(weight) || !std::isfinite(bias) || weight == 0.0) {
    throw NumericError("head '" + file.string() + "' has non-finite parameters or a zero weight (w " +
                       std::to_string(weight) + ", b " + std::to_string(bias) + ")");
  }
  try {
    head->to(device);
  } catch (const c10::Error& e) {
    throw DeviceError("head '" + file.string() + "' cannot move to " + device.str() + ": " + detail::error_summary(e.what()));
  }
  return head;
}

}  // namespace siamese
