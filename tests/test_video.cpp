// Video without models: head pose, face quality, the tracker on synthetic boxes and embeddings,
// and video sources, good and hostile.
#include "fixtures.hpp"

#include <catch2/catch.hpp>
#include <opencv2/calib3d.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include <cmath>
#include <fstream>
#include <map>
#include <tuple>

namespace {

// 68 landmarks whose six pose points are the generic head turned by yaw/pitch/roll (degrees,
// the signs HeadPose documents), seen from far; the eyes' points sit on their outer corners.
std::vector<cv::Point2f> posed_landmarks(double yaw, double pitch, double roll) {
  const auto& model = siamese::detail::head_model_points();
  const double rad = CV_PI / 180.0;
  // r = Rz(roll) Ry(-yaw) Rx(pitch): a positive HeadPose yaw is a negative turn about y.
  const cv::Matx33d rx(1, 0, 0, 0, std::cos(pitch * rad), -std::sin(pitch * rad), 0, std::sin(pitch * rad), std::cos(pitch * rad));
  const cv::Matx33d ry(std::cos(-yaw * rad), 0, std::sin(-yaw * rad), 0, 1, 0, -std::sin(-yaw * rad), 0, std::cos(-yaw * rad));
  const cv::Matx33d rz(std::cos(roll * rad), -std::sin(roll * rad), 0, std::sin(roll * rad), std::cos(roll * rad), 0, 0, 0, 1);
  cv::Mat rvec;
  cv::Rodrigues(cv::Mat(rz * ry * rx), rvec);
  std::vector<cv::Point2d> projected;
  const cv::Matx33d camera(4000, 0, 320, 0, 4000, 240, 0, 0, 1);
  cv::projectPoints(model, rvec, cv::Vec3d(0, 0, 1500), camera, cv::noArray(), projected);
  std::vector<cv::Point2f> points(68, cv::Point2f(320, 240));
  const int* index = siamese::detail::head_model_landmarks;
  for (std::size_t k = 0; k < 6; ++k) points[static_cast<std::size_t>(index[k])] = projected[k];
  for (int i = 36; i < 42; ++i) points[static_cast<std::size_t>(i)] = projected[2];
  for (int i = 42; i < 48; ++i) points[static_cast<std::size_t>(i)] = projected[3];
  return points;
}

// A textured chip: noise with structure, sharp unless blurred.
cv::Mat textured_chip(int side, double blur_sigma = 0.0) {
  cv::Mat chip(side, side, CV_8UC3);
  cv::RNG rng(3);
  rng.fill(chip, cv::RNG::UNIFORM, 60, 200);
  if (blur_sigma > 0) cv::GaussianBlur(chip, chip, cv::Size(0, 0), blur_sigma);
  return chip;
}

siamese::AlignedFace face_with(cv::Mat chip, float box_side, std::vector<cv::Point2f> landmarks = {}) {
  siamese::AlignedFace face;
  face.chip = std::move(chip);
  face.detection = {cv::Rect2f(10, 10, box_side, box_side), 0.9F};
  face.landmarks = std::move(landmarks);
  return face;
}

}  // namespace

TEST_CASE("Head pose: yaw, pitch and roll of a generic head are recovered, with their signs", "[quality]") {
  for (const auto& [yaw, pitch, roll] : {std::tuple{0.0, 0.0, 0.0}, {30.0, 0.0, 0.0}, {-30.0, 0.0, 0.0}, {0.0, 20.0, 0.0},
                                         {0.0, -20.0, 0.0}, {20.0, 10.0, 15.0}, {0.0, 0.0, 90.0}}) {
    const auto pose = siamese::head_pose(posed_landmarks(yaw, pitch, roll));
    INFO("yaw " << yaw << " pitch " << pitch << " roll " << roll << " -> " << pose.yaw << ", " << pose.pitch << ", " << pose.roll);
    CHECK(pose.yaw == Approx(yaw).margin(3.0));
    CHECK(pose.pitch == Approx(pitch).margin(3.0));
    CHECK(std::abs(pose.roll - roll) < 6.0);  // from the eye line, which yaw and pitch tilt a little
  }
  // Positive yaw: the nose tip moves towards the image's right of the eyes' midpoint.
  const auto turned = posed_landmarks(30, 0, 0);
  CHECK(turned[30].x > (turned[36].x + turned[45].x) / 2);
  CHECK_THROWS_AS(siamese::head_pose(std::vector<cv::Point2f>(5)), siamese::ShapeError);
}

