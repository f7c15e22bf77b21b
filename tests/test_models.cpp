// Tests on the real models that tools/setup-models.sh and the InceptionV3 export make.
// CTest runs them after those fixtures (tags [models]); paths come from the environment.
#include "fixtures.hpp"
#include "video_scene.hpp"

#include <catch2/catch.hpp>
#include <opencv2/imgproc.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
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

// The network input for raw RGB pixels [3,S,S] under `spec`, as the backbone's preprocessing computes it.
torch::Tensor normalised(const torch::Tensor& raw, const siamese::InputSpec& spec) {
  const auto mean = torch::tensor({spec.mean[0], spec.mean[1], spec.mean[2]}).view({3, 1, 1});
  const auto stddev = torch::tensor({spec.std[0], spec.std[1], spec.std[2]}).view({3, 1, 1});
  return ((raw * spec.scale - mean) / stddev).to(torch::kFloat32).unsqueeze(0);
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
    double max_diff = 0.0;
    const auto& descriptors = golden.at("descriptors");
    for (std::size_t s = 0; s < descriptors.size(); ++s) {
      const auto input = normalised(golden_pixels(static_cast<int>(s), side), spec);
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

namespace {

std::filesystem::path shared_dir() { return std::string(SIAMESE_SHARED_DIR); }
std::filesystem::path example_photo(const char* name) {
  return std::filesystem::path(SIAMESE_SOURCE_DIR) / "examples" / "data" / name;
}

siamese::FacePipeline standard_pipeline(bool center_fallback = false) {
  siamese::FacePipelineOptions options;
  options.center_fallback = center_fallback;
  return siamese::FacePipeline::from_models(env_path("SIAMESE_MODELS_DIR"), options);
}

}  // namespace

TEST_CASE("Converted landmark and detector nets reproduce face-api.js outputs", "[models][faceapi]") {
  std::ifstream in(std::string(SIAMESE_SOURCE_DIR) + "/tests/data/faceapi_golden.json");
  const auto golden = nlohmann::json::parse(in);
  const auto dir = env_path("SIAMESE_MODELS_DIR");
  for (const auto& [file, key] : {std::pair{"faceapi_landmarks68.pt", "landmarks"},
                                  std::pair{"faceapi_tiny_detector.pt", "tiny_detector"}}) {
    auto loaded = siamese::detail::load_module((dir / file).string(), siamese::Device::cpu());
    REQUIRE(loaded.metadata);
    const int side = golden.at(key).at("side").get<int>();
    const auto input = normalised(golden_pixels(0, side), loaded.metadata->input);
    torch::NoGradGuard no_grad;
    auto output = siamese::detail::run_module(loaded.module, input, file);
    if (output.dim() == 4) output = output.permute({0, 2, 3, 1});  // NCHW -> TensorFlow's NHWC
    const auto expected = torch::tensor(golden.at(key).at("output").get<std::vector<float>>());
    const double diff = (output.flatten() - expected).abs().max().item<double>();
    const double largest = expected.abs().max().item<double>();
    std::cout << file << " vs face-api.js: max abs diff " << diff << " (largest value " << largest << ")\n";
    CHECK(diff < 1e-3 * std::max(1.0, largest / 10.0));
  }
}

TEST_CASE("The tiny face detector finds the faces in raw photos", "[models][detect]") {
  siamese::TinyFaceDetector tiny(env_path("SIAMESE_MODELS_DIR") / "faceapi_tiny_detector.pt");
  siamese::HaarFaceDetector haar;
  for (const char* name : {"obama.jpg", "obama2.jpg", "biden.jpg", "biden2.jpg"}) {
    const auto photo = siamese::read_image(example_photo(name));
    const auto found = siamese::select_faces(tiny.detect(photo), siamese::FacePolicy::largest);
    const auto reference = siamese::select_faces(haar.detect(photo), siamese::FacePolicy::largest);
    REQUIRE(found.size() == 1);
    REQUIRE(reference.size() == 1);
    const float iou = siamese::detail::intersection_over_union(found[0].box, reference[0].box);
    std::cout << name << ": tiny " << found[0].box << " score " << found[0].score << ", IoU with Haar " << iou << "\n";
    CHECK(found[0].score > 0.5F);
    CHECK(iou > 0.4F);
  }
  const auto blank = cv::Mat(300, 300, CV_8UC3, cv::Scalar(128, 128, 128));
  CHECK(tiny.detect(blank).empty());
  const auto two = shared_dir() / "samples" / "two_people.jpg";
  if (std::filesystem::exists(two)) {
    const auto faces = tiny.detect(siamese::read_image(two));
    CHECK(faces.size() == 2);
  }
}

TEST_CASE("Small photos run the detector at their own size, not enlarged", "[models][detect]") {
  const auto model = env_path("SIAMESE_MODELS_DIR") / "faceapi_tiny_detector.pt";
  siamese::TinyFaceDetector fitted(model);
  CHECK(fitted.input_sizes_for(250) == std::vector<int>{256, 192});  // an LFW photo
  CHECK(fitted.input_sizes_for(1200) == std::vector<int>{416, 192});
  CHECK(fitted.input_sizes_for(100) == std::vector<int>{128});       // both sizes fit to 128: one pass
  siamese::TinyFaceDetectorOptions options;
  options.fit_small_photos = false;
  siamese::TinyFaceDetector enlarging(model, options);
  CHECK(enlarging.input_sizes_for(250) == std::vector<int>{416, 192});
  // An LFW photo: the face is found either way, in nearly the same place.
  const auto file = shared_dir() / "lfw" / "Abdullah_Gul" / "Abdullah_Gul_0013.jpg";
  if (!std::filesystem::exists(file)) return;
  const auto photo = siamese::read_image(file);
  const auto small = siamese::select_faces(fitted.detect(photo), siamese::FacePolicy::central, photo.size());
  const auto large = siamese::select_faces(enlarging.detect(photo), siamese::FacePolicy::central, photo.size());
  REQUIRE(small.size() == 1);
  REQUIRE(large.size() == 1);
  CHECK(siamese::detail::intersection_over_union(small[0].box, large[0].box) > 0.7F);
}

TEST_CASE("Mirror-averaged landmarks stay on the face", "[models][align]") {
  siamese::LandmarkDetector68 landmarker(env_path("SIAMESE_MODELS_DIR") / "faceapi_landmarks68.pt");
  siamese::TinyFaceDetector detector(env_path("SIAMESE_MODELS_DIR") / "faceapi_tiny_detector.pt");
  const auto photo = siamese::read_image(example_photo("obama.jpg"));
  const auto faces = siamese::select_faces(detector.detect(photo), siamese::FacePolicy::largest);
  REQUIRE(faces.size() == 1);
  const auto once = landmarker.landmarks(photo, faces[0].box);
  const auto averaged = landmarker.mirror_averaged_landmarks(photo, faces[0].box);
  REQUIRE(averaged.size() == once.size());
  double mean_shift = 0;
  for (std::size_t i = 0; i < once.size(); ++i) mean_shift += cv::norm(once[i] - averaged[i]) / once.size();
  std::cout << "obama.jpg: mirror-averaged landmarks move " << mean_shift << " px on average (box "
            << faces[0].box.width << " px)\n";
  CHECK(mean_shift < 0.03 * faces[0].box.width);  // the same face, points matched left to right
  const auto [left, right] = siamese::eye_centers(averaged);
  CHECK(left.x < right.x);
}

TEST_CASE("Alignment puts the eyes where the template says", "[models][align]") {
  auto pipeline = standard_pipeline();
  REQUIRE(pipeline.uses_landmarks());
  siamese::LandmarkDetector68 landmarker(env_path("SIAMESE_MODELS_DIR") / "faceapi_landmarks68.pt");
  const auto& tmpl = pipeline.alignment_template();
  // Template eyes: mean of points 36-41 and 42-47, which are template entries 19-24 and 25-30.
  cv::Point2f left(0, 0), right(0, 0);
  for (int i = 0; i < 6; ++i) {
    left += tmpl.points[19 + i];
    right += tmpl.points[25 + i];
  }
  left /= 6.0F;
  right /= 6.0F;
  for (const char* name : {"obama.jpg", "biden2.jpg"}) {
    const auto face = pipeline.align(siamese::read_image(example_photo(name)), name);
    REQUIRE(face.chip.size() == cv::Size(150, 150));
    // Landmarks found again on the chip itself, independently of the transform.
    const auto again = landmarker.landmarks(face.chip, cv::Rect2f(0, 0, 150, 150));
    const auto [chip_left, chip_right] = siamese::eye_centers(again);
    const double error = std::max(cv::norm(chip_left - left), cv::norm(chip_right - right));
    std::cout << name << ": eyes at " << chip_left << " " << chip_right << ", template " << left
              << " " << right << ", worst error " << error << " px\n";
    CHECK(error < 4.0);
  }
}

TEST_CASE("Grayscale and rotated copies of a photo still verify as the same person", "[models][align]") {
  auto pipeline = standard_pipeline();
  auto net = siamese::load_face_verifier(face_model(), fixtures::cpu_options(true));
  const auto photo = siamese::read_image(example_photo("obama.jpg"));
  cv::Mat gray, gray_rgb, rotated;
  cv::cvtColor(photo, gray, cv::COLOR_RGB2GRAY);
  cv::cvtColor(gray, gray_rgb, cv::COLOR_GRAY2RGB);
  const auto centre = cv::Point2f(photo.cols / 2.0F, photo.rows / 2.0F);
  cv::warpAffine(photo, rotated, cv::getRotationMatrix2D(centre, 20.0, 1.0), photo.size(),
                 cv::INTER_LINEAR, cv::BORDER_REPLICATE);
  auto tensor = [&](const cv::Mat& image) {
    return siamese::to_input_tensor(pipeline.align(image, "copy").chip, net.backbone().input_spec());
  };
  const auto original = tensor(photo);
  for (const auto& [what, copy] : {std::pair{"grayscale", gray_rgb}, std::pair{"rotated 20 degrees", rotated}}) {
    const auto result = net.verify(original, tensor(copy));
    std::cout << "obama.jpg vs its " << what << " copy: distance " << result.distance << "\n";
    CHECK(result.same);
  }
  const auto other = net.verify(original, tensor(siamese::read_image(example_photo("biden.jpg"))));
  CHECK_FALSE(other.same);
}

TEST_CASE("Faces turned any way are found, turned upright and verified; upright photos are not searched", "[models][align][rotation]") {
  auto pipeline = standard_pipeline();
  siamese::FacePipelineOptions as_they_are_options;
  as_they_are_options.rotation_search = siamese::RotationSearch::upright_only;
  auto as_they_are = siamese::FacePipeline::from_models(env_path("SIAMESE_MODELS_DIR"), as_they_are_options);
  auto net = siamese::load_face_verifier(face_model(), fixtures::cpu_options(true));
  const auto photo = siamese::read_image(example_photo("obama.jpg"));
  const auto upright = pipeline.align(photo, "obama.jpg");
  CHECK(upright.turned_degrees == 0);
  CHECK(std::abs(upright.roll_degrees) < 15.0);
  CHECK(upright.landmark_disagreement < 0.1);
  const auto original = siamese::to_input_tensor(upright.chip, net.backbone().input_spec());
  for (const int degrees : {45, 90, 180, 270}) {
    const auto turned = siamese::turned_image(photo, degrees);
    const auto face = pipeline.align(turned.image, "turned");
    const auto result = net.verify(original, siamese::to_input_tensor(face.chip, net.backbone().input_spec()));
    // Turning the photo counter-clockwise turns the face the same way: its roll reads -degrees.
    const double roll_error = std::remainder(face.roll_degrees + degrees, 360.0);
    std::cout << "obama.jpg turned " << degrees << " degrees: found at turn " << face.turned_degrees << ", roll "
              << face.roll_degrees << ", distance " << result.distance << "\n";
    CAPTURE(degrees, face.turned_degrees, face.roll_degrees, result.distance);
    CHECK(result.same);
    CHECK(std::abs(roll_error) < 15.0);
    CHECK(face.landmark_disagreement <= pipeline.options().upright_disagreement);
    // The box and landmarks are in the turned photo's own pixels.
    CHECK(cv::Rect2f(0, 0, static_cast<float>(turned.image.cols), static_cast<float>(turned.image.rows)).contains(face.landmarks[30]));
  }
  // Without the search, biden2.jpg upside down is found and aligned as if upright: a silent
  // wrong answer. The search turns it round.
  const auto biden = siamese::read_image(example_photo("biden2.jpg"));
  const auto biden_upright = siamese::to_input_tensor(pipeline.align(biden, "biden2.jpg").chip, net.backbone().input_spec());
  const auto upside_down = siamese::turned_image(biden, 180).image;
  const auto wrong = as_they_are.align(upside_down, "upside down");
  CHECK_FALSE(net.verify(biden_upright, siamese::to_input_tensor(wrong.chip, net.backbone().input_spec())).same);
  const auto right = pipeline.align(upside_down, "upside down");
  CHECK(right.turned_degrees == 180);
  CHECK(net.verify(biden_upright, siamese::to_input_tensor(right.chip, net.backbone().input_spec())).same);
  // Every face of a photo, turned: Faces' path (align_all).
  siamese::FacePipelineOptions all_options;
  all_options.policy = siamese::FacePolicy::all;
  auto all = siamese::FacePipeline::from_models(env_path("SIAMESE_MODELS_DIR"), all_options);
  const auto faces = all.align_all(siamese::turned_image(siamese::read_image(example_photo("two_people.jpg")), 90).image, "group");
  CHECK(faces.size() == 2);
  for (const auto& face : faces) CHECK(face.turned_degrees != 0);
}

TEST_CASE("Same-person LFW pairs come out closer than different-person pairs", "[models][lfw]") {
  const auto lfw = shared_dir() / "lfw";
  if (!std::filesystem::exists(lfw / "pairsDevTest.txt")) {
    WARN("skipped: " << lfw << " is absent (see ../shared/README.md)");
    return;
  }
  siamese::TorchScriptBackbone backbone(face_model(), fixtures::cpu_options(true));
  // LFW images are face crops: where the detector finds nothing, the centre is the face.
  siamese::EmbedderOptions options;
  options.batch_size = 16;
  siamese::ImageEmbedder embedder(backbone, standard_pipeline(/*center_fallback=*/true), options);
  auto file = [&](const std::string& name, int number) {
    char suffix[16];
    std::snprintf(suffix, sizeof suffix, "_%04d.jpg", number);
    return lfw / name / (name + suffix);
  };
  std::ifstream in(lfw / "pairsDevTest.txt");
  std::string line;
  std::getline(in, line);
  // 500 same-person lines, then 500 different-person lines: every 12th gives 42 of each.
  std::vector<std::filesystem::path> side_a, side_b;
  std::vector<bool> same;
  for (int i = 0; std::getline(in, line); ++i) {
    if (i % 12 != 0) continue;
    std::istringstream fields(line);
    std::vector<std::string> f;
    for (std::string field; fields >> field;) f.push_back(field);
    const bool is_same = f.size() == 3;
    side_a.push_back(file(f[0], std::stoi(f[1])));
    side_b.push_back(is_same ? file(f[0], std::stoi(f[2])) : file(f[2], std::stoi(f[3])));
    same.push_back(is_same);
  }
  auto all = side_a;
  all.insert(all.end(), side_b.begin(), side_b.end());
  const auto embeddings = embedder.embed_files(all);
  const auto n = static_cast<std::int64_t>(side_a.size());
  const auto distances = siamese::EuclideanDistance{}(embeddings.narrow(0, 0, n), embeddings.narrow(0, n, n));
  double same_sum = 0, different_sum = 0;
  std::size_t correct = 0, same_count = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double d = distances[i][0].item<double>();
    (same[i] ? same_sum : different_sum) += d;
    same_count += same[i];
    correct += (d < 0.6) == same[i];
  }
  const auto& stats = embedder.stats();
  std::cout << "LFW pairsDevTest subset: " << same_count << " same (mean distance "
            << same_sum / same_count << "), " << n - same_count << " different (mean "
            << different_sum / (n - same_count) << "), accuracy at 0.6: " << double(correct) / n
            << "; " << stats.requested << " files, " << stats.embedded << " embedded in "
            << stats.backbone_calls << " batches, " << stats.cache_hits << " cache hits\n";
  CHECK(same_sum / same_count + 0.3 < different_sum / (n - same_count));
  CHECK(double(correct) / n > 0.95);
  CHECK(stats.requested == all.size());
  CHECK(stats.embedded + stats.cache_hits == all.size());
  CHECK(stats.backbone_calls == (stats.embedded + 15) / 16);
}

namespace {

/// Verifies the sample photos with `net`, on chips of its backbone's input size: each person's
/// two photos the same, Obama and Biden different.
void check_sample_photos(siamese::FaceVerifier& net) {
  siamese::FacePipelineOptions options;
  options.chip_size = net.backbone().input_spec().height;
  auto pipeline = siamese::FacePipeline::from_models(env_path("SIAMESE_MODELS_DIR"), options);
  auto face = [&](const char* name) {
    const auto path = example_photo(name).string();
    return siamese::to_input_tensor(pipeline.align(siamese::read_image(path), path).chip,
                                    net.backbone().input_spec());
  };
  const auto obama = net.verify(face("obama.jpg"), face("obama2.jpg"));
  const auto biden = net.verify(face("biden.jpg"), face("biden2.jpg"));
  const auto mixed = net.verify(face("obama.jpg"), face("biden.jpg"));
  std::cout << net.backbone().metadata().name << " on the samples: obama/obama2 " << obama.distance
            << ", biden/biden2 " << biden.distance << ", obama/biden " << mixed.distance << "\n";
  CHECK(obama.same);
  CHECK(biden.same);
  CHECK_FALSE(mixed.same);
  CHECK(obama.distance < mixed.distance);
}

}  // namespace

TEST_CASE("Raw sample photos: same person closer than different people", "[models][samples]") {
  auto net = siamese::load_face_verifier(face_model(), fixtures::cpu_options(true));
  check_sample_photos(net);
}

TEST_CASE("A trained InceptionV3 face verifier verifies the sample photos", "[models][inception][trained]") {
  // tools/train-inception-face.sh makes it (hours on 2 cores); CI has none, so this is a
  // check for the machines where it was trained.
  const char* trained = std::getenv("SIAMESE_INCEPTION_FACE");
  if (trained == nullptr || !std::filesystem::exists(trained)) {
    WARN("no trained InceptionV3 face model at SIAMESE_INCEPTION_FACE (" << (trained ? trained : "unset")
         << "): run tools/train-inception-face.sh to make one");
    return;
  }
  auto net = siamese::load_face_verifier(trained, fixtures::cpu_options(true));
  CHECK(net.backbone().metadata().pretrained);
  CHECK_THAT(net.backbone().metadata().weights, Catch::Contains("nsfwjs") && Catch::Contains("distilled from"));
  check_sample_photos(net);
}

TEST_CASE("Coarse to fine detection keeps the first input size that finds a face", "[models][detect]") {
  const auto model = env_path("SIAMESE_MODELS_DIR") / "faceapi_tiny_detector.pt";
  siamese::TinyFaceDetectorOptions options;
  options.coarse_to_fine = true;
  options.photos_per_call = 3;
  siamese::TinyFaceDetector coarse(model, options);
  CHECK(coarse.input_sizes_for(250) == std::vector<int>{192, 256});  // smallest first
  CHECK(coarse.input_sizes_for(1200) == std::vector<int>{192, 416});
  std::vector<cv::Mat> photos;
  for (const char* name : {"obama.jpg", "biden.jpg", "obama2.jpg", "biden2.jpg"}) {
    photos.push_back(siamese::read_image(example_photo(name)));
  }
  photos.emplace_back(300, 300, CV_8UC3, cv::Scalar(128, 128, 128));  // no face: every size runs
  const auto found = coarse.detect_batch(photos);
  REQUIRE(found.size() == photos.size());
  for (std::size_t i = 0; i < photos.size(); ++i) {
    std::vector<siamese::FaceDetection> expected;
    for (int size : coarse.input_sizes_for(std::max(photos[i].cols, photos[i].rows))) {
      siamese::TinyFaceDetectorOptions one_size;
      one_size.input_sizes = {size};
      expected = siamese::TinyFaceDetector(model, one_size).detect(photos[i]);
      if (!expected.empty()) break;
    }
    REQUIRE(found[i].size() == expected.size());
    for (std::size_t f = 0; f < expected.size(); ++f) {
      CHECK(std::abs(found[i][f].score - expected[f].score) < 1e-4F);
      CHECK(cv::norm(found[i][f].box.tl() - expected[f].box.tl()) < 0.01);
      CHECK(cv::norm(found[i][f].box.br() - expected[f].box.br()) < 0.01);
    }
  }
  CHECK(found.back().empty());
  CHECK_FALSE(found.front().empty());

  // FacePipeline::from_models runs its detector coarse to fine unless told otherwise.
  siamese::TinyFaceDetector merged(model);
  for (bool coarse_pipeline : {true, false}) {
    siamese::FacePipelineOptions pipeline_options;
    pipeline_options.coarse_to_fine_detection = coarse_pipeline;
    auto pipeline = siamese::FacePipeline::from_models(model.parent_path(), pipeline_options);
    const auto chosen = pipeline.find_faces({photos.front()}, {"obama.jpg"}).front().detection;
    const auto expected = siamese::select_faces(coarse_pipeline ? found.front() : merged.detect(photos.front()),
                                                siamese::FacePolicy::largest)
                              .front();
    CHECK(cv::norm(chosen.box.tl() - expected.box.tl()) < 0.01);
    CHECK(cv::norm(chosen.box.br() - expected.box.br()) < 0.01);
  }
}

TEST_CASE("Batched detection, landmarks and alignment give what one photo at a time gives", "[models][detect][align]") {
  const auto models = env_path("SIAMESE_MODELS_DIR");
  std::vector<cv::Mat> photos;
  std::vector<std::string> names;
  for (const char* name : {"obama.jpg", "biden.jpg", "obama2.jpg", "biden2.jpg"}) {
    photos.push_back(siamese::read_image(example_photo(name)));
    names.emplace_back(name);
  }
  for (const char* name : {"Abdullah_Gul/Abdullah_Gul_0013.jpg", "Aaron_Peirsol/Aaron_Peirsol_0001.jpg"}) {
    const auto file = shared_dir() / "lfw" / name;
    if (!std::filesystem::exists(file)) continue;
    photos.push_back(siamese::read_image(file));
    names.emplace_back(name);
  }
  // Several photos per call, of different sizes: batching changes no result beyond rounding.
  siamese::TinyFaceDetectorOptions batching;
  batching.photos_per_call = 3;
  siamese::TinyFaceDetector batched(models / "faceapi_tiny_detector.pt", batching);
  siamese::TinyFaceDetector single(models / "faceapi_tiny_detector.pt");
  const auto found = batched.detect_batch(photos);
  REQUIRE(found.size() == photos.size());
  std::vector<cv::Rect2f> boxes;
  for (std::size_t i = 0; i < photos.size(); ++i) {
    const auto alone = single.detect(photos[i]);
    REQUIRE(found[i].size() == alone.size());
    REQUIRE_FALSE(alone.empty());
    for (std::size_t f = 0; f < alone.size(); ++f) {
      CHECK(std::abs(found[i][f].score - alone[f].score) < 1e-4F);
      CHECK(cv::norm(found[i][f].box.tl() - alone[f].box.tl()) < 0.01);
      CHECK(cv::norm(found[i][f].box.br() - alone[f].box.br()) < 0.01);
    }
    boxes.push_back(alone.front().box);
  }

  siamese::LandmarkDetector68 landmarker(models / "faceapi_landmarks68.pt");
  const auto points = landmarker.landmarks_batch(photos, boxes);
  const auto mirrored = landmarker.mirror_averaged_landmarks_batch(photos, boxes);
  double worst = 0;
  for (std::size_t i = 0; i < photos.size(); ++i) {
    const auto alone = landmarker.landmarks(photos[i], boxes[i]);
    const auto mirrored_alone = landmarker.mirror_averaged_landmarks(photos[i], boxes[i]);
    for (int p = 0; p < siamese::LandmarkDetector68::point_count; ++p) {
      worst = std::max({worst, cv::norm(points[i][p] - alone[p]), cv::norm(mirrored[i][p] - mirrored_alone[p])});
    }
  }
  std::cout << photos.size() << " photos: batched landmarks within " << worst << " px of one at a time\n";
  CHECK(worst < 0.01);
  CHECK_THROWS_AS(landmarker.landmarks_batch(photos, {}), siamese::ShapeError);

  siamese::FacePipelineOptions options;
  options.mirror_landmarks = true;
  auto pipeline = siamese::FacePipeline::from_models(models, options);
  const auto faces = pipeline.align_batch(photos, names);
  REQUIRE(faces.size() == photos.size());
  for (std::size_t i = 0; i < photos.size(); ++i) {
    const auto alone = pipeline.align(photos[i], names[i]);
    CHECK(cv::norm(faces[i].chip, alone.chip, cv::NORM_INF) <= 1.0);  // a rounding step at most
  }
}

TEST_CASE("nsfwjs's pretrained InceptionV3, converted from Keras, reproduces TensorFlow.js", "[models][inception][golden]") {
  // tests/data/inception_nsfwjs_golden.json: tools/inception_golden.mjs, TF.js itself on the
  // same layers files that tools/setup-models.sh converts.
  std::ifstream in(std::string(SIAMESE_SOURCE_DIR) + "/tests/data/inception_nsfwjs_golden.json");
  REQUIRE(in.good());
  const auto golden = nlohmann::json::parse(in);
  const auto models = env_path("SIAMESE_MODELS_DIR");
  auto classifier = torch::jit::load((models / "inception_v3_classifier.pt").string());
  classifier.eval();
  for (bool optimize : {false, true}) {
    siamese::TorchScriptBackbone backbone(models / "inception_v3.pt", fixtures::cpu_options(optimize));
    CHECK(backbone.metadata().pretrained);
    CHECK(backbone.embedding_size() == 2048);
    for (const auto& item : golden.at("cases")) {
      const int side = item.at("side").get<int>();
      REQUIRE(backbone.input_spec().height == side);
      const auto input = normalised(golden_pixels(item.at("image").get<int>(), side), backbone.input_spec());
      const auto features = torch::tensor(item.at("features").get<std::vector<float>>());
      const auto probabilities = torch::tensor(item.at("probabilities").get<std::vector<float>>());
      const double feature_diff = (backbone.embed(input)[0] - features).abs().max().item<double>();
      torch::InferenceMode guard;
      const double probability_diff =
          (classifier.forward({input}).toTensor()[0] - probabilities).abs().max().item<double>();
      std::cout << "nsfwjs InceptionV3 vs TF.js, image " << item.at("image") << " (optimize=" << optimize
                << "): features max abs diff " << feature_diff << " (largest " << features.abs().max().item<double>()
                << "), class probabilities " << probability_diff << "\n";
      CHECK(feature_diff <= 1e-4 * features.abs().max().item<double>());
      CHECK(probability_diff <= 1e-4 * probabilities.abs().max().item<double>());
    }
  }
}

TEST_CASE("Faces verifies and identifies photo files in one call each, every face of a group photo", "[models][faces]") {
  siamese::Faces faces(env_path("SIAMESE_MODELS_DIR"), {"faceapi_recognition.pt", siamese::Device::cpu()});
  REQUIRE(faces.decision().has_value());
  CHECK(faces.has_open_set_calibration());
  CHECK(faces.verify(example_photo("obama.jpg"), example_photo("obama2.jpg")).result.same);
  CHECK_FALSE(faces.verify(example_photo("obama.jpg"), example_photo("biden2.jpg")).result.same);
  // Biden is the second face of the group photo: the closest pair decides.
  const auto group = faces.verify(example_photo("two_people.jpg"), example_photo("biden.jpg"));
  CHECK(group.a.faces.size() == 2);
  CHECK(group.b.faces.size() == 1);
  CHECK(group.distances.sizes() == torch::IntArrayRef({2, 1}));
  CHECK(group.result.same);
  CHECK(group.result.distance == Catch::Detail::Approx(group.distances.min().item<double>()).margin(1e-3));

  siamese::Gallery gallery(faces.verifier().backbone().metadata().name, faces.verifier().backbone().embedding_size());
  gallery.enroll("obama", faces.find(example_photo("obama.jpg")).embeddings);
  gallery.enroll("biden", faces.find(example_photo("biden.jpg")).embeddings);
  const auto found = faces.identify(example_photo("two_people.jpg"), gallery);
  REQUIRE(found.size() == 2);
  std::vector<std::string> names;
  for (const auto& f : found) {
    REQUIRE(f.identification.best().has_value());
    names.push_back(*f.identification.best());
    CHECK(f.identification.decision.rule == siamese::OpenSetRule::distance_ratio);
    CHECK(f.identification.decision.gallery_people == 2);
    CHECK(f.identification.decision.target_fpir == 0.01);
  }
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"biden", "obama"});
  // The largest face alone, when asked.
  siamese::Faces largest(env_path("SIAMESE_MODELS_DIR"), {"faceapi_recognition.pt", siamese::Device::cpu(), true});
  CHECK(largest.find(example_photo("two_people.jpg")).faces.size() == 1);
  CHECK_THROWS_AS(faces.find(example_photo("no-such.jpg")), siamese::FileError);
}

