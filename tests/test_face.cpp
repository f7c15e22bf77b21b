#include "fixtures.hpp"

#include <catch2/catch.hpp>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <atomic>
#include <chrono>
#include <random>
#include <mutex>
#include <thread>

using Approx = Catch::Detail::Approx;

namespace {

std::filesystem::path example_photo(const char* name) {
  return std::filesystem::path(SIAMESE_SOURCE_DIR) / "examples" / "data" / name;
}

std::vector<std::uint8_t> encode(const cv::Mat& rgb, const std::string& ext) {
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  std::vector<std::uint8_t> bytes;
  REQUIRE(cv::imencode(ext, bgr, bytes));
  return bytes;
}

// A JPEG whose EXIF says "rotate 90 degrees clockwise to display" (orientation 6).
std::vector<std::uint8_t> with_exif_orientation(const std::vector<std::uint8_t>& jpeg, std::uint8_t orientation) {
  const std::vector<std::uint8_t> tiff = {'I', 'I', 42, 0, 8, 0, 0, 0,           // header, IFD at 8
                                          1, 0,                                  // one entry
                                          0x12, 0x01, 3, 0, 1, 0, 0, 0,          // Orientation, SHORT, 1
                                          orientation, 0, 0, 0,                  // value
                                          0, 0, 0, 0};                           // no next IFD
  std::vector<std::uint8_t> app1 = {0xFF, 0xE1, 0, 0, 'E', 'x', 'i', 'f', 0, 0};
  app1.insert(app1.end(), tiff.begin(), tiff.end());
  const auto length = app1.size() - 2;
  app1[2] = static_cast<std::uint8_t>(length >> 8);
  app1[3] = static_cast<std::uint8_t>(length & 0xFF);
  std::vector<std::uint8_t> out;
  out.reserve(jpeg.size() + app1.size());
  out.push_back(jpeg[0]);  // SOI marker, then APP1 right after it
  out.push_back(jpeg[1]);
  for (auto byte : app1) out.push_back(byte);
  for (std::size_t i = 2; i < jpeg.size(); ++i) out.push_back(jpeg[i]);
  return out;
}

}  // namespace

TEST_CASE("EXIF orientation is applied", "[image]") {
  cv::Mat wide(20, 40, CV_8UC3, cv::Scalar(0, 0, 0));
  wide(cv::Rect(0, 0, 10, 20)).setTo(cv::Scalar(255, 255, 255));  // white left edge
  const auto plain = siamese::decode_image(encode(wide, ".jpg"), "plain.jpg");
  CHECK(plain.size() == cv::Size(40, 20));
  const auto rotated = siamese::decode_image(with_exif_orientation(encode(wide, ".jpg"), 6), "exif.jpg");
  REQUIRE(rotated.size() == cv::Size(20, 40));
  // Rotated 90 degrees clockwise, the white left edge is now the top.
  CHECK(rotated.at<cv::Vec3b>(2, 10)[0] > 200);
  CHECK(rotated.at<cv::Vec3b>(37, 10)[0] < 50);
}

TEST_CASE("A header claiming a huge image is refused before decoding", "[image][errors]") {
  auto png = encode(cv::Mat(4, 4, CV_8UC3, cv::Scalar::all(9)), ".png");
  // IHDR width and height are big-endian at bytes 16..23: claim 100000 x 100000.
  for (int at : {16, 20}) {
    png[at] = 0;
    png[at + 1] = 0x01;
    png[at + 2] = 0x86;
    png[at + 3] = 0xA0;
  }
  CHECK_THROWS_WITH(siamese::decode_image(png, "bomb.png"),
                    Catch::Contains("bomb.png") && Catch::Contains("100000x100000"));
}

