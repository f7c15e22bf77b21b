#pragma once

#include <siamese/detail/format.hpp>
#include <siamese/errors.hpp>
#include <siamese/metadata.hpp>

#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <string>

namespace siamese::train {

/// Where a trainer gets its inputs: the face of `file` as a backbone input, float32 [3,H,W]
/// with H and W from `spec` and its normalisation applied, on any device. Throws, naming the
/// file, when it cannot be read. photo_chips() (siamese/train/photo_chips.hpp, siamese::vision)
/// reads and aligns photos; a source of tensors made elsewhere needs no OpenCV.
using ChipSource = std::function<torch::Tensor(const std::filesystem::path& file, const InputSpec& spec)>;

namespace detail {
/// `source`'s chip of `file`, checked against the contract above. Throws ShapeError naming
/// the file and the shape when it is not float32 [3, spec.height, spec.width].
inline torch::Tensor checked_chip(const ChipSource& source, const std::filesystem::path& file, const InputSpec& spec) {
  auto chip = source(file, spec);
  if (!chip.defined() || chip.dim() != 3 || chip.size(0) != 3 || chip.size(1) != spec.height ||
      chip.size(2) != spec.width || chip.scalar_type() != torch::kFloat32) {
    throw ShapeError("the chip source gave " + siamese::detail::shape_string(chip) + " " +
                     siamese::detail::dtype_string(chip) + " for '" + file.string() + "', expected float32 [3," +
                     std::to_string(spec.height) + "," + std::to_string(spec.width) + "]");
  }
  return chip;
}
}  // namespace detail

}  // namespace siamese::train
