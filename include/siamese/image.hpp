#pragma once

#include <siamese/errors.hpp>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
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

/// Width and height from a PNG or JPEG header, without decoding; {0, 0} for other formats or
/// headers it cannot read (the decoder then has the last word).
inline std::pair<std::uint64_t, std::uint64_t> peek_dimensions(const std::uint8_t* data, std::size_t size) {
  auto be16 = [&](std::size_t at) { return static_cast<std::uint64_t>(data[at]) << 8 | data[at + 1]; };
  auto be32 = [&](std::size_t at) { return be16(at) << 16 | be16(at + 2); };
  static constexpr std::uint8_t png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (size >= 24 && std::equal(png, png + 8, data)) return {be32(16), be32(20)};
  if (size >= 4 && data[0] == 0xFF && data[1] == 0xD8) {
    std::size_t at = 2;
    while (at + 9 < size) {
      if (data[at] != 0xFF) return {0, 0};
      const std::uint8_t marker = data[at + 1];
      if (marker == 0xFF) {  // fill byte
        ++at;
        continue;
      }
      const bool start_of_frame = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 &&
                                  marker != 0xC8 && marker != 0xCC;
      if (start_of_frame) return {be16(at + 7), be16(at + 5)};
      at += 2 + be16(at + 2);
    }
  }
  return {0, 0};
}

}  // namespace detail

/// Decodes an encoded image (JPEG, PNG, ...) held in memory. `name` labels error messages.
/// Ensures: a non-empty CV_8UC3 image in RGB order, EXIF orientation applied; gray, BGRA and
/// 16-bit images converted. PNG and JPEG sizes are checked from the header before decoding.
/// Throws ImageError when the data is empty, undecodable, or beyond `limits`.
inline cv::Mat decode_image(const std::vector<std::uint8_t>& bytes, const std::string& name,
                            const ImageLimits& limits = {}) {
  if (bytes.empty()) throw ImageError("image '" + name + "' is empty (0 bytes)");
  if (bytes.size() > limits.max_file_bytes) {
    throw ImageError("image '" + name + "' has " + std::to_string(bytes.size()) +
                     " bytes, over the limit of " + std::to_string(limits.max_file_bytes));
  }
  // Refuse a decompression bomb from its header, before the decoder allocates its pixels.
  const auto [width, height] = detail::peek_dimensions(bytes.data(), bytes.size());
  if (static_cast<double>(width) * static_cast<double>(height) > limits.max_pixels) {
    throw ImageError("image '" + name + "' says it is " + std::to_string(width) + "x" +
                     std::to_string(height) + ", over the limit of " +
                     std::to_string(static_cast<long long>(limits.max_pixels)) + " pixels");
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

/// Reads a whole file, refusing files over `max_bytes`.
/// Throws FileError when the file is missing or unreadable, ImageError when it is too large.
inline std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& file, std::uintmax_t max_bytes) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) {
    throw FileError("image file '" + file.string() + "' does not exist or is not a regular file");
  }
  const auto size = std::filesystem::file_size(file, ec);
  if (ec) throw FileError("cannot read image file '" + file.string() + "': " + ec.message());
  if (size > max_bytes) {
    throw ImageError("image '" + file.string() + "' has " + std::to_string(size) +
                     " bytes, over the limit of " + std::to_string(max_bytes));
  }
  std::ifstream in(file, std::ios::binary);
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size))) {
    throw FileError("cannot read image file '" + file.string() + "'");
  }
  return bytes;
}

/// Reads and decodes an image file. Ensures and throws as decode_image(); FileError when the
/// file is missing or unreadable.
inline cv::Mat read_image(const std::filesystem::path& file, const ImageLimits& limits = {}) {
  return decode_image(read_file_bytes(file, limits.max_file_bytes), file.string(), limits);
}

}  // namespace siamese