TEST_CASE("Similarity transform recovers a known rotation, scale and shift", "[align]") {
  const double angle = 0.3, scale = 1.7, tx = 12.5, ty = -4.0;
  std::vector<cv::Point2f> from = {{0, 0}, {10, 0}, {3, 7}, {-5, 2}, {8, -6}};
  std::vector<cv::Point2f> to;
  for (const auto& p : from) {
    to.emplace_back(static_cast<float>(scale * (std::cos(angle) * p.x - std::sin(angle) * p.y) + tx),
                    static_cast<float>(scale * (std::sin(angle) * p.x + std::cos(angle) * p.y) + ty));
  }
  const auto m = siamese::similarity_transform(from, to);
  CHECK(m(0, 0) == Approx(scale * std::cos(angle)).margin(1e-5));
  CHECK(m(1, 0) == Approx(scale * std::sin(angle)).margin(1e-5));
  CHECK(m(0, 2) == Approx(tx).margin(1e-4));
  CHECK(m(1, 2) == Approx(ty).margin(1e-4));
  const auto moved = siamese::transform_points(from, m);
  for (std::size_t i = 0; i < from.size(); ++i) CHECK(cv::norm(moved[i] - to[i]) < 1e-3);
  CHECK_THROWS_AS(siamese::similarity_transform({{1, 1}}, {{2, 2}}), siamese::ShapeError);
  CHECK_THROWS_AS(siamese::similarity_transform({{1, 1}, {1, 1}}, {{2, 2}, {3, 3}}), siamese::ShapeError);
}

TEST_CASE("A turned photo maps its pixels back to the photo's", "[align][rotation]") {
  cv::Mat photo(60, 100, CV_8UC3, cv::Scalar::all(0));
  photo(cv::Rect(19, 9, 3, 3)).setTo(cv::Scalar::all(255));  // a bright square centred on pixel (20, 10)
  for (const int degrees : {0, 45, 90, 135, 180, 225, 270, 315, -90, 450}) {
    const auto turned = siamese::turned_image(photo, degrees);
    CHECK(turned.degrees == ((degrees % 360) + 360) % 360);
    cv::Mat gray;
    cv::cvtColor(turned.image, gray, cv::COLOR_RGB2GRAY);
    // The square's centre of brightness (pixel centres at +0.5), mapped back, lands on its centre.
    const auto moments = cv::moments(gray);
    const cv::Point2f found(static_cast<float>(moments.m10 / moments.m00 + 0.5), static_cast<float>(moments.m01 / moments.m00 + 0.5));
    const auto back = siamese::detail::mapped(turned.to_source, found);
    CAPTURE(degrees, found, back);
    CHECK(std::abs(back.x - 20.5F) < 1.0F);
    CHECK(std::abs(back.y - 10.5F) < 1.0F);
  }
  CHECK_THROWS_AS(siamese::turned_image(photo, 30), siamese::Error);
}

TEST_CASE("Rotation search names round-trip, and an unknown one is refused by name", "[align][rotation][errors]") {
  for (const auto search : {siamese::RotationSearch::upright_only, siamese::RotationSearch::when_needed,
                            siamese::RotationSearch::every_angle}) {
    CHECK(siamese::parse_rotation_search(siamese::rotation_search_name(search)) == search);
  }
  CHECK_THROWS_AS(siamese::parse_rotation_search("sideways"), siamese::Error);
  CHECK_THROWS_WITH(siamese::parse_rotation_search("sideways"), Catch::Contains("'sideways'"));
}

TEST_CASE("Landmark geometry: roll from the eye line, and the mirror disagreement", "[align][rotation]") {
  std::vector<cv::Point2f> face(68, cv::Point2f(50, 50));
  for (int i = 36; i < 42; ++i) face[i] = {30, 40};  // the eye on the image's left
  for (int i = 42; i < 48; ++i) face[i] = {70, 40};
  CHECK(siamese::face_roll_degrees(face) == Approx(0.0).margin(1e-9));
  auto upside_down = face;
  for (auto& p : upside_down) p = cv::Point2f(100, 100) - p;
  CHECK(std::abs(siamese::face_roll_degrees(upside_down)) == Approx(180.0));
  siamese::LandmarkDetector68::MirroredLandmarks same{face, face};
  CHECK(siamese::mirror_disagreement(same) == Approx(0.0).margin(1e-12));
  auto shifted = same;
  for (auto& p : shifted.mirrored) p += cv::Point2f(4, 0);  // 4 px against 40 px between the eyes
  CHECK(siamese::mirror_disagreement(shifted) == Approx(0.1));
  shifted.mirrored.pop_back();
  CHECK_THROWS_AS(siamese::mirror_disagreement(shifted), siamese::ShapeError);
}