TEST_CASE("Two people crossing in a video: one track each, no identity switch, named right, the same on a rerun",
          "[models][video]") {
  const auto models = env_path("SIAMESE_MODELS_DIR");
  auto finder = siamese::FacePipeline::from_models(models, {}, siamese::Device::cpu());
  const auto walkers = video_scene::crossing(video_scene::head_from(finder, example_photo("obama.jpg"), 160), "obama",
                                             video_scene::head_from(finder, example_photo("biden.jpg"), 160), "biden");
  fixtures::TempDir dir;
  video_scene::write_avi(walkers, 100, dir / "crossing.avi");
  siamese::TorchScriptBackbone backbone(face_model(), fixtures::cpu_options());
  siamese::Gallery gallery(backbone.metadata().name, backbone.metadata().embedding_size);
  siamese::ImageEmbedder<> embedder(backbone, standard_pipeline());
  gallery.enroll("obama", embedder.embed_files({example_photo("obama2.jpg")}));
  gallery.enroll("biden", embedder.embed_files({example_photo("biden2.jpg")}));
  const auto decision = siamese::OpenSetDecision::distance_at_most(0.6);

  auto follow = [&](int every) {
    siamese::FacePipelineOptions options;
    options.policy = siamese::FacePolicy::all;
    options.rotation_search = siamese::RotationSearch::upright_only;
    siamese::VideoTrackerOptions tracking;
    tracking.detect_every = every;
    siamese::VideoFaceTracker<> tracker(backbone, siamese::FacePipeline::from_models(models, options, siamese::Device::cpu()), tracking);
    video_scene::WalkerOfTrack followed(walkers);
    std::vector<std::string> summary;  // "id first-last person name" per ended track
    std::map<int, std::string> names;
    auto source = siamese::VideoSource::open((dir / "crossing.avi").string());
    auto ended = [&](const std::vector<siamese::Track>& tracks) {
      for (const auto& t : tracks) {
        summary.push_back(std::to_string(t.id) + " " + std::to_string(t.first_frame) + "-" + std::to_string(t.last_frame) + " " +
                          followed.person(t.id) + " " + names[t.id]);
        CHECK(t.embeddings >= 1);
        CHECK(t.embeddings < t.detections / 4);  // embedded at the start and for better views, not every frame
      }
    };
    cv::Mat rgb;
    while (source.read(rgb)) {
      const auto frame = tracker.process(rgb);
      CHECK(frame.detection_ran == (frame.frame % every == 0));
      for (const int id : frame.embedded) {
        names[id] = gallery.identify(tracker.track(id).embedding.unsqueeze(0), 1, decision).front().best().value_or("unknown");
      }
      followed.observe(frame);
      ended(frame.ended);
    }
    ended(tracker.finish());
    CHECK(followed.switches() == 0);
    return summary;
  };
  for (const int every : {1, 3}) {
    const auto summary = follow(every);
    std::string tracks;
    for (const auto& line : summary) tracks += line + "; ";
    INFO("every " << every << ": " << tracks);
    REQUIRE(summary.size() == 2);
    CHECK_THAT(summary[0], Catch::EndsWith(" obama obama"));
    CHECK_THAT(summary[1], Catch::EndsWith(" biden biden"));
    CHECK(follow(every) == summary);  // deterministic
  }
}

