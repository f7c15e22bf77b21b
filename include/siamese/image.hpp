#pragma once

#include <siamese/errors.hpp>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace siamese {

/// Limits that keep a hostile file from exhausting memory.
struct ImageLimits {
  std::uintmax_t max_file_bytes = 256ULL << 20;  ///< 256 MiB of encoded data
  double max_pixels = 50e6;                      ///< 50 megapixels decoded
};

namespace detail {

/// Any decoded image (gray, BGR, BGRA; 8 or 16 bit) -> 8-bit 3-channel RGB.
inline cv::Mat to_rgb8(const cv::Mat& decoded) {
  cv::Mat eight_bit;
  if (decoded.depth() == CV_8U) {
    eight_bit = decoded;
  } else if (decoded.depth() == CV_16U) {
    decoded.convertTo(eight_bit, CV_8U, 1.0 / 257.0);
  } else {
    decoded.convertTo(eight_bit, CV_8U);
  }
  cv::Mat rgb;
  switch (eight_bit.channels()) {
    case 1: cv::cvtColor(eight_bit, rgb, cv::COLOR_GRAY2RGB); break;
    case 3: cv::cvtColor(eight_bit, rgb, cv::COLOR_BGR2RGB); break;
    case 4: cv::cvtColor(eight_bit, rgb, cv::COLOR_BGRA2RGB); break;
    default:
      throw ImageError("unsupported channel count " + std::to_string(eight_bit.channels()));
  }
  return rgb;
}

}  // namespace detail

/// Decodes an encoded image (JPEG, PNG, ...) held in memory. `name` labels error messages.
/// Ensures: a non-empty CV_8UC3 image in RGB order, EXIF orientation applied.
/// Throws ImageError when the data is empty, undecodable, or beyond `limits`.
inline cv::Mat decode_image(const std::vector<std::uint8_t>& bytes, const std::string& name,
                            const ImageLimits& limits = {}) {
  if (bytes.empty()) throw ImageError("image '" + name + "' is empty (0 bytes)");
  if (bytes.size() > limits.max_file_bytes) {
    throw ImageError("image '" + name + "' has " + std::to_string(bytes.size()) +
                     " bytes, over the limit of " + std::to_string(limits.max_file_bytes));
  }
  cv::Mat decoded;
  try {
    decoded = cv::imdecode(bytes, cv::IMREAD_ANYDEPTH | cv::IMREAD_ANYCOLOR);
  } catch (const cv::Exception& e) {
    throw ImageError("image '" + name + "' cannot be decoded: " + e.msg);
  }
  if (decoded.empty()) {
    throw ImageError("image '" + name + "' cannot be decoded (unknown format or corrupt data)");
  }
  if (static_cast<double>(decoded.total()) > limits.max_pixels) {
    throw ImageError("image '" + name + "' is " + std::to_string(decoded.cols) + "x" +
                     std::to_string(decoded.rows) + ", over the limit of " +
                     std::to_string(static_cast<long long>(limits.max_pixels)) + " pixels");
  }
  return detail::to_rgb8(decoded);
}

/// Reads and decodes an image file. Ensures and throws as decode_image(); FileError when the
/// file is missing or unreadable.
inline cv::Mat read_image(const std::filesystem::path& file, const ImageLimits& limits = {}) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) {
    throw FileError("image file '" + file.string() + "' does not exist or is not a regular file");
  }
  const auto size = std::filesystem::file_size(file, ec);
  if (!ec && size > limits.max_file_bytes) {
    throw ImageError("image '" + file.string() + "' has " + std::to_string(size) +
                     " bytes, over the limit of " + std::to_string(limits.max_file_bytes));
  }
  std::ifstream in(file, std::ios::binary);
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) throw FileError("cannot read image file '" + file.string() + "'");
  return decode_image(bytes, file.string(), limits);
}

}  // namespace siamese