TEST_CASE("The dlib chip template is symmetric and scales with the chip", "[align]") {
  const auto t = siamese::dlib_template(150, 0.25);
  REQUIRE(t.points.size() == 51);
  CHECK(t.landmark_indices.front() == 17);
  CHECK(t.landmark_indices.back() == 67);
  // Nose bridge (landmark 27) near the vertical centre line (dlib's mean face sits 1 px left);
  // outer eye corners level and mirror images about it.
  CHECK(t.points[27 - 17].x == Approx(75.0).margin(1.5));
  CHECK(t.points[27 - 17].x - t.points[36 - 17].x == Approx(t.points[45 - 17].x - t.points[27 - 17].x).margin(0.5));
  CHECK(t.points[36 - 17].y == Approx(t.points[45 - 17].y).margin(0.5));
  const auto big = siamese::dlib_template(300, 0.25);
  CHECK(big.points[5].x == Approx(2 * t.points[5].x).margin(1e-3));
  CHECK_THROWS_AS(siamese::dlib_template(2), siamese::Error);
}

TEST_CASE("Crops: around a box, and the centre of aligned photos", "[align]") {
  cv::Mat image(100, 200, CV_8UC3, cv::Scalar(1, 2, 3));
  const auto crop = siamese::crop_face(image, cv::Rect2f(150, 40, 40, 50), {1.2, 0.0});
  CHECK(crop.size() == cv::Size(60, 60));  // reaches past the border: filled, still square
  CHECK_THROWS_AS(siamese::crop_face(image, cv::Rect2f(500, 500, 10, 10)), siamese::ImageError);
  CHECK(siamese::center_crop(image, 0.5).size() == cv::Size(50, 50));
  CHECK_THROWS_AS(siamese::center_crop(image, 0.0), siamese::ImageError);
}

TEST_CASE("Non-maximum suppression keeps the best of overlapping boxes", "[detect]") {
  std::vector<siamese::FaceDetection> faces = {{{0, 0, 10, 10}, 0.6F},
                                               {{1, 1, 10, 10}, 0.9F},
                                               {{50, 50, 10, 10}, 0.7F},
                                               {{0, 0, 10, 10}, 0.5F}};
  const auto kept = siamese::detail::non_max_suppression(faces, 0.4F);
  REQUIRE(kept.size() == 2);
  CHECK(kept[0].score == 0.9F);
  CHECK(kept[1].score == 0.7F);
  const auto largest = siamese::select_faces({{{0, 0, 5, 5}, 0.9F}, {{0, 0, 20, 20}, 0.6F}},
                                             siamese::FacePolicy::largest);
  REQUIRE(largest.size() == 1);
  CHECK(largest[0].box.width == 20);
}

TEST_CASE("Haar pipeline: a face in a photo, NoFaceFound in a blank image", "[detect][face]") {
  siamese::FacePipelineOptions options;
  options.chip_size = 96;
  siamese::FacePipeline pipeline(std::make_unique<siamese::HaarFaceDetector>(), nullptr, options);
  const auto photo = siamese::read_image(example_photo("obama.jpg"));
  const auto face = pipeline.align(photo, "obama.jpg");
  CHECK(face.chip.size() == cv::Size(96, 96));
  CHECK_FALSE(face.center_fallback);
  // The face of this portrait is in the upper middle of the photo.
  const auto centre = (face.detection.box.tl() + face.detection.box.br()) / 2;
  CHECK(centre.x > photo.cols * 0.3);
  CHECK(centre.x < photo.cols * 0.7);
  CHECK(centre.y < photo.rows * 0.5);

  const cv::Mat blank(200, 200, CV_8UC3, cv::Scalar::all(90));
  CHECK_THROWS_AS(pipeline.align(blank, "blank.png"), siamese::NoFaceFound);
  CHECK_THROWS_WITH(pipeline.align(blank, "blank.png"), Catch::Contains("blank.png"));
  options.center_fallback = true;
  siamese::FacePipeline lenient(std::make_unique<siamese::HaarFaceDetector>(), nullptr, options);
  const auto fallback = lenient.align(blank, "blank.png");
  CHECK(fallback.center_fallback);
  CHECK(fallback.chip.size() == cv::Size(96, 96));
  CHECK_THROWS_AS(siamese::HaarFaceDetector("/nonexistent/cascade.xml"), siamese::FileError);
  CHECK_THROWS_AS(siamese::FacePipeline(nullptr, nullptr), siamese::Error);
}