TEST_CASE("An embedder with a quality bar refuses a small face, naming the photo and the reason", "[models][quality]") {
  fixtures::TempDir dir;
  const auto photo = siamese::read_image(example_photo("obama.jpg"));
  cv::Mat small, bgr;
  cv::resize(photo, small, cv::Size(), 0.11, 0.11, cv::INTER_AREA);  // the face's box ~47 px
  cv::cvtColor(small, bgr, cv::COLOR_RGB2BGR);
  const auto file = dir / "small.png";
  cv::imwrite(file.string(), bgr);
  siamese::TorchScriptBackbone backbone(face_model(), fixtures::cpu_options());
  siamese::EmbedderOptions options;
  options.quality_bar = siamese::QualityBar{};
  options.quality_bar->min_face_pixels = 60;
  siamese::ImageEmbedder<> strict(backbone, standard_pipeline(), options);
  CHECK(strict.embed_files({example_photo("obama.jpg")}).size(0) == 1);  // a portrait passes
  CHECK_THROWS_AS(strict.embed_files({file}), siamese::LowQualityFace);
  CHECK_THROWS_WITH(strict.embed_files({file}), Catch::Contains("small.png") && Catch::Contains("face too small: ") &&
                                                    Catch::Contains("px (at least 60)"));
  siamese::ImageEmbedder<> lenient(backbone, standard_pipeline());
  CHECK(lenient.embed_files({file}).size(0) == 1);
  CHECK_THROWS_WITH(siamese::ImageEmbedder<>(backbone, std::nullopt, options), Catch::Contains("quality_bar needs a face pipeline"));
}