TEST_CASE("Face quality falls with blur, small size, turned heads and bad exposure", "[quality]") {
  const auto frontal = posed_landmarks(0, 0, 0);
  const auto sharp = siamese::face_quality(face_with(textured_chip(150), 120, frontal));
  CHECK(sharp.has_pose);
  CHECK(sharp.face_pixels == 120);
  CHECK(sharp.score > 0.5);
  const auto blurred = siamese::face_quality(face_with(textured_chip(150, 3.0), 120, frontal));
  CHECK(blurred.sharpness < sharp.sharpness / 10);
  CHECK(blurred.score < sharp.score);
  const auto small = siamese::face_quality(face_with(textured_chip(150), 38, frontal));
  CHECK(small.score < sharp.score);
  const auto turned = siamese::face_quality(face_with(textured_chip(150), 120, posed_landmarks(52, 0, 0)));
  CHECK(turned.pose.yaw == Approx(52).margin(4));
  CHECK(turned.score < sharp.score / 2);
  const auto dark = siamese::face_quality(face_with(cv::Mat(150, 150, CV_8UC3, cv::Scalar::all(3)), 120, frontal));
  CHECK(dark.clipped == 1.0);
  CHECK(dark.score == 0.0);
  const auto no_landmarks = siamese::face_quality(face_with(textured_chip(150), 120));
  CHECK_FALSE(no_landmarks.has_pose);

  const siamese::QualityBar bar;
  CHECK_FALSE(bar.shortfall(sharp));
  CHECK(bar.shortfall(small).value_or("") == "face too small: 38 px (at least 40)");
  CHECK_THAT(bar.shortfall(turned).value_or(""), Catch::Matches("yaw 5[0-9] degrees \\(at most 45\\)"));
  CHECK_THAT(bar.shortfall(blurred).value_or(""), Catch::StartsWith("face blurred: sharpness"));
  CHECK_THAT(bar.shortfall(dark).value_or(""), Catch::StartsWith("face blurred") || Catch::StartsWith("face too dark"));
  CHECK_THROWS_WITH(bar.require(small, "door.jpg"), Catch::EndsWith("'door.jpg': face too small: 38 px (at least 40)"));
  CHECK_THROWS_AS(bar.require(small, "door.jpg"), siamese::LowQualityFace);
  siamese::QualityBar lenient;
  lenient.min_face_pixels = 0;
  CHECK_FALSE(lenient.shortfall(small));
  CHECK_THROWS_AS(siamese::face_quality(face_with(cv::Mat(), 120)), siamese::ImageError);
}

namespace {

// Two faces crossing: a walks right along y = 100, b left along y = 140, their boxes
// overlapping for the frames around the middle. Embeddings are fixed per person.
struct Crossing {
  torch::Tensor person_a = torch::tensor({1.0F, 0.0F, 0.0F, 0.0F});
  torch::Tensor person_b = torch::tensor({0.0F, 1.0F, 0.0F, 0.0F});

  // The inputs of `frame`, in an order that alternates (the tracker must not rely on it),
  // and which person each is.
  std::vector<siamese::TrackerInput> inputs(int frame, std::vector<int>& person, bool b_hidden = false) const {
    std::vector<siamese::TrackerInput> out;
    person.clear();
    const float ax = 20.0F + 10.0F * frame, bx = 420.0F - 10.0F * frame;
    siamese::TrackerInput a{{cv::Rect2f(ax, 100, 100, 100), 0.9F}, 0.5, {}};
    siamese::TrackerInput b{{cv::Rect2f(bx, 140, 100, 100), 0.9F}, 0.5, {}};
    if (frame % 2 == 0) {
      out = {a, b};
      person = {0, 1};
    } else {
      out = {b, a};
      person = {1, 0};
    }
    if (b_hidden) {
      const auto b_at = frame % 2 == 0 ? 1 : 0;
      out.erase(out.begin() + b_at);
      person.erase(person.begin() + b_at);
    }
    return out;
  }
};

}  // namespace

TEST_CASE("Tracker: two people crossing keep their tracks, embedded once each unless contested", "[track]") {
  Crossing scene;
  siamese::FaceTracker tracker;
  std::map<int, int> person_of_track;
  std::size_t embedded_faces = 0;
  for (int frame = 0; frame <= 40; ++frame) {
    std::vector<int> person;
    const auto inputs = scene.inputs(frame, person);
    const auto step = tracker.update(frame, inputs, [&](const std::vector<std::size_t>& wanted) {
      embedded_faces += wanted.size();
      std::vector<torch::Tensor> rows;
      for (const auto i : wanted) rows.push_back(person[i] == 0 ? scene.person_a : scene.person_b);
      return torch::stack(rows);
    });
    REQUIRE(step.track_of_input.size() == inputs.size());
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      const auto [it, fresh] = person_of_track.emplace(step.track_of_input[i], person[i]);
      INFO("frame " << frame << " input " << i);
      CHECK(it->second == person[i]);  // no identity switch
    }
  }
  CHECK(person_of_track.size() == 2);
  // Two starts, plus the frames where the boxes overlap both tracks' predictions.
  CHECK(embedded_faces >= 2);
  CHECK(embedded_faces < 2 + 2 * 12);
  const auto ended = tracker.finish();
  REQUIRE(ended.size() == 2);
  CHECK(ended[0].id == 1);
  CHECK(ended[0].first_frame == 0);
  CHECK(ended[0].last_frame == 40);
  CHECK(ended[0].detections == 41);
  CHECK(ended[0].embeddings == 1);
  CHECK(tracker.tracks().empty());
}