TEST_CASE("ImageEmbedder batches, and embeds each distinct image once", "[embed]") {
  fixtures::TempDir dir;
  siamese::TorchScriptBackbone backbone(fixtures::save_tiny_backbone(dir), fixtures::cpu_options());
  std::vector<std::filesystem::path> distinct;
  for (int i = 0; i < 7; ++i) {
    const auto file = dir / ("img" + std::to_string(i) + ".png");
    cv::Mat image(12, 12, CV_8UC3, cv::Scalar(i * 30, 255 - i * 30, 7 * i));
    REQUIRE(cv::imwrite(file.string(), image));
    distinct.push_back(file);
  }
  // The same content under another name counts as the same image.
  std::filesystem::copy_file(distinct[0], dir / "copy.png");
  std::vector<std::filesystem::path> files = distinct;
  files.push_back(distinct[3]);
  files.push_back(dir / "copy.png");

  siamese::EmbedderOptions options;
  options.batch_size = 3;
  siamese::ImageEmbedder embedder(backbone, std::nullopt, options);
  std::vector<std::size_t> reported;
  embedder.set_progress([&](const siamese::ProgressReport& r) {
    CHECK(r.total == 9);
    reported.push_back(r.done);
  });
  const auto embeddings = embedder.embed_files(files);
  CHECK(reported == std::vector<std::size_t>{3, 6, 9});  // after each batch; cache hits count too
  embedder.set_progress({});
  REQUIRE(embeddings.sizes() == torch::IntArrayRef({9, fixtures::embedding_size}));
  CHECK(embedder.stats().embedded == 7);
  CHECK(embedder.stats().cache_hits == 2);
  CHECK(embedder.stats().backbone_calls == 3);  // 3 + 3 + 1
  CHECK(torch::equal(embeddings[7], embeddings[3]));
  CHECK(torch::equal(embeddings[8], embeddings[0]));
  const auto direct = backbone.embed(
      siamese::to_input_tensor(siamese::read_image(distinct[5]), backbone.input_spec()));
  CHECK(torch::allclose(embeddings[5], direct[0], 1e-5, 1e-6));

  // A second request is answered from the cache.
  embedder.embed_files({distinct[1], distinct[2]});
  CHECK(embedder.stats().backbone_calls == 3);

  siamese::EmbedderOptions mirrored = options;
  mirrored.mirror = true;
  siamese::ImageEmbedder mirror_embedder(backbone, std::nullopt, mirrored);
  const auto m = mirror_embedder.embed_files({distinct[5]});
  const auto flipped = backbone.embed(
      siamese::to_input_tensor(siamese::read_image(distinct[5]), backbone.input_spec()).flip({3}));
  CHECK(torch::allclose(m[0], (direct[0] + flipped[0]) / 2, 1e-5, 1e-6));

  // Jittered copies: seeded by content, so batching does not change an image's embedding.
  siamese::EmbedderOptions jittered = mirrored;
  jittered.jitters = 3;
  siamese::ImageEmbedder alone(backbone, std::nullopt, jittered), batched(backbone, std::nullopt, jittered);
  const auto one = alone.embed_files({distinct[5]});
  const auto many = batched.embed_files({distinct[0], distinct[1], distinct[5]});
  CHECK(torch::allclose(one[0], many[2], 1e-5, 1e-6));
  CHECK(alone.stats().backbone_calls == 1);    // 1 image + mirror + 3 copies fit one call of 3 x 2
  CHECK(batched.stats().backbone_calls == 3);  // 3 + 3 mirrors + 9 copies: 15 rows, calls of 6
  jittered.jitters = -1;
  CHECK_THROWS_WITH(siamese::ImageEmbedder(backbone, std::nullopt, jittered), Catch::Contains("jitters must lie in 0..1000"));
}

