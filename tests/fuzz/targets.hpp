// Fuzz targets: each feeds arbitrary bytes to one parser of untrusted input. A typed
// siamese::Error is the right answer to bad bytes; anything else (a crash, a sanitizer report,
// another exception, a result that breaks the parser's contract) is a bug. The same functions
// run under libFuzzer (fuzz_main.cpp) and, over the committed corpora, in the unit tests.
#pragma once

#include <siamese/eval/calibration.hpp>
#include <siamese/eval/pairs.hpp>
#include <siamese/gallery.hpp>
#include <siamese/image.hpp>
#include <siamese/metadata.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

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

/// Gallery databases from elsewhere: the bytes become a database file that is opened, enrolled
/// into, searched and listed. Refusing it with GalleryError is the right answer to almost every
/// input; a database that opens must keep the gallery's promises: the enrollment is there, the
/// probe finds it, every name is one enroll would take.
inline void gallery_database_target(const std::uint8_t* data, std::size_t size) {
  static const auto file =
      std::filesystem::temp_directory_path() / ("siamese-fuzz-gallery-" + std::to_string(::getpid()) + ".db");
  const auto remove_all = [] {
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) std::remove((file.string() + suffix).c_str());
  };
  remove_all();
  {
    std::ofstream out(file, std::ios::binary);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    GalleryStoreOptions quick;
    quick.busy_timeout = std::chrono::milliseconds(10);
    quick.attempts = 1;
    auto gallery = Gallery::open(file, quick);
    // A file SQLite's own check finds damaged (a B-tree cell out of range, say) may read back
    // rows twice, which SQLite's reads do not notice: the gallery must not crash or leave its
    // typed errors on it, but its counts are only promised for sound files.
    const bool sound = SqliteGalleryStore::open(file, quick)->integrity_check() == "ok";
    const auto before = gallery.size();
    const auto probe = torch::full({gallery.embedding_size()}, 1e4F);  // far from any real face
    gallery.enroll("fuzz probe", probe);
    require(!sound || gallery.size() == before + 1);
    const auto found = gallery.identify(probe, 1, 1e-3);
    require(found.size() == 1 && (!sound || found[0].known));
    std::size_t rows = 0;
    for (const auto& [person, count] : gallery.people()) {
      require(detail::is_valid_name(person) && count >= 1);
      rows += count;
    }
    require(rows == gallery.size());
  } catch (const Error&) {
  }
  remove_all();
}

/// The JSON files the library reads from others: the siamese.json metadata of TorchScript
/// backbones and MODEL.calibration.json. What either parser accepts must round-trip.
inline void metadata_target(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto metadata = parse_metadata(text, "fuzz.json");
    const auto again = parse_metadata(to_json_string(metadata), "fuzz.json again");
    require(again.input == metadata.input && again.name == metadata.name &&
            again.embedding_size == metadata.embedding_size);
  } catch (const Error&) {
  }
  try {
    const auto calibration = eval::parse_calibration(text, "fuzz.calibration.json");
    const auto again = eval::parse_calibration(eval::to_json_string(calibration), "fuzz.calibration.json again");
    require(again.model_name == calibration.model_name && again.weight == calibration.weight &&
            again.distance_threshold == calibration.distance_threshold && again.pairs == calibration.pairs &&
            std::isfinite(again.bias) && again.weight != 0.0);
  } catch (const Error&) {
  }
}

}  // namespace siamese::fuzz
