// The library's boundary: hostile inputs at public entry points raise the library's own errors
// (siamese::Error and its kinds), never LibTorch's c10::Error, OpenCV's cv::Exception or
// std::filesystem_error. Each case here once let a foreign exception through.
#include "fixtures.hpp"

#include <catch2/catch.hpp>

#include <filesystem>

namespace {

// A tensor with no data on the meta device, which every LibTorch build has: a second device
// on a machine without a GPU.
torch::Tensor on_meta(std::vector<std::int64_t> sizes) { return torch::empty(sizes, torch::device(torch::kMeta)); }

}  // namespace

TEST_CASE("A malformed Haar cascade file is a FileError naming it", "[errors][boundary][face]") {
  fixtures::TempDir dir;
  fixtures::write_file(dir / "cascade.xml", "<?xml version=\"1.0\"?><opencv_storage><cascade>broken");
  CHECK_THROWS_AS(siamese::HaarFaceDetector(dir / "cascade.xml"), siamese::FileError);
  CHECK_THROWS_WITH(siamese::HaarFaceDetector(dir / "cascade.xml"), Catch::Contains("cascade.xml"));
}

TEST_CASE("Embeddings on two devices are a DeviceError in every distance", "[errors][boundary][distance]") {
  const auto cpu = torch::zeros({2, 4});
  const auto meta = on_meta({2, 4});
  CHECK_THROWS_AS(siamese::EuclideanDistance{}(cpu, meta), siamese::DeviceError);
  CHECK_THROWS_AS(siamese::EuclideanDistance{}.pairwise(cpu, meta), siamese::DeviceError);
  CHECK_THROWS_AS(siamese::SquaredEuclideanDistance{}(meta, cpu), siamese::DeviceError);
  CHECK_THROWS_WITH(siamese::CosineSimilarity{}(cpu, meta), Catch::Contains("cpu") && Catch::Contains("meta"));
}

TEST_CASE("Tensors without data are a DeviceError for the backbone and the gallery", "[errors][boundary]") {
  fixtures::TempDir dir;
  siamese::TorchScriptBackbone backbone(fixtures::save_tiny_backbone(dir), fixtures::cpu_options());
  CHECK_THROWS_AS(backbone.embed(on_meta({1, 3, fixtures::input_side, fixtures::input_side})), siamese::DeviceError);
  siamese::Gallery gallery("m", 4);
  CHECK_THROWS_AS(gallery.enroll("ann", on_meta({4})), siamese::DeviceError);
  CHECK(gallery.size() == 0);
  gallery.enroll("ann", torch::zeros({4}));
  CHECK_THROWS_WITH(gallery.identify(on_meta({4}), 1, 1.0), Catch::Contains("Gallery::identify") && Catch::Contains("meta"));
}

TEST_CASE("Folders that cannot be listed or made are FileErrors naming them", "[errors][boundary][train]") {
  fixtures::TempDir dir;
  // A person folder that is a link to itself, and an image that is one: skipped, not thrown.
  std::filesystem::create_directories(dir / "people" / "ann");
  REQUIRE(cv::imwrite((dir / "people" / "ann" / "1.png").string(), cv::Mat(8, 8, CV_8UC3, cv::Scalar(1, 2, 3))));
  std::filesystem::create_directory_symlink(dir / "people" / "loop", dir / "people" / "loop");
  std::filesystem::create_symlink(dir / "people" / "ann" / "2.png", dir / "people" / "ann" / "2.png");
  const siamese::train::IdentityFolder people(dir / "people");
  REQUIRE(people.people().size() == 1);
  CHECK(people.people()[0].images.size() == 1);
  CHECK_THROWS_AS(siamese::train::IdentityFolder(dir / "people" / "loop"), siamese::FileError);

  // A checkpoint folder under a file: FileError, not std::filesystem::filesystem_error.
  const auto model = fixtures::save_tiny_backbone(dir);
  fixtures::write_file(dir / "a-file", "x");
  siamese::train::FineTuneOptions options;
  options.trainable = {"fc_weight"};
  options.checkpoint_dir = dir / "a-file" / "checkpoints";
  for (const char* person : {"cyd", "dan"}) {
    std::filesystem::create_directories(dir / "two" / person);
    for (int i = 0; i < 2; ++i) {
      const auto image = dir / "two" / person / (std::to_string(i) + ".png");
      REQUIRE(cv::imwrite(image.string(), cv::Mat(8, 8, CV_8UC3, cv::Scalar(9 * i, person[0], 7))));
    }
  }
  const siamese::train::IdentityFolder two(dir / "two");
  CHECK_THROWS_AS(siamese::train::FineTuner(model, siamese::train::photo_chips(nullptr), two, {}, options), siamese::FileError);
  CHECK_THROWS_WITH(siamese::train::FineTuner(model, siamese::train::photo_chips(nullptr), two, {}, options),
                    Catch::Contains("cannot create checkpoint folder") && Catch::Contains("a-file"));
}

TEST_CASE("Folders where files are expected are the library's errors", "[errors][boundary]") {
  fixtures::TempDir dir;
  std::filesystem::create_directories(dir / "folder.jpg");
  CHECK_THROWS_AS(siamese::read_image(dir / "folder.jpg"), siamese::Error);
  CHECK_THROWS_AS(siamese::eval::parse_pairs(dir.path(), dir.path()), siamese::Error);
  CHECK_THROWS_AS(siamese::Gallery::load(dir.path()), siamese::Error);
  CHECK_THROWS_AS(siamese::eval::load_calibration(dir.path()), siamese::Error);
  CHECK_THROWS_AS(siamese::TorchScriptBackbone(dir.path(), fixtures::cpu_options()), siamese::Error);
  CHECK_THROWS_AS(siamese::Gallery::open(dir.path()), siamese::Error);
}