TEST_CASE("Tracker: tracks end after the missed frames, rejoin by embedding, re-embed better views", "[track]") {
  Crossing scene;
  auto embed_all = [&](std::vector<int>& person) {
    return [&](const std::vector<std::size_t>& wanted) {
      std::vector<torch::Tensor> rows;
      for (const auto i : wanted) rows.push_back(person[i] == 0 ? scene.person_a : scene.person_b);
      return torch::stack(rows);
    };
  };
  siamese::TrackerOptions options;
  options.max_missed_frames = 5;
  options.rejoin_distance = 0.5;
  siamese::FaceTracker tracker(options);
  std::vector<int> person;
  tracker.update(0, scene.inputs(0, person), embed_all(person));
  // b is hidden for 3 frames, then seen far from its predicted box: it rejoins by embedding.
  for (int frame = 1; frame <= 3; ++frame) tracker.update(frame, scene.inputs(frame, person, true), embed_all(person));
  auto inputs = scene.inputs(4, person);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (person[i] == 1) inputs[i].detection.box.y += 200;
  }
  auto step = tracker.update(4, inputs, embed_all(person));
  for (std::size_t i = 0; i < inputs.size(); ++i) CHECK(step.track_of_input[i] == person[i] + 1);
  // A better view is embedded again; one barely better is not.
  inputs = scene.inputs(5, person);
  inputs[0].quality = 0.52;
  inputs[1].quality = 0.9;
  step = tracker.update(5, inputs, embed_all(person));
  CHECK(step.embedded == std::vector<int>{person[1] + 1});
  // Nothing seen for more than max_missed_frames: both end, through skip() as through update().
  CHECK(tracker.skip(10).empty());
  const auto ended = tracker.skip(11);
  REQUIRE(ended.size() == 2);
  CHECK(ended[person[1]].best_quality == 0.9);
  CHECK(ended[person[1]].best_frame == 5);
  // A face after the tracks ended starts a new one.
  step = tracker.update(12, scene.inputs(12, person), embed_all(person));
  CHECK(step.track_of_input[0] >= 3);

  CHECK_THROWS_WITH(tracker.update(11, {}, embed_all(person)), Catch::Contains("frame 11 after 12"));
  CHECK_THROWS_AS(siamese::FaceTracker().update(0, scene.inputs(0, person), [](const std::vector<std::size_t>&) { return torch::zeros({1, 4}); }),
                  siamese::ShapeError);
  siamese::TrackerOptions bad;
  bad.min_overlap = 0;
  CHECK_THROWS_WITH(siamese::FaceTracker(bad), Catch::Contains("min_overlap"));
}

TEST_CASE("Tracker: the same inputs give the same tracks", "[track]") {
  Crossing scene;
  auto run = [&] {
    siamese::FaceTracker tracker;
    std::vector<int> ids;
    std::vector<int> person;
    for (int frame = 0; frame < 30; frame += 2) {
      const auto step = tracker.update(frame, scene.inputs(frame, person), [&](const std::vector<std::size_t>& wanted) {
        std::vector<torch::Tensor> rows;
        for (const auto i : wanted) rows.push_back(person[i] == 0 ? scene.person_a : scene.person_b);
        return torch::stack(rows);
      });
      ids.insert(ids.end(), step.track_of_input.begin(), step.track_of_input.end());
    }
    return ids;
  };
  CHECK(run() == run());
}

