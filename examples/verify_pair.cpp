// verify_pair: are the faces in two photos the same person?
//
// Finds every face in each photo (face-api's tiny face detector, or OpenCV's Haar cascade;
// the largest alone with --largest), aligns each with 68 landmarks onto the dlib chip template,
// embeds them with ONE shared backbone, and compares every face of one photo with every face
// of the other: the closest pair decides, which answers "is this person in that photo?", and
// the output says how many faces each photo held. It prints the Euclidean distance, the head's
// probability and the verdict. --show draws the two faces compared, their boxes and landmarks,
// and the answer into a PNG.
// A verdict needs a head and threshold fitted to the model: its calibration, the threshold its
// metadata publishes, or a head from train_head (--head). A model with none of them (the
// pretrained InceptionV3, never trained on faces) gets its distance printed and no verdict.
//
// Models needed: a backbone file (models/faceapi_recognition.pt from tools/setup-models.sh).
// The detector and landmark models are taken from the backbone's folder when present
// (faceapi_tiny_detector.pt, faceapi_landmarks68.pt); without them the Haar cascade of
// Debian's opencv-data finds faces and chips are plain crops around its box.
//
// Usage: verify_pair MODEL.pt IMAGE_A IMAGE_B [--cropped] [--largest] [--detector tiny|haar]
//                    [--show OUT.png] [--head HEAD.pt] [--device auto|cpu|cuda[:N]] [--json]
//                    [--rotations when-needed|every-angle|upright-only]
// (verify_pair --help lists every option with its default.)

#include "example_main.hpp"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <nlohmann/json.hpp>

#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Arguments {
  std::string model;
  std::string image_a;
  std::string image_b;
  std::string device = "auto";
  std::string detector = "tiny";
  std::string show;
  std::string head;
  std::string rotations = "when-needed";
  bool cropped = false;
  bool largest = false;
  bool json = false;
};

void add_arguments(CLI::App& app, Arguments& args) {
  app.add_option("MODEL", args.model, "backbone file (models/faceapi_recognition.pt)")->required();
  app.add_option("IMAGE_A", args.image_a, "first photo")->required();
  app.add_option("IMAGE_B", args.image_b, "second photo")->required();
  app.add_flag("--cropped", args.cropped, "the photos are aligned face crops already (LFW-style): used whole");
  app.add_flag("--largest", args.largest, "compare the largest face of each photo only, not every face");
  app.add_option("--detector", args.detector, "tiny (face-api's, when its model is beside MODEL) or haar (OpenCV)")
      ->check(CLI::IsMember({"tiny", "haar"}));
  app.add_option("--show", args.show, "write a picture of both faces, boxes, landmarks and the verdict (PNG)");
  app.add_option("--head", args.head, "a head trained by train_head for MODEL (verdict: p >= 0.5)");
  example::add_device_option(app, args.device);
  example::add_rotation_option(app, args.rotations);
  app.add_flag("--json", args.json, "print one JSON object (distance, probability, verdict, boxes, model) for scripts");
}

siamese::FacePipeline make_pipeline(const Arguments& args, int chip_size, siamese::Device device) {
  const auto dir = std::filesystem::path(args.model).parent_path();
  siamese::FacePipelineOptions options;
  options.chip_size = chip_size;
  options.policy = args.largest ? siamese::FacePolicy::largest : siamese::FacePolicy::all;
  options.rotation_search = siamese::parse_rotation_search(args.rotations);
  if (args.detector == "haar") {
    std::unique_ptr<siamese::LandmarkDetector68> landmarks;
    if (std::filesystem::exists(dir / "faceapi_landmarks68.pt")) {
      landmarks = std::make_unique<siamese::LandmarkDetector68>(dir / "faceapi_landmarks68.pt", device);
    }
    return siamese::FacePipeline(std::make_unique<siamese::HaarFaceDetector>(), std::move(landmarks), options);
  }
  return siamese::FacePipeline::from_models(dir, options, device);
}

