#pragma once

#include <siamese/detail/format.hpp>
#include <siamese/detail/torchscript.hpp>
#include <siamese/device.hpp>
#include <siamese/errors.hpp>
#include <siamese/metadata.hpp>

#include <torch/script.h>
#include <torch/torch.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace siamese {

/// The arithmetic a backbone runs in. Whatever it is, embed() takes and returns float32.
enum class Precision {
  float32,  ///< the network as converted: the reference every figure is measured in
  /// bfloat16 weights and inputs (channels-last on the CPU), on a CUDA device or on a CPU with
  /// AVX512-BF16 or AMX (cpu_has_native_bfloat16()). On 2 cores with AVX512-BF16 the face model
  /// ran 1.19x (batch 8) and 1.55x (batch 32) faster but 0.78x at batch 1, InceptionV3 1.3x-3.4x;
  /// the face model's LFW View 2 10-fold accuracy moved +0.03 points (docs/performance.md).
  bfloat16,
  float16,  ///< CUDA only: halves memory traffic on GPUs with fast fp16
};

/// "float32", "bfloat16", "float16": the names command-line flags use.
inline const char* precision_name(Precision precision) {
  switch (precision) {
    case Precision::bfloat16: return "bfloat16";
    case Precision::float16: return "float16";
    case Precision::float32: break;
  }
  return "float32";
}

/// The Precision a precision_name() names; throws Error naming anything else.
inline Precision parse_precision(const std::string& name) {
  for (const auto precision : {Precision::float32, Precision::bfloat16, Precision::float16}) {
    if (name == precision_name(precision)) return precision;
  }
  throw Error("unknown precision '" + name + "' (expected float32, bfloat16 or float16)");
}

/// How to load a TorchScript backbone.
struct BackboneOptions {
  Device device = Device::automatic();
  /// Freeze and optimise the module after loading (torch::jit::freeze, then
  /// optimize_for_inference). Much faster on CPU; turn it off to train or to edit weights,
  /// since a frozen module has its parameters folded into constants.
  bool optimize = true;
  /// Input spec for files without siamese.json; when given, it also overrides the file's spec.
  std::optional<InputSpec> input_spec;
  /// Weights and inputs in this type; embeddings are still returned as float32. Check the
  /// accuracy on your data (evaluate --precision) before choosing anything but float32.
  Precision precision = Precision::float32;
};

/// Saves `module` as TorchScript with `metadata` stored inside as siamese.json.
/// Throws ModelError when the file cannot be written.
inline void save_backbone(const torch::jit::Module& module, const std::filesystem::path& file,
                          const BackboneMetadata& metadata) {
  try {
    module.save(file.string(), {{metadata_file_name, to_json_string(metadata)}});
  } catch (const c10::Error& e) {
    throw ModelError("cannot write backbone '" + file.string() + "': " + e.what_without_backtrace());
  }
}

/// An embedding network loaded from a TorchScript archive.
///
/// Contract of the network: forward(Tensor[N,3,H,W] float32) -> Tensor[N,D] float32, with H, W
/// from the input spec. Loading checks this once with a probe image of zeros, so a file whose
/// output is not 2-D, or whose D contradicts the metadata, is refused at load.
///
/// Copies share the same underlying module (TorchScript modules have reference semantics):
/// a SiameseNet holds exactly one backbone and runs it on both inputs.
class TorchScriptBackbone {
 public:
  /// Loads `file` onto options.device.
  /// Throws FileError (missing/unreadable), ModelError (not TorchScript, forward fails or the
  /// output is not [1, D]), MetadataError (no siamese.json and no options.input_spec; malformed
  /// metadata; embedding size contradicting the output), NumericError (NaN/Inf from the probe),
  /// DeviceError (float16 off CUDA; bfloat16 on a CPU without AVX512-BF16 or AMX).
  explicit TorchScriptBackbone(const std::filesystem::path& file, BackboneOptions options = {})
      : file_(file.string()), device_(options.device) {
    detail::apply_process_defaults(device_);
    auto loaded = detail::load_module(file_, device_);
    module_ = loaded.module;
    has_metadata_file_ = loaded.metadata.has_value();
    if (loaded.metadata) {
      metadata_ = *loaded.metadata;
    } else if (!options.input_spec) {
      throw MetadataError("'" + file_ + "' has no " + metadata_file_name +
                          " inside; pass BackboneOptions::input_spec to load it");
    } else {
      metadata_.name = std::filesystem::path(file_).stem().string();
      metadata_.weights = "unknown (file without metadata)";
    }
    if (options.input_spec) {
      detail::validate_input_spec(*options.input_spec, "input spec given for '" + file_ + "'");
      metadata_.input = *options.input_spec;
    }
    if (options.precision == Precision::float16 && !device_.is_cuda()) {
      throw DeviceError("float16 precision needs a CUDA device; '" + file_ + "' is on " + device_.str());
    }
    if (options.precision == Precision::bfloat16 && !device_.is_cuda() && !cpu_has_native_bfloat16()) {
      throw DeviceError("bfloat16 precision for '" + file_ + "' needs a CUDA device or a CPU with AVX512-BF16 or "
                        "AMX; this CPU has neither, and emulated bfloat16 is slower than float32");
    }
    if (options.precision == Precision::bfloat16 && device_.is_cuda() && !cuda_has_native_bfloat16(device_)) {
      throw DeviceError("bfloat16 precision for '" + file_ + "' needs a GPU of compute capability 8.0 or later (" +
                        device_.str() + " is older: it emulates bfloat16)");
    }
    precision_ = options.precision;
    if (precision_ != Precision::float32) module_.to(compute_type());
    if (options.optimize) {
      if (auto optimized = detail::optimized_for_inference(module_)) {
        module_ = *optimized;
        optimized_ = true;
      }
    }
    // Probed last, as embed() will run it: a conversion or optimisation the device cannot run
    // fails here, at load, not at the first embed().
    check_with_probe();
  }