TEST_CASE("An embedding cache on disk is served only to an embedder that makes embeddings the same way", "[embed][errors]") {
  fixtures::TempDir dir;
  siamese::TorchScriptBackbone backbone(fixtures::save_tiny_backbone(dir), fixtures::cpu_options());
  std::vector<std::filesystem::path> files;
  for (int i = 0; i < 3; ++i) {
    files.push_back(dir / ("img" + std::to_string(i) + ".png"));
    REQUIRE(cv::imwrite(files.back().string(), cv::Mat(12, 12, CV_8UC3, cv::Scalar(i * 50, 9, 200 - i * 40))));
  }
  siamese::EmbedderOptions mirrored;
  mirrored.mirror = true;
  siamese::ImageEmbedder maker(backbone, std::nullopt, mirrored);
  const auto made = maker.embed_files(files);
  const auto cache = dir / "cache.pt";
  maker.save_cache(cache, "tiny");

  siamese::ImageEmbedder same(backbone, std::nullopt, mirrored);
  CHECK(same.load_cache(dir / "missing.pt", "tiny") == 0);
  CHECK(same.load_cache(cache, "tiny") == 3);
  CHECK(torch::equal(same.embed_files(files), made));
  CHECK(same.stats().backbone_calls == 0);
  CHECK(same.stats().cache_hits == 3);

  CHECK_THROWS_WITH(siamese::ImageEmbedder(backbone, std::nullopt, mirrored).load_cache(cache, "other"),
                    Catch::Contains("model=tiny;") && Catch::Contains("model=other;"));
  siamese::ImageEmbedder plain(backbone, std::nullopt);  // no mirror averaging: other embeddings
  CHECK_THROWS_WITH(plain.load_cache(cache, "tiny"), Catch::Contains("mirror=1") && Catch::Contains("mirror=0"));
  siamese::EmbedderOptions jittered = mirrored;
  jittered.jitters = 2;
  CHECK_THROWS_WITH(siamese::ImageEmbedder(backbone, std::nullopt, jittered).load_cache(cache, "tiny"),
                    Catch::Contains("jitters=2"));
  CHECK(plain.embed_files({files[0]}).sizes() == torch::IntArrayRef({1, fixtures::embedding_size}));
  CHECK(plain.stats().cache_hits == 0);  // nothing was loaded by the refused call

  fixtures::write_file(dir / "junk.pt", "not a cache");
  CHECK_THROWS_AS(plain.load_cache(dir / "junk.pt", "tiny"), siamese::ModelError);

  // Archives of tensors laid out otherwise than save_cache() writes them: ModelError, never a
  // LibTorch error (a 0-dimensional third part once let c10::IndexError through).
  std::vector<torch::Tensor> good;
  torch::load(good, cache.string());
  REQUIRE(good.size() == 3);
  const std::vector<std::pair<const char*, std::vector<torch::Tensor>>> hostile = {
      {"0-d embeddings", {good[0], good[1], torch::tensor(1.5F)}},
      {"0-d embeddings, no keys", {good[0], torch::empty({0}, torch::kInt64), torch::tensor(1.5F)}},
      {"float keys", {good[0], good[1].to(torch::kFloat32), good[2]}},
      {"float tag", {good[0].to(torch::kFloat32), good[1], good[2]}},
      {"2-d keys", {good[0], good[1].view({-1, 2}), good[2]}},
      {"int embeddings", {good[0], good[1], good[2].to(torch::kInt64)}},
      {"3-d embeddings", {good[0], good[1], good[2].unsqueeze(0)}},
      {"one part", {good[0]}},
      {"nothing", {}},
      {"NaN embeddings", {good[0], good[1], torch::full_like(good[2], std::nanf(""))}},
  };
  for (const auto& [what, parts] : hostile) {
    INFO(what);
    const auto file = dir / "hostile.pt";
    torch::save(parts, file.string());
    CHECK_THROWS_AS(siamese::ImageEmbedder(backbone, std::nullopt, mirrored).load_cache(file, "tiny"), siamese::ModelError);
  }
}

