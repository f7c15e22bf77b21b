// Fuzz targets: each feeds arbitrary bytes to one parser of untrusted input. A typed
// siamese::Error is the right answer to bad bytes; anything else (a crash, a sanitizer report,
// another exception, a result that breaks the parser's contract) is a bug. The same functions
// run under libFuzzer (fuzz_main.cpp) and, over the committed corpora, in the unit tests.
#pragma once

#include <siamese/eval/pairs.hpp>
#include <siamese/gallery.hpp>
#include <siamese/image.hpp>
#include <siamese/metadata.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

namespace siamese::fuzz {

// A broken contract must be loud in the fuzzer and in the tests alike.
inline void require(bool condition) {
  if (!condition) std::abort();
}

/// Image decoding and validation, with limits small enough for the fuzzer's memory budget.
inline void decode_image_target(const std::uint8_t* data, std::size_t size) {
  ImageLimits limits;
  limits.max_pixels = 4e6;
  try {
    const auto rgb = decode_image(std::vector<std::uint8_t>(data, data + size), "fuzz input", limits);
    require(rgb.type() == CV_8UC3 && !rgb.empty() && rgb.total() <= 4e6);
  } catch (const Error&) {
  }
}

/// The LFW and CSV pair-list parsers.
inline void pair_list_target(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  eval::PairListLimits limits;
  limits.max_pairs = 10000;
  for (bool csv : {false, true}) {
    std::istringstream in(text);
    try {
      const auto list = csv ? eval::parse_csv_pairs(in, "fuzz.csv", "root", limits)
                            : eval::parse_lfw_pairs(in, "fuzz.txt", "root", limits);
      require(!list.pairs.empty() && list.pairs.size() <= limits.max_pairs && list.folds >= 1);
      for (const auto& pair : list.pairs) require((pair.label == 0 || pair.label == 1) && pair.fold < list.folds);
    } catch (const Error&) {
    }
  }
}

/// The gallery file loader: the bytes as they are (almost always refused by the checksum), and
/// re-sealed with a valid checksum so that the fuzzer reaches the parser behind it.
inline void gallery_target(const std::uint8_t* data, std::size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  for (int sealed = 0; sealed < 2; ++sealed) {
    if (sealed) {
      const std::uint64_t checksum = detail::fnv1a(bytes.data(), bytes.size());
      bytes.append(reinterpret_cast<const char*>(&checksum), sizeof checksum);
    }
    try {
      const auto gallery = Gallery::parse(bytes, "fuzz gallery");
      const auto row_bytes = static_cast<std::size_t>(gallery.embedding_size()) * sizeof(float);
      require(gallery.embedding_size() >= 1 && gallery.size() * row_bytes <= bytes.size());
      std::size_t enrolled = 0;
      for (const auto& person : gallery.people()) enrolled += person.second;
      require(enrolled == gallery.size());
    } catch (const Error&) {
    }
  }
}

/// The siamese.json metadata parser of TorchScript backbones; what it accepts must round-trip.
inline void metadata_target(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto metadata = parse_metadata(text, "fuzz.json");
    const auto again = parse_metadata(to_json_string(metadata), "fuzz.json again");
    require(again.input == metadata.input && again.name == metadata.name &&
            again.embedding_size == metadata.embedding_size);
  } catch (const Error&) {
  }
}

}  // namespace siamese::fuzz