  /// Embeds a batch of images.
  /// Requires: `images` float32 [N,3,H,W], N >= 1, H and W equal to input_spec(), on any device
  /// (it is moved to device()).
  /// Ensures: float32 [N, embedding_size()] on device(), every value finite.
  /// Throws ShapeError for a wrong rank, size or dtype; NumericError for NaN/Inf output.
  torch::Tensor embed(const torch::Tensor& images) const {
    check_input(images);
    torch::InferenceMode guard;
    // A plain copy: pinning a pageable batch first costs a second host copy, and run() reads
    // the result back (its finiteness check) before the next batch could overlap anyway.
    return run_in_precision(detail::moved_to(images, device_.torch_device(), torch::kFloat32, "backbone '" + file_ + "'"));
  }

  const BackboneMetadata& metadata() const { return metadata_; }
  const InputSpec& input_spec() const { return metadata_.input; }
  std::int64_t embedding_size() const { return metadata_.embedding_size; }
  Device device() const { return device_; }
  const std::string& file() const { return file_; }
  /// True when the archive carried its own siamese.json.
  bool has_metadata_file() const { return has_metadata_file_; }
  /// True when load-time freezing and optimisation succeeded.
  bool is_optimized() const { return optimized_; }
  Precision precision() const { return precision_; }

  /// The underlying module, for fine-tuning or inspection. Shared by every copy.
  torch::jit::Module& module() { return module_; }
  const torch::jit::Module& module() const { return module_; }

 private:
  torch::ScalarType compute_type() const {
    switch (precision_) {
      case Precision::bfloat16: return torch::kBFloat16;
      case Precision::float16: return torch::kHalf;
      case Precision::float32: break;
    }
    return torch::kFloat32;
  }

  void check_input(const torch::Tensor& images) const {
    const auto& spec = metadata_.input;
    if (!images.defined() || images.dim() != 4 || images.size(0) < 1 || images.size(1) != 3 ||
        images.size(2) != spec.height || images.size(3) != spec.width) {
      throw ShapeError("backbone '" + file_ + "' expects images [N,3," +
                       std::to_string(spec.height) + "," + std::to_string(spec.width) +
                       "] with N >= 1, got " + detail::shape_string(images));
    }
    if (images.scalar_type() != torch::kFloat32) {
      throw ShapeError("backbone '" + file_ + "' expects float32 images, got " +
                       detail::dtype_string(images));
    }
  }

  // `input` float32 on device() -> float32 embeddings: converted to the compute type first.
  // Requires inference or no-grad mode set by the caller.
  torch::Tensor run_in_precision(torch::Tensor input) const {
    if (precision_ == Precision::float32) return run(input);
    input = input.to(compute_type());
    // oneDNN's bfloat16 convolutions are fastest on channels-last tensors (1.3x at batch 8).
    if (!device_.is_cuda()) input = input.contiguous(torch::MemoryFormat::ChannelsLast);
    return run(input);  // run_module returns float32
  }

  // Runs forward and checks the result. Requires inference or no-grad mode set by the caller.
  torch::Tensor run(const torch::Tensor& images) const {
    const auto embeddings = detail::run_module(module_, images, file_);
    if (embeddings.dim() != 2 || embeddings.size(0) != images.size(0)) {
      throw ModelError("'" + file_ + "' is not an embedding network: input " +
                       detail::shape_string(images) + " gave output " +
                       detail::shape_string(embeddings) + ", expected [N, D]");
    }
    return embeddings;
  }

  void check_with_probe() {
    torch::InferenceMode guard;
    const auto probe = torch::zeros({1, 3, metadata_.input.height, metadata_.input.width},
                                    torch::TensorOptions(device_.torch_device()));
    torch::Tensor output;
    try {
      output = run_in_precision(probe);
    } catch (const ModelError& e) {
      if (precision_ == Precision::float32 && !optimized_) throw;
      throw ModelError("'" + file_ + "' cannot run in " + precision_name(precision_) + (optimized_ ? ", optimised," : "") +
                       " on " + device_.str() + ": " + e.what());
    }
    const std::int64_t produced = output.size(1);
    if (has_metadata_file_ && produced != metadata_.embedding_size) {
      throw MetadataError("metadata of '" + file_ + "' says embedding_size " +
                          std::to_string(metadata_.embedding_size) + " but the network returns " +
                          detail::shape_string(output) + " for " + detail::shape_string(probe));
    }
    metadata_.embedding_size = produced;
  }

  std::string file_;
  Device device_;
  mutable torch::jit::Module module_;  // forward() is non-const in LibTorch
  BackboneMetadata metadata_;
  bool has_metadata_file_ = false;
  bool optimized_ = false;
  Precision precision_ = Precision::float32;
};

}  // namespace siamese