TEST_CASE("Jittered chips are small, reproducible disturbances", "[align]") {
  cv::Mat chip(150, 150, CV_8UC3);
  cv::randu(chip, cv::Scalar::all(0), cv::Scalar::all(255));
  cv::GaussianBlur(chip, chip, cv::Size(9, 9), 3);
  std::mt19937 first(7), second(7);
  std::vector<cv::Mat> copies;
  for (int i = 0; i < 8; ++i) {
    const auto a = siamese::jitter_chip(chip, first), b = siamese::jitter_chip(chip, second);
    REQUIRE(a.size() == chip.size());
    REQUIRE(a.type() == chip.type());
    CHECK(cv::norm(a, b, cv::NORM_INF) == 0);  // same generator state, same copy
    copies.push_back(a);
  }
  CHECK(cv::norm(copies[0], copies[1], cv::NORM_L1) > 0);  // the copies differ from each other
  // At most 3 degrees, 2% and 3%: the centre of the chip stays within a few pixels.
  cv::Mat marked(150, 150, CV_8UC3, cv::Scalar::all(0));
  cv::circle(marked, {75, 75}, 4, cv::Scalar::all(255), cv::FILLED);
  std::mt19937 rng(11);
  for (int i = 0; i < 20; ++i) {
    cv::Mat gray;
    cv::cvtColor(siamese::jitter_chip(marked, rng), gray, cv::COLOR_RGB2GRAY);
    const auto m = cv::moments(gray);
    REQUIRE(m.m00 > 0);
    CHECK(std::abs(m.m10 / m.m00 - 74.5) < 5);
    CHECK(std::abs(m.m01 / m.m00 - 74.5) < 5);
  }
}

TEST_CASE("ImageEmbedder reports every missing file at once, before any work", "[embed][errors]") {
  fixtures::TempDir dir;
  siamese::TorchScriptBackbone backbone(fixtures::save_tiny_backbone(dir), fixtures::cpu_options());
  const auto present = dir / "present.png";
  REQUIRE(cv::imwrite(present.string(), cv::Mat(8, 8, CV_8UC3, cv::Scalar::all(1))));
  siamese::ImageEmbedder embedder(backbone, std::nullopt);
  CHECK_THROWS_WITH(embedder.embed_files({present, dir / "gone1.jpg", dir / "gone2.jpg"}),
                    Catch::Contains("2 image file(s) missing") && Catch::Contains("gone1.jpg") &&
                        Catch::Contains("gone2.jpg"));
  CHECK(embedder.stats().requested == 0);
  fixtures::write_file(dir / "junk.jpg", "not an image");
  CHECK_THROWS_WITH(embedder.embed_files({dir / "junk.jpg"}), Catch::Contains("junk.jpg"));
}

TEST_CASE("Helper networks need their metadata and refuse bad options", "[detect][errors]") {
  fixtures::TempDir dir;
  fixtures::tiny_embedder().save((dir / "bare.pt").string());
  CHECK_THROWS_WITH(siamese::TinyFaceDetector(dir / "bare.pt"),
                    Catch::Contains("bare.pt") && Catch::Contains("no siamese.json"));
  CHECK_THROWS_AS(siamese::LandmarkDetector68(dir / "bare.pt"), siamese::MetadataError);
  CHECK_THROWS_AS(siamese::TinyFaceDetector(dir / "missing.pt"), siamese::FileError);
  siamese::TinyFaceDetectorOptions options;
  options.input_sizes = {100};
  CHECK_THROWS_WITH(siamese::TinyFaceDetector(dir / "bare.pt", options), Catch::Contains("multiples of 32"));
}