// One panel: the photo scaled to `height` with box and landmarks, the aligned chip beside it.
cv::Mat draw_panel(const cv::Mat& photo, const siamese::AlignedFace& face, int height) {
  const double scale = static_cast<double>(height) / photo.rows;
  cv::Mat shown;
  cv::resize(photo, shown, cv::Size(std::max(1, static_cast<int>(photo.cols * scale)), height), 0, 0, cv::INTER_AREA);
  const auto& b = face.detection.box;
  cv::rectangle(shown, cv::Rect(cv::Point(b.x * scale, b.y * scale), cv::Size(b.width * scale, b.height * scale)),
                cv::Scalar(0, 255, 0), 2);
  for (const auto& p : face.landmarks) cv::circle(shown, p * scale, 2, cv::Scalar(255, 0, 0), cv::FILLED);
  cv::Mat chip;
  cv::resize(face.chip, chip, cv::Size(height / 2, height / 2));
  cv::Mat panel(height, shown.cols + chip.cols, CV_8UC3, cv::Scalar::all(30));
  shown.copyTo(panel(cv::Rect(0, 0, shown.cols, height)));
  chip.copyTo(panel(cv::Rect(shown.cols, 0, chip.cols, chip.rows)));
  return panel;
}

// The verdict in words, or why there is none.
std::string verdict_of(const siamese::VerifyResult& r, bool has_decision) {
  if (!has_decision) return "none (no head or threshold fitted to this model)";
  return r.same ? "same person" : "different people";
}

void save_picture(const std::string& file, const cv::Mat& photo_a, const siamese::AlignedFace& a,
                  const cv::Mat& photo_b, const siamese::AlignedFace& b, const siamese::VerifyResult& r,
                  bool has_decision) {
  constexpr int height = 360;
  const cv::Mat left = draw_panel(photo_a, a, height);
  const cv::Mat right = draw_panel(photo_b, b, height);
  constexpr int footer = 60;
  cv::Mat canvas(height + footer, left.cols + right.cols + 10, CV_8UC3, cv::Scalar::all(255));
  left.copyTo(canvas(cv::Rect(0, 0, left.cols, height)));
  right.copyTo(canvas(cv::Rect(left.cols + 10, 0, right.cols, height)));
  std::ostringstream text;
  text << std::fixed << std::setprecision(3);
  if (has_decision) {
    text << (r.same ? "SAME PERSON" : "DIFFERENT PEOPLE") << "   distance " << r.distance << "   probability " << r.probability;
  } else {
    text << "distance " << r.distance << "   (no verdict: no threshold fitted to this model)";
  }
  const cv::Scalar colour = !has_decision ? cv::Scalar(90, 90, 90) : r.same ? cv::Scalar(0, 140, 0) : cv::Scalar(200, 0, 0);
  cv::putText(canvas, text.str(), cv::Point(10, height + 40), cv::FONT_HERSHEY_SIMPLEX, 0.8, colour, 2);
  cv::Mat bgr;
  cv::cvtColor(canvas, bgr, cv::COLOR_RGB2BGR);
  if (!cv::imwrite(file, bgr)) throw siamese::FileError("cannot write picture '" + file + "'");
}

