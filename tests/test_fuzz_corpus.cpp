#include "fixtures.hpp"
#include "fuzz/targets.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>

namespace {

// Runs every committed seed and every crash the fuzzers once found through `target`.
std::size_t replay(const std::string& name, void (*target)(const std::uint8_t*, std::size_t)) {
  std::size_t inputs = 0;
  for (const char* kind : {"corpus", "regressions"}) {
    const auto dir = std::filesystem::path(SIAMESE_SOURCE_DIR) / "tests" / "fuzz" / kind / name;
    if (!std::filesystem::is_directory(dir)) continue;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      std::ifstream in(entry.path(), std::ios::binary);
      const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      INFO(entry.path().string());
      target(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
      ++inputs;
    }
  }
  return inputs;
}

}  // namespace

TEST_CASE("Fuzz seeds and past crashes replay cleanly through every target", "[fuzz]") {
  CHECK(replay("decode_image", siamese::fuzz::decode_image_target) >= 8);
  CHECK(replay("pair_list", siamese::fuzz::pair_list_target) >= 3);
  CHECK(replay("gallery", siamese::fuzz::gallery_target) >= 2);
  CHECK(replay("gallery_database", siamese::fuzz::gallery_database_target) >= 2);
  CHECK(replay("metadata", siamese::fuzz::metadata_target) >= 2);
}

TEST_CASE("The gallery database seeds are galleries the library opens", "[fuzz][store]") {
  // Seeds the library refused would start the fuzzer far from the code it is meant to reach.
  const auto dir = std::filesystem::path(SIAMESE_SOURCE_DIR) / "tests" / "fuzz" / "corpus" / "gallery_database";
  std::size_t opened = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    fixtures::TempDir scratch;
    const auto copy = scratch / "seed.db";
    std::filesystem::copy_file(entry.path(), copy);
    INFO(entry.path().string());
    const auto gallery = siamese::Gallery::open(copy);
    CHECK(gallery.model_name() == "seed-model");
    CHECK(gallery.size() >= 3);
    ++opened;
  }
  CHECK(opened >= 2);
}
