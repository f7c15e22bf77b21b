#pragma once

#include <siamese/errors.hpp>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cctype>
#include <cstdlib>
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

/// What an image file's header says, read without decoding: its format and size.
struct ImageHeader {
  const char* format = nullptr;  ///< "JPEG", "PNG", "BMP", "PNM", "WebP"; null for any other
  std::uint64_t width = 0;       ///< 0 with `height` when the header is cut short or damaged
  std::uint64_t height = 0;
  /// A format the library does not decode whose signature the bytes also carry, further in
  /// than the leading magic ("DICOM" for "DICM" at byte 128, "DTED" at byte 140); null if none.
  const char* also_signed_as = nullptr;
};

inline constexpr const char* readable_formats = "JPEG, PNG, BMP, PNM (P1-P6) or WebP";

/// The header of a JPEG, PNG, BMP, PNM or WebP file. Only these formats are decoded: each
/// states its size in a header read here, so no decoder allocates pixels before the size has
/// been checked (OpenCV's other decoders, TIFF, EXR, JPEG 2000 and others, would). The size
/// read must be the one the decoder will read, so each reader follows its decoder's quirks.
inline ImageHeader read_image_header(const std::uint8_t* data, std::size_t size) {
  auto le16 = [&](std::size_t at) { return static_cast<std::uint64_t>(data[at]) | static_cast<std::uint64_t>(data[at + 1]) << 8; };
  auto le32 = [&](std::size_t at) { return le16(at) | le16(at + 2) << 16; };
  auto be16 = [&](std::size_t at) { return static_cast<std::uint64_t>(data[at]) << 8 | data[at + 1]; };
  auto be32 = [&](std::size_t at) { return be16(at) << 16 | be16(at + 2); };
  auto starts_with = [&](const char* magic, std::size_t length, std::size_t at = 0) {
    return size >= at + length && std::equal(magic, magic + length, reinterpret_cast<const char*>(data) + at);
  };
  ImageHeader header;
  if (starts_with("\x89PNG\r\n\x1a\n", 8)) {
    header.format = "PNG";
    // The sides are the IHDR chunk's, which the PNG standard puts first; any other layout is
    // treated as damaged rather than guessed at.
    if (size >= 24 && starts_with("IHDR", 4, 12)) header.width = be32(16), header.height = be32(20);
  } else if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) {
    header.format = "JPEG";
    std::size_t at = 2;
    while (at + 9 < size && data[at] == 0xFF) {
      const std::uint8_t marker = data[at + 1];
      if (marker == 0xFF) {  // fill byte
        ++at;
        continue;
      }
      if (marker == 0xD8 || marker == 0xD9) break;  // a second start, or the end: libjpeg refuses
      if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // TEM, RSTn: no length field
        at += 2;
        continue;
      }
      const bool start_of_frame = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
      if (start_of_frame) {
        header.width = be16(at + 7), header.height = be16(at + 5);
        break;
      }
      at += 2 + be16(at + 2);
    }
  } else if (starts_with("BM", 2)) {
    header.format = "BMP";
    if (size >= 26) {
      const bool core_header = le32(14) == 12;  // OS/2 BITMAPCOREHEADER: unsigned 16-bit sides
      const auto width = core_header ? static_cast<std::int64_t>(le16(18)) : static_cast<std::int32_t>(le32(18));
      const auto height = core_header ? static_cast<std::int64_t>(le16(20)) : static_cast<std::int32_t>(le32(22));
      header.width = static_cast<std::uint64_t>(std::abs(static_cast<std::int64_t>(width)));
      header.height = static_cast<std::uint64_t>(std::abs(static_cast<std::int64_t>(height)));  // negative: top-down
    }
  } else if (size >= 3 && data[0] == 'P' && data[1] >= '1' && data[1] <= '6' && std::isspace(data[2])) {
    header.format = "PNM";
    // As OpenCV's reader: white space and comments ('#' to a CR or LF) before a number, and the
    // byte after its digits consumed whatever it is: in "P6 640#2 255" the '#' ends the width
    // and 2 is the height, not a comment.
    std::size_t at = 2;
    std::uint64_t sides[2] = {0, 0};
    for (auto& side : sides) {
      while (at < size && !std::isdigit(data[at])) {
        if (data[at] == '#') {
          while (at < size && data[at] != '\n' && data[at] != '\r') ++at;
          ++at;
        } else if (std::isspace(data[at])) {
          ++at;
        } else {
          break;  // OpenCV refuses the file; so does the zero side left here
        }
      }
      while (at < size && std::isdigit(data[at]) && side < (1ULL << 40)) side = side * 10 + (data[at++] - '0');
      ++at;
    }
    header.width = sides[0], header.height = sides[1];
  } else if (starts_with("RIFF", 4) && starts_with("WEBP", 4, 8)) {
    header.format = "WebP";
    if (starts_with("VP8 ", 4, 12) && size >= 30) {
      header.width = le16(26) & 0x3FFF, header.height = le16(28) & 0x3FFF;
    } else if (starts_with("VP8L", 4, 12) && size >= 25) {
      const auto bits = le32(21);
      header.width = (bits & 0x3FFF) + 1, header.height = ((bits >> 14) & 0x3FFF) + 1;
    } else if (starts_with("VP8X", 4, 12) && size >= 30) {
      auto le24 = [&](std::size_t at) { return le16(at) | static_cast<std::uint64_t>(data[at + 2]) << 16; };
      header.width = le24(24) + 1, header.height = le24(27) + 1;
    }
  }
  if (header.width == 0 || header.height == 0) header.width = header.height = 0;
  // OpenCV gives the bytes to the first decoder whose signature check accepts them. When the
  // decoder of the leading magic declines (libwebp checks more than the magic), later decoders
  // look deeper into the file: GDCM's DICOM reader aborts the process on some inputs.
  if (starts_with("DICM", 4, 128)) {
    header.also_signed_as = "DICOM";
  } else if (starts_with("DTED", 4, 140)) {
    header.also_signed_as = "DTED";
  }
  return header;
}

}  // namespace detail

