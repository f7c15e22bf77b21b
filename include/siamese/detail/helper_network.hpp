#pragma once

#include <siamese/detail/torchscript.hpp>
#include <siamese/device.hpp>
#include <siamese/errors.hpp>
#include <siamese/metadata.hpp>
#include <siamese/preprocess.hpp>

#include <opencv2/core.hpp>
#include <torch/script.h>
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace siamese::detail {

/// A helper network (face detector, landmarks) loaded for inference. Its siamese.json is
/// required (it holds the input spec). The module is frozen, not optimised, and fed
/// channels-last input: for these small depthwise networks oneDNN's channels-last kernels run
/// 1.3x (detector) to 1.7x (landmarks) faster than optimize_for_inference's blocked layout,
/// which converts the tensors before and after every leaky ReLU (benchmarks/pipeline_breakdown).
class HelperNetwork {
 public:
  /// Throws as load_module(); MetadataError when the metadata is missing.
  HelperNetwork(std::string file, Device device) : file_(std::move(file)), device_(device) {
    auto loaded = load_module(file_, device_);
    if (!loaded.metadata) throw MetadataError("'" + file_ + "' has no " + metadata_file_name);
    spec_ = loaded.metadata->input;
    try {
      module_ = torch::jit::freeze(loaded.module);
    } catch (const c10::Error&) {
      module_ = loaded.module;  // some scripted modules cannot be frozen; they still run
    }
  }

  const InputSpec& input_spec() const { return spec_; }
  const std::string& file() const { return file_; }

  /// The network's output for `images`, each resized to `spec` (the metadata's spec, or the
  /// same with other sides): float32 on the CPU, checked finite.
  /// Throws ModelError when forward fails, NumericError on NaN/Inf.
  torch::Tensor run(const std::vector<cv::Mat>& images, const InputSpec& spec) {
    torch::InferenceMode guard;
    const auto input = to_input_batch(images, spec).contiguous(torch::MemoryFormat::ChannelsLast);
    return run_module(module_, input.to(device_.torch_device()), file_).to(torch::kCPU).contiguous();
  }

 private:
  std::string file_;
  Device device_;
  InputSpec spec_;
  torch::jit::Module module_;
};

}  // namespace siamese::detail
