#pragma once

#include <torch/torch.h>

#include <sstream>
#include <string>

namespace siamese::detail {

/// "[2, 3, 224, 224]": the shape of a tensor, for error messages.
inline std::string shape_string(const torch::Tensor& tensor) {
  if (!tensor.defined()) return "[undefined]";
  std::ostringstream out;
  out << tensor.sizes();
  return out.str();
}

inline std::string dtype_string(const torch::Tensor& tensor) {
  if (!tensor.defined()) return "undefined";
  return std::string(c10::toString(tensor.scalar_type()));
}

}  // namespace siamese::detail