/// Decodes an encoded image (JPEG, PNG, ...) held in memory. `name` labels error messages.
/// Ensures: a non-empty CV_8UC3 image in RGB order, EXIF orientation applied; gray, BGRA and
/// 16-bit images converted. Reads JPEG, PNG, BMP, PNM and WebP, whose sizes are checked from
/// the header before decoding. Throws ImageError when the data is empty, in another format,
/// also signed as a format that is not decoded (a polyglot), undecodable, or beyond `limits`.
inline cv::Mat decode_image(const std::vector<std::uint8_t>& bytes, const std::string& name,
                            const ImageLimits& limits = {}) {
  if (bytes.empty()) throw ImageError("image '" + name + "' is empty (0 bytes)");
  if (bytes.size() > limits.max_file_bytes) {
    throw ImageError("image '" + name + "' has " + std::to_string(bytes.size()) +
                     " bytes, over the limit of " + std::to_string(limits.max_file_bytes));
  }
  // Refuse a decompression bomb from its header, before the decoder allocates its pixels.
  const auto header = detail::read_image_header(bytes.data(), bytes.size());
  if (header.format == nullptr) {
    throw ImageError("image '" + name + "' is not " + detail::readable_formats + " (unknown or unsupported format)");
  }
  if (header.width == 0) {
    throw ImageError("image '" + name + "' has a damaged or truncated " + header.format + " header");
  }
  if (header.also_signed_as != nullptr) {
    throw ImageError("image '" + name + "' is ambiguous: a " + header.format + " header, but also a " +
                     header.also_signed_as + " signature, a format that is not decoded");
  }
  if (static_cast<double>(header.width) * static_cast<double>(header.height) > limits.max_pixels) {
    throw ImageError("image '" + name + "' says it is " + std::to_string(header.width) + "x" +
                     std::to_string(header.height) + ", over the limit of " +
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

/// The extensions of the files taken as photos where a folder is read (frames of a video,
/// people to enroll), as messages list them.
inline constexpr const char* photo_extensions = ".jpg, .jpeg, .png, .bmp, .webp";

/// Whether `file` is named as a photo: its extension, in any case, is one of photo_extensions.
inline bool is_photo_file(const std::filesystem::path& file) {
  auto ext = file.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp" || ext == ".webp";
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
