#pragma once

#include <siamese/detail/format.hpp>
#include <siamese/device.hpp>
#include <siamese/errors.hpp>
#include <siamese/metadata.hpp>

#include <torch/script.h>
#include <torch/torch.h>

#include <filesystem>
#include <optional>
#include <string>
#include <utility>

namespace siamese::detail {

/// A TorchScript archive loaded in eval mode, with its siamese.json when it has one.
struct LoadedModule {
  torch::jit::Module module;
  std::optional<BackboneMetadata> metadata;
};

/// Loads `file` onto `device`. Throws FileError (missing, not a regular file, empty),
/// ModelError (not a TorchScript archive), MetadataError (malformed siamese.json).
inline LoadedModule load_module(const std::string& file, const Device& device) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) {
    throw FileError("model file '" + file + "' does not exist or is not a regular file");
  }
  if (std::filesystem::file_size(file, ec) == 0) throw FileError("model file '" + file + "' is empty");
  torch::jit::ExtraFilesMap extra{{metadata_file_name, ""}};
  LoadedModule loaded;
  try {
    loaded.module = torch::jit::load(file, device.torch_device(), extra);
  } catch (const std::exception& e) {
    throw ModelError("cannot load '" + file + "' as a TorchScript archive: " +
                     error_summary(e.what()));
  }
  loaded.module.eval();
  if (!extra[metadata_file_name].empty()) {
    loaded.metadata = parse_metadata(extra[metadata_file_name], file);
  }
  return loaded;
}

/// Runs forward on `input` and returns its tensor output as float32.
/// Throws ModelError when forward fails or returns no tensor, NumericError on NaN/Inf.
inline torch::Tensor run_module(torch::jit::Module& module, const torch::Tensor& input,
                                const std::string& file) {
  torch::jit::IValue output;
  try {
    output = module.forward({input});
  } catch (const std::exception& e) {  // c10::Error, or JITException from scripted code
    throw ModelError("forward of '" + file + "' failed on input " + shape_string(input) + ": " +
                     error_summary(e.what()));
  }
  if (!output.isTensor()) {
    throw ModelError("forward of '" + file + "' returned " + output.tagKind() + ", not a tensor");
  }
  auto result = output.toTensor();
  if (result.scalar_type() != torch::kFloat32) result = result.to(torch::kFloat32);
  if (!torch::isfinite(result).all().item<bool>()) {
    throw NumericError("'" + file + "' produced NaN or infinite values for input " +
                       shape_string(input));
  }
  return result;
}

/// Freezes and optimises a module for inference. Returns nullopt when the module cannot be
/// frozen (some scripted modules cannot); it still runs correctly unoptimised.
inline std::optional<torch::jit::Module> optimized_for_inference(const torch::jit::Module& module) {
  try {
    auto frozen = torch::jit::freeze(module);
    return torch::jit::optimize_for_inference(frozen);
  } catch (const c10::Error&) {
    return std::nullopt;
  }
}

}  // namespace siamese::detail
