// Tests on the real models that tools/setup-models.sh and the InceptionV3 export make.
// CTest runs them after those fixtures (tags [models]); paths come from the environment.
#include "fixtures.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

namespace {

std::filesystem::path env_path(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) FAIL(name << " is not set: run these tests through ctest");
  return value;
}

std::filesystem::path face_model() { return env_path("SIAMESE_MODELS_DIR") / "faceapi_recognition.pt"; }

// The synthetic image of tools/faceapi_golden.mjs (goldenPixel), as raw RGB floats [3,S,S].
torch::Tensor golden_pixels(int s, int side) {
  auto image = torch::empty({3, side, side}, torch::kFloat32);
  auto a = image.accessor<float, 3>();
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < side; ++y)
      for (int x = 0; x < side; ++x)
        a[c][y][x] = static_cast<float>(
            127.5 + 127.5 * std::sin(0.031 * (s + 1) * x + 0.047 * y + 2.1 * c + 0.7 * s) *
                        std::cos(0.023 * (c + 1) * y - 0.011 * s * x));
  return image;
}

}  // namespace

TEST_CASE("Converted face model reproduces face-api.js descriptors", "[models][faceapi]") {
  std::ifstream in(std::string(SIAMESE_SOURCE_DIR) + "/tests/data/faceapi_golden.json");
  REQUIRE(in.good());
  const auto golden = nlohmann::json::parse(in);
  const int side = golden.at("side").get<int>();
  for (bool optimize : {false, true}) {
    siamese::TorchScriptBackbone backbone(face_model(), fixtures::cpu_options(optimize));
    const auto& spec = backbone.input_spec();
    REQUIRE(spec.height == side);
    const auto mean = torch::tensor({spec.mean[0], spec.mean[1], spec.mean[2]}).view({3, 1, 1});
    const auto stddev = torch::tensor({spec.std[0], spec.std[1], spec.std[2]}).view({3, 1, 1});
    double max_diff = 0.0;
    const auto& descriptors = golden.at("descriptors");
    for (std::size_t s = 0; s < descriptors.size(); ++s) {
      const auto input = ((golden_pixels(static_cast<int>(s), side) * spec.scale - mean) / stddev)
                             .to(torch::kFloat32).unsqueeze(0);
      const auto expected = torch::tensor(descriptors[s].get<std::vector<float>>()).unsqueeze(0);
      const auto got = backbone.embed(input);
      max_diff = std::max(max_diff, (got - expected).abs().max().item<double>());
    }
    std::cout << "face-api golden check (optimize=" << optimize << "): max abs diff " << max_diff
              << " over " << descriptors.size() << " descriptors\n";
    CHECK(max_diff < 1e-3);
  }
}

TEST_CASE("Face model metadata names its source and threshold", "[models][faceapi]") {
  siamese::TorchScriptBackbone backbone(face_model(), fixtures::cpu_options());
  const auto& m = backbone.metadata();
  CHECK(m.pretrained);
  CHECK(m.embedding_size == 128);
  CHECK(m.input.height == 150);
  CHECK(m.distance_threshold == 0.6);
  CHECK_THAT(m.weights, Catch::Contains("@vladmandic/face-api"));
}

TEST_CASE("InceptionV3 export: C++ output equals Python output", "[models][inception]") {
  const auto dir = env_path("SIAMESE_INCEPTION_FIXTURE_DIR");
  auto reference = torch::jit::load((dir / "reference.pt").string());
  const auto input = reference.attr("input").toTensor();
  const auto expected = reference.attr("output").toTensor();
  for (bool optimize : {false, true}) {
    siamese::TorchScriptBackbone backbone(dir / "inception_v3.pt", fixtures::cpu_options(optimize));
    CHECK(backbone.metadata().architecture == "inception_v3");
    CHECK_FALSE(backbone.metadata().pretrained);
    CHECK_THAT(backbone.metadata().name, Catch::EndsWith("-random"));
    CHECK(backbone.metadata().input.height == input.size(2));
    CHECK(backbone.metadata().multiply_adds.value_or(0) > 1e8);
    const auto got = backbone.embed(input);
    REQUIRE(got.sizes() == torch::IntArrayRef({input.size(0), 2048}));
    const double diff = (got - expected).abs().max().item<double>();
    // The plain module runs Python's own kernels: within 1e-4. Freezing folds BatchNorm into
    // the convolutions and oneDNN reorders sums: within 1e-4 of the output's largest value.
    const double scale = optimize ? std::max(1.0, expected.abs().max().item<double>()) : 1.0;
    std::cout << "InceptionV3 C++ vs Python (optimize=" << optimize << "): max abs diff " << diff
              << ", largest output " << expected.abs().max().item<double>() << "\n";
    CHECK(diff < 1e-4 * scale);
  }
}