TEST_CASE("Video sources: an MJPG AVI and a folder of frames read back; hostile sources are refused by name", "[video][errors]") {
  fixtures::TempDir dir;
  const auto avi = (dir / "clip.avi").string();
  {
    cv::VideoWriter writer(avi, cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), 25, cv::Size(64, 48));
    REQUIRE(writer.isOpened());
    for (int i = 0; i < 30; ++i) writer.write(cv::Mat(48, 64, CV_8UC3, cv::Scalar(0, 0, 8 * i)));  // BGR: red grows
  }
  auto video = siamese::VideoSource::open(avi);
  CHECK(video.declared_frames() == 30);
  CHECK(video.fps() == Approx(25));
  cv::Mat rgb;
  int frames = 0;
  while (video.read(rgb)) {
    REQUIRE(rgb.type() == CV_8UC3);
    if (frames == 20) CHECK(cv::mean(rgb)[0] == Approx(160).margin(6));  // red first: RGB
    ++frames;
  }
  CHECK(frames == 30);

  std::filesystem::create_directories(dir / "frames");
  for (int i = 0; i < 3; ++i) cv::imwrite((dir / "frames" / ("f" + std::to_string(i) + ".png")).string(), cv::Mat(8, 8, CV_8UC3, cv::Scalar::all(i)));
  auto folder = siamese::VideoSource::open((dir / "frames").string());
  CHECK(folder.declared_frames() == 3);
  for (int i = 0; i < 3; ++i) REQUIRE(folder.read(rgb));
  CHECK_FALSE(folder.read(rgb));

  // A video cut short: read to the cut, then refused as truncated.
  std::string bytes;
  {
    std::ifstream in(avi, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const auto cut = (dir / "cut.avi").string();
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  std::ofstream((dir / "empty.avi").string());
  std::ofstream((dir / "notes.avi").string()) << "not a video at all\n";
  std::filesystem::create_directories(dir / "no-frames");
  auto read_all = [&](const std::string& source) {
    auto v = siamese::VideoSource::open(source);
    while (v.read(rgb)) {
    }
  };
  CHECK_THROWS_AS(read_all(cut), siamese::VideoError);
  CHECK_THROWS_WITH(read_all(cut), Catch::Contains("cut.avi"));
  CHECK_THROWS_WITH(read_all((dir / "empty.avi").string()), Catch::Contains("empty.avi") && Catch::Contains("is empty"));
  CHECK_THROWS_WITH(read_all((dir / "notes.avi").string()), Catch::Contains("notes.avi") && Catch::Contains("cannot be opened"));
  CHECK_THROWS_WITH(read_all((dir / "missing.avi").string()), Catch::Contains("missing.avi") && Catch::Contains("does not exist"));
  CHECK_THROWS_WITH(read_all((dir / "no-frames").string()), Catch::Contains("no-frames") && Catch::Contains("holds no image"));
  CHECK_THROWS_WITH(read_all("9"), Catch::Contains("camera 9"));
  CHECK_THROWS_AS(read_all("9"), siamese::VideoError);
}

TEST_CASE("Tracker and video tracker options out of range are refused, naming the option", "[track][errors]") {
  auto refused = [](auto change, const char* name) {
    siamese::TrackerOptions options;
    change(options);
    CHECK_THROWS_WITH(siamese::FaceTracker(options), Catch::Contains(name));
  };
  refused([](siamese::TrackerOptions& o) { o.min_overlap = 1.5; }, "min_overlap");
  refused([](siamese::TrackerOptions& o) { o.max_missed_frames = 0; }, "max_missed_frames");
  refused([](siamese::TrackerOptions& o) { o.rejoin_distance = -1; }, "rejoin_distance");
  refused([](siamese::TrackerOptions& o) { o.smoothing = 0; }, "smoothing");

  fixtures::TempDir dir;
  siamese::TorchScriptBackbone backbone(fixtures::save_tiny_backbone(dir), fixtures::cpu_options());
  auto pipeline = [](int chip) {
    siamese::FacePipelineOptions options;
    options.chip_size = chip;
    return siamese::FacePipeline(std::make_unique<siamese::HaarFaceDetector>(), nullptr, options);
  };
  siamese::VideoTrackerOptions every0;
  every0.detect_every = 0;
  CHECK_THROWS_WITH(siamese::VideoFaceTracker<>(backbone, pipeline(fixtures::input_side), every0), Catch::Contains("detect_every"));
  siamese::VideoTrackerOptions sparse;
  sparse.detect_every = 20;
  CHECK_THROWS_WITH(siamese::VideoFaceTracker<>(backbone, pipeline(fixtures::input_side), sparse),
                    Catch::Contains("max_missed_frames (12) must be at least detect_every (20)"));
  CHECK_THROWS_AS(siamese::VideoFaceTracker<>(backbone, pipeline(150)), siamese::ShapeError);
  siamese::VideoFaceTracker<> tracker(backbone, pipeline(fixtures::input_side));
  const auto blank = tracker.process(cv::Mat(48, 64, CV_8UC3, cv::Scalar::all(90)));
  CHECK(blank.detection_ran);
  CHECK(blank.faces.empty());
  CHECK_THROWS_WITH(tracker.track(1), Catch::Contains("no live track 1"));
  CHECK_THROWS_AS(tracker.process(cv::Mat()), siamese::ImageError);
}