nlohmann::json face_json(const std::string& file, const siamese::AlignedFace& face) {
  const auto& box = face.detection.box;
  return {{"file", file},
          {"box", {box.x, box.y, box.width, box.height}},
          {"score", face.detection.score},
          {"landmarks", face.landmarks.size()},
          {"roll_degrees", face.roll_degrees},
          {"turned_degrees", face.turned_degrees},
          {"center_fallback", face.center_fallback}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app(
      "Finds and aligns every face in each photo, compares them all, and prints for the closest pair the distance, "
      "the probability that they are the same person, and the verdict.",
      "verify_pair");
  example::configure(app);
  Arguments args;
  add_arguments(app, args);
  return example::run_main(app, argc, argv, [&] {
    siamese::BackboneOptions options;
    options.device = siamese::Device::parse(args.device);
    siamese::TorchScriptBackbone backbone(args.model, options);
    const auto decision = args.head.empty() ? siamese::fitted_decision(args.model, backbone.metadata())
                                            : std::optional(siamese::decision_from_head(siamese::load_head(args.head), args.head));
    // Without a fitted decision the net still measures the distance; its head's answer is
    // never shown.
    const int chip_size = backbone.input_spec().height;
    std::optional<siamese::FacePipeline> face_pipeline;
    if (!args.cropped) face_pipeline.emplace(make_pipeline(args, chip_size, options.device));
    siamese::Faces faces(std::move(backbone), decision, std::move(face_pipeline), std::nullopt);
    const cv::Mat photo_a = siamese::read_image(args.image_a);
    const cv::Mat photo_b = siamese::read_image(args.image_b);
    const auto compared = faces.compare(faces.find(photo_a, args.image_a), faces.find(photo_b, args.image_b));
    const auto& face_a = compared.a.faces[compared.face_a];
    const auto& face_b = compared.b.faces[compared.face_b];
    const auto& result = compared.result;
    const auto& net = faces.verifier();
    const auto& metadata = net.backbone().metadata();
    const std::string verdict = verdict_of(result, decision.has_value());
    const auto& pipeline = faces.pipeline();
    const std::string how = pipeline ? (pipeline->uses_landmarks() ? "detected, aligned by 68 landmarks" : "detected, box crop")
                                     : "given as crops";
    const auto count_a = compared.a.faces.size(), count_b = compared.b.faces.size();
    std::ostringstream found;
    found << count_a << " in A, " << count_b << " in B";
    if (count_a * count_b > 1) {
      found << "; the closest of " << count_a * count_b << " pairs decides: face " << compared.face_a + 1 << " of A, face "
            << compared.face_b + 1 << " of B";
    }
    if (!args.show.empty()) save_picture(args.show, photo_a, face_a, photo_b, face_b, result, decision.has_value());

    if (args.json) {
      nlohmann::json out = {{"model", {{"name", metadata.name}, {"file", args.model}, {"pretrained", metadata.pretrained}}},
                            {"device", options.device.str()},
                            {"faces", how},
                            {"faces_a", count_a},
                            {"faces_b", count_b},
                            {"distance", result.distance},
                            {"probability", decision ? nlohmann::json(result.probability) : nlohmann::json()},
                            {"same", decision ? nlohmann::json(result.same) : nlohmann::json()},
                            {"verdict", decision ? nlohmann::json(verdict) : nlohmann::json()},
                            {"decision", decision ? nlohmann::json(decision->source) : nlohmann::json()},
                            {"a", face_json(args.image_a, face_a)},
                            {"b", face_json(args.image_b, face_b)}};
      if (!args.show.empty()) out["picture"] = args.show;
      std::cout << out.dump(2) << '\n';
      return 0;
    }
    std::cout << std::fixed << std::setprecision(4)
              << "model:       " << metadata.name << " (" << (metadata.pretrained ? "pretrained" : "RANDOM weights")
              << ", device " << options.device.str() << ", " << torch::get_num_threads() << " threads)\n"
              << "faces:       " << how << '\n'
              << "found:       " << found.str() << '\n'
              << "distance:    " << result.distance << '\n';
    if (decision) {
      std::cout << "probability: " << result.probability << '\n'
                << "verdict:     " << verdict << " (threshold " << decision->distance_threshold << " from "
                << decision->source << ")\n";
    } else {
      std::cout << "verdict:     " << verdict << '\n';
      std::cerr << "verify_pair: no verdict: " << siamese::uncalibrated_message(args.model, metadata) << '\n';
    }
    if (!args.show.empty()) std::cout << "picture:     " << args.show << '\n';
    return 0;
  });
}