TEST_CASE("Same-person LFW pairs come out closer than different-person pairs", "[models][lfw]") {
  const std::filesystem::path lfw = std::string(SIAMESE_SHARED_DIR) + "/lfw";
  if (!std::filesystem::exists(lfw / "pairsDevTest.txt")) {
    WARN("skipped: " << lfw << " is absent (see ../shared/README.md)");
    return;
  }
  siamese::TorchScriptBackbone backbone(face_model(), fixtures::cpu_options(true));
  siamese::HaarFaceDetector detector;
  auto embed = [&](const std::string& name, int number) {
    char file[16];
    std::snprintf(file, sizeof file, "_%04d.jpg", number);
    const auto path = lfw / name / (name + file);
    const auto image = siamese::read_image(path);
    const auto faces = detector.detect(image);
    // LFW images are centred face crops: the image centre stands in where Haar finds nothing.
    const auto box = faces.empty() ? cv::Rect(75, 75, 100, 100) : faces.front();
    return backbone.embed(siamese::to_input_tensor(siamese::crop_face(image, box), backbone.input_spec()));
  };
  std::ifstream in(lfw / "pairsDevTest.txt");
  std::string line;
  std::getline(in, line);
  // The file lists 500 same-person lines, then 500 different-person lines: take 40 of each.
  std::vector<double> same, different;
  for (int i = 0; std::getline(in, line); ++i) {
    if (i % 12 != 0) continue;
    std::istringstream fields(line);
    std::string name_a, name_b;
    int a = 0, b = 0;
    fields >> name_a >> a;
    const bool is_same = !(fields >> name_b >> b) || name_b.empty();
    if (is_same) {
      std::istringstream again(line);
      again >> name_a >> a >> b;
      name_b = name_a;
    }
    const double d = siamese::EuclideanDistance{}(embed(name_a, a), embed(name_b, b)).item<double>();
    (is_same ? same : different).push_back(d);
  }
  auto mean = [](const std::vector<double>& v) {
    double sum = 0;
    for (double x : v) sum += x;
    return sum / static_cast<double>(v.size());
  };
  std::size_t correct = 0;
  for (double d : same) correct += d < 0.6;
  for (double d : different) correct += d >= 0.6;
  const double accuracy = static_cast<double>(correct) / static_cast<double>(same.size() + different.size());
  std::cout << "LFW pairsDevTest subset: " << same.size() << " same (mean distance " << mean(same)
            << "), " << different.size() << " different (mean " << mean(different)
            << "), accuracy at 0.6: " << accuracy << "\n";
  REQUIRE(same.size() >= 30);
  REQUIRE(different.size() >= 30);
  CHECK(mean(same) + 0.2 < mean(different));
  CHECK(accuracy > 0.9);
}

TEST_CASE("Raw sample photos: same person closer than different people", "[models][samples]") {
  const std::filesystem::path data = std::string(SIAMESE_SOURCE_DIR) + "/examples/data";
  auto net = siamese::load_face_verifier(face_model(), fixtures::cpu_options(true));
  siamese::HaarFaceDetector detector;
  auto face = [&](const char* file) {
    const auto path = (data / file).string();
    return siamese::to_input_tensor(
        siamese::find_and_crop_face(detector, siamese::read_image(path), path),
        net.backbone().input_spec());
  };
  const auto obama = net.verify(face("obama.jpg"), face("obama2.jpg"));
  const auto biden = net.verify(face("biden.jpg"), face("biden2.jpg"));
  const auto mixed = net.verify(face("obama.jpg"), face("biden.jpg"));
  std::cout << "samples: obama/obama2 " << obama.distance << ", biden/biden2 " << biden.distance
            << ", obama/biden " << mixed.distance << "\n";
  CHECK(obama.same);
  CHECK(biden.same);
  CHECK_FALSE(mixed.same);
  CHECK(obama.distance < mixed.distance);
}
