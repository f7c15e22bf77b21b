#pragma once

// The single-file gallery format (Gallery::save / Gallery::load): encoding and checked decoding.

#include <siamese/detail/files.hpp>
#include <siamese/detail/format.hpp>
#include <siamese/errors.hpp>

#include <torch/torch.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace siamese::detail {

/// What a gallery file holds: the model, and one person's name per embedding row.
struct GalleryFileContents {
  std::string model_name;
  std::int64_t embedding_size = 0;
  std::vector<std::string> owners;  ///< the person of each row
  torch::Tensor embeddings;         ///< [rows, embedding_size] float32, CPU, contiguous
};

inline constexpr std::uint32_t gallery_file_version = 1;

/// The bytes of a gallery file. Format: "SIAMGAL\0", u32 version, u32 name length, model name,
/// i64 embedding size, u64 count, count x (u32 name length, name, D float32), then u64 FNV-1a
/// of all before. Requires: one owner per row of `embeddings` [rows, D] float32 on the CPU.
inline std::string encode_gallery_file(const std::string& model_name, std::int64_t embedding_size,
                                       const std::vector<std::string>& owners, const torch::Tensor& embeddings) {
  std::string bytes;
  const auto put = [&bytes](auto value) { bytes.append(reinterpret_cast<const char*>(&value), sizeof value); };
  bytes.append("SIAMGAL", 8);
  put(gallery_file_version);
  put(static_cast<std::uint32_t>(model_name.size()));
  bytes += model_name;
  put(embedding_size);
  put(static_cast<std::uint64_t>(owners.size()));
  const auto data = embeddings.contiguous();
  const auto row_bytes = static_cast<std::size_t>(embedding_size) * sizeof(float);
  for (std::size_t i = 0; i < owners.size(); ++i) {
    put(static_cast<std::uint32_t>(owners[i].size()));
    bytes += owners[i];
    bytes.append(reinterpret_cast<const char*>(data.data_ptr<float>()) + i * row_bytes, row_bytes);
  }
  put(fnv1a(bytes.data(), bytes.size()));
  return bytes;
}

/// Reads the bytes of a gallery file; `name` labels errors. Checks the checksum before
/// trusting any count, so a truncated, tampered or hostile file raises GalleryError (naming
/// it) without allocating what it claims; names are checked as enroll checks them.
inline GalleryFileContents decode_gallery_file(const std::string& bytes, const std::string& name) {
  if (bytes.size() < 8 + 4 + 8 || bytes.compare(0, 8, std::string("SIAMGAL", 8)) != 0) {
    throw GalleryError(name + " is not a siamese gallery file");
  }
  std::uint64_t stored = 0;
  std::memcpy(&stored, bytes.data() + bytes.size() - 8, 8);
  if (stored != fnv1a(bytes.data(), bytes.size() - 8)) {
    throw GalleryError(name + " is damaged (checksum mismatch: truncated or modified)");
  }
  std::size_t at = 8;
  const auto end = bytes.size() - 8;
  const auto take = [&](std::uint64_t n) {
    if (n > end - at) throw GalleryError(name + " ends early");
    const char* start = bytes.data() + at;
    at += static_cast<std::size_t>(n);
    return start;
  };
  const auto get = [&](auto value) {
    std::memcpy(&value, take(sizeof value), sizeof value);
    return value;
  };
  const auto version = get(std::uint32_t{});
  if (version != gallery_file_version) throw GalleryError(name + " has format version " + std::to_string(version));
  GalleryFileContents contents;
  const auto name_length = get(std::uint32_t{});
  contents.model_name.assign(take(name_length), name_length);
  if (!is_valid_name(contents.model_name)) throw GalleryError(name + " names its model with an invalid name");
  contents.embedding_size = get(std::int64_t{});
  const auto count = get(std::uint64_t{});
  const auto dim = contents.embedding_size;
  if (dim < 1 || dim > 65536) throw GalleryError(name + " claims embedding size " + std::to_string(dim));
  const auto row_bytes = static_cast<std::uint64_t>(dim) * sizeof(float);
  if (count > (end - at) / (row_bytes + 4)) {
    throw GalleryError(name + " claims " + std::to_string(count) + " entries, more than its size can hold");
  }
  contents.embeddings = torch::empty({static_cast<std::int64_t>(count), dim}, torch::kFloat32);
  contents.owners.reserve(static_cast<std::size_t>(count));
  for (std::uint64_t i = 0; i < count; ++i) {
    const auto length = get(std::uint32_t{});
    contents.owners.emplace_back(take(length), length);
    if (!is_valid_name(contents.owners.back())) {
      throw GalleryError(name + " holds an invalid person name at entry " + std::to_string(i));
    }
    std::memcpy(contents.embeddings.data_ptr<float>() + i * static_cast<std::uint64_t>(dim), take(row_bytes), row_bytes);
  }
  if (at != end) throw GalleryError(name + " has " + std::to_string(end - at) + " unexpected bytes");
  if (!torch::isfinite(contents.embeddings).all().item<bool>()) throw GalleryError(name + " holds non-finite embeddings");
  return contents;
}

}  // namespace siamese::detail