TEST_CASE("A bounded queue holds at most its capacity and drains after closing", "[embed][queue]") {
  siamese::detail::BoundedQueue<int> queue(2);
  int one = 1, two = 2, three = 3, four = 4;
  REQUIRE(queue.try_push(one));
  REQUIRE(queue.try_push(two));
  CHECK_FALSE(queue.try_push(three));  // full: the item stays with the caller
  CHECK(three == 3);
  CHECK(queue.pop() == 1);
  CHECK(queue.try_push(three));
  CHECK(queue.pop() == 2);
  CHECK(queue.pop() == 3);
  std::atomic<bool> popped{false};
  std::thread consumer([&] {
    CHECK(queue.pop() == 4);  // waits for an item
    popped = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK_FALSE(popped);
  CHECK(queue.try_push(four));
  consumer.join();
  CHECK(popped);
  int five = 5, six = 6;
  REQUIRE(queue.try_push(five));
  queue.close();
  CHECK(queue.closed());
  CHECK_FALSE(queue.try_push(six));
  CHECK(queue.pop() == 5);
  CHECK_FALSE(queue.pop().has_value());
}

namespace {

// Images 12x12 of distinct colours, and one more file with the content of the first.
std::vector<std::filesystem::path> colour_files(const fixtures::TempDir& dir, int count) {
  std::vector<std::filesystem::path> files;
  for (int i = 0; i < count; ++i) {
    files.push_back(dir / ("colour" + std::to_string(i) + ".png"));
    REQUIRE(cv::imwrite(files.back().string(), cv::Mat(12, 12, CV_8UC3, cv::Scalar(i * 20, 255 - i * 20, 5 * i))));
  }
  std::filesystem::copy_file(files[0], dir / "again.png");
  files.push_back(dir / "again.png");
  return files;
}

// Two intra-op threads for a scope, so that the embedder runs its preparing thread.
struct TwoThreads {
  int before = torch::get_num_threads();
  TwoThreads() { torch::set_num_threads(2); }
  ~TwoThreads() { torch::set_num_threads(before); }
};

// Eleven files (ten colours and a copy) and the tiny backbone, embedded with two intra-op threads.
struct ElevenFilesOnTwoThreads {
  fixtures::TempDir dir;
  siamese::TorchScriptBackbone backbone{fixtures::save_tiny_backbone(dir), fixtures::cpu_options()};
  std::vector<std::filesystem::path> files = colour_files(dir, 11);
  TwoThreads threads;
};

}  // namespace

TEST_CASE_METHOD(ElevenFilesOnTwoThreads, "The preparing thread changes neither embeddings, order, counters nor errors", "[embed]") {
  siamese::EmbedderOptions in_turn;
  in_turn.batch_size = 3;
  in_turn.prefetch_batches = 0;
  in_turn.release_memory_every = 0;
  auto pipelined = in_turn;
  pipelined.prefetch_batches = 1;
  pipelined.release_memory_every = 2;  // freed memory handed back every batch or two: same results
  siamese::ImageEmbedder a(backbone, std::nullopt, in_turn), b(backbone, std::nullopt, pipelined);
  const auto expected = a.embed_files(files);
  const auto got = b.embed_files(files);
  CHECK(torch::equal(expected, got));
  CHECK(b.stats().embedded == 11);
  CHECK(b.stats().cache_hits == 1);
  CHECK(b.stats().requested == 12);
  CHECK(b.stats().backbone_calls == a.stats().backbone_calls);
  CHECK(torch::get_num_threads() == 2);  // the embedder gave back the threads it split

  // Errors: the first bad file in order, named, either way; a second one later is not reached.
  auto with_junk = files;
  fixtures::write_file(dir / "junk.jpg", "not an image");
  fixtures::write_file(dir / "junk2.png", "\x89PNG\r\n\x1a\n broken");
  with_junk.insert(with_junk.begin() + 7, dir / "junk.jpg");
  with_junk.push_back(dir / "junk2.png");
  for (const auto& options : {in_turn, pipelined}) {
    siamese::ImageEmbedder embedder(backbone, std::nullopt, options);
    CHECK_THROWS_WITH(embedder.embed_files(with_junk), Catch::Contains("junk.jpg") && !Catch::Contains("junk2.png"));
  }

  // The backbone side failing (here its progress callback) stops the preparing thread too.
  siamese::ImageEmbedder stopping(backbone, std::nullopt, pipelined);
  stopping.set_progress([](const siamese::ProgressReport&) { throw std::runtime_error("stopped by the caller"); });
  CHECK_THROWS_WITH(stopping.embed_files(files), "stopped by the caller");
  CHECK(stopping.stats().embedded < 11);
}

TEST_CASE_METHOD(ElevenFilesOnTwoThreads, "Embedding with a preparing thread changes no thread count that code outside the call sees",
                 "[embed][threads]") {
  siamese::EmbedderOptions pipelined;
  pipelined.batch_size = 2;
  pipelined.prefetch_batches = 1;
  siamese::ImageEmbedder embedder(backbone, std::nullopt, pipelined);
  // While the embedder splits its threads, other LibTorch work starts on a new thread of the
  // caller's (here from the progress callback, in the middle of the call) and on a thread
  // that was running before the call: each must see the process's count, 2.
  std::vector<int> seen_by_new_threads;
  std::mutex seen;
  std::atomic<bool> stop{false};
  std::atomic<int> running_thread_count{0};
  std::thread running([&] {
    while (!stop) {
      running_thread_count = torch::get_num_threads();
      (void)torch::ones({1 << 16}).cumsum(0);  // LibTorch work of its own, parallel where it can be
    }
  });
  embedder.set_progress([&](const siamese::ProgressReport&) {
    std::thread fresh([&] {
      const int count = torch::get_num_threads();
      (void)torch::ones({1 << 16}).sum();
      const std::lock_guard lock(seen);
      seen_by_new_threads.push_back(count);
    });
    fresh.join();
  });
  (void)embedder.embed_files(files);
  stop = true;
  running.join();
  REQUIRE(!seen_by_new_threads.empty());
  for (int count : seen_by_new_threads) CHECK(count == 2);  // torch::set_num_threads(1) inside made these 1
  CHECK(running_thread_count == 2);
  CHECK(torch::get_num_threads() == 2);
  int seen_after = 0;  // Catch's assertions stay on this thread
  std::thread after([&] { seen_after = torch::get_num_threads(); });
  after.join();
  CHECK(seen_after == 2);
}

TEST_CASE("An embedder made from a temporary backbone owns what it uses", "[embed]") {
  fixtures::TempDir dir;
  const auto files = colour_files(dir, 3);
  // Once a dangling reference (the embedder kept `const Backbone&`): now a copy sharing the module.
  siamese::ImageEmbedder embedder(siamese::TorchScriptBackbone(fixtures::save_tiny_backbone(dir), fixtures::cpu_options()),
                                  std::nullopt);
  const auto embeddings = embedder.embed_files(files);
  CHECK(embeddings.sizes() == torch::IntArrayRef({4, fixtures::embedding_size}));
  CHECK(embedder.backbone().metadata().name == "tiny-embedder");
  CHECK_FALSE(embedder.pipeline().has_value());
}

TEST_CASE("Batches close early when their photos hold max_batch_pixels", "[embed]") {
  fixtures::TempDir dir;
  siamese::TorchScriptBackbone backbone(fixtures::save_tiny_backbone(dir), fixtures::cpu_options());
  const auto files = colour_files(dir, 7);
  siamese::EmbedderOptions options;
  options.max_batch_pixels = 250;  // 144 pixels a photo: two photos a batch
  siamese::ImageEmbedder embedder(backbone, std::nullopt, options);
  const auto embeddings = embedder.embed_files(files);
  CHECK(embeddings.size(0) == 8);
  CHECK(embedder.stats().backbone_calls == 4);  // 2 + 2 + 2 + 1
  options.max_batch_pixels = 0;
  CHECK_THROWS_WITH(siamese::ImageEmbedder(backbone, std::nullopt, options), Catch::Contains("max_batch_pixels"));
}

TEST_CASE("Faces found in a batch: the first photo without one is named", "[detect][face]") {
  fixtures::TempDir dir;
  const auto blank = cv::Mat(200, 200, CV_8UC3, cv::Scalar(90, 90, 90));
  const auto face = siamese::read_image(example_photo("obama.jpg"));
  siamese::FacePipeline strict(std::make_unique<siamese::HaarFaceDetector>(), nullptr);
  CHECK_THROWS_WITH(strict.align_batch({face, blank, blank}, {"obama.jpg", "first blank", "second blank"}),
                    Catch::Contains("first blank") && !Catch::Contains("second blank"));
  CHECK_THROWS_WITH(strict.align_batch({face}, {}), Catch::Contains("one name per image"));
  CHECK_THROWS_WITH(strict.align_detections({face, face}, {siamese::FaceDetection{}}),
                    Catch::Contains("one detection per image"));
  siamese::FacePipelineOptions options;
  options.center_fallback = true;
  siamese::FacePipeline lenient(std::make_unique<siamese::HaarFaceDetector>(), nullptr, options);
  const auto faces = lenient.align_batch({face, blank}, {"obama.jpg", "blank"});
  REQUIRE(faces.size() == 2);
  CHECK_FALSE(faces[0].center_fallback);
  CHECK(faces[1].center_fallback);
  CHECK(cv::norm(faces[0].chip, lenient.align(face, "obama.jpg").chip, cv::NORM_INF) == 0);
  CHECK(lenient.align_batch({}, {}).empty());
}
