#pragma once

#include <torch/torch.h>

#include <algorithm>
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

/// The useful line of a LibTorch error: the first for c10::Error (a backtrace follows), the
/// last for errors raised inside TorchScript code (a script traceback comes first).
inline std::string error_summary(const std::string& text) {
  if (text.rfind("The following operation failed", 0) == 0) {
    const auto end = text.find_last_not_of("\n ");
    const auto start = text.rfind('\n', end);
    return text.substr(start == std::string::npos ? 0 : start + 1, end - start);
  }
  return text.substr(0, text.find('\n'));
}

/// A control character: a byte below 0x20, or DEL (0x7f).
inline bool is_control_byte(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return byte < 0x20 || byte == 0x7f;
}

/// `text` with every control byte written as \xNN: safe to print in a message whatever a file
/// put in it.
inline std::string printable(const std::string& text) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (is_control_byte(c)) {
      out += "\\x";
      out += digits[byte >> 4];
      out += digits[byte & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

/// Whether `name` is a name a gallery stores, a person's or a model's: 1..1024 bytes, no
/// control characters (no newline to break line-based readers, no terminal escape). Enrolling
/// refuses other names, and reading a gallery (file or database) refuses a gallery that holds one.
inline bool is_valid_name(const std::string& name) {
  return !name.empty() && name.size() <= 1024 && std::none_of(name.begin(), name.end(), is_control_byte);
}

}  // namespace siamese::detail
