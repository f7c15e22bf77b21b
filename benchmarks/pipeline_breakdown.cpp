// pipeline_breakdown: pairs verified per second end to end (decode, detect, align, embed,
// distance) on an LFW-style pair list, and the share of time in each stage.
//
// Every distinct image is decoded, its faces detected (tiny face detector) and aligned
// (68 landmarks, dlib template), the chips embedded in batches of 32, then the distance of
// every pair computed. Stages run one after the other so that each is timed alone.
//
// Models needed: models/ from tools/setup-models.sh.
// Usage: pipeline_breakdown --models DIR --pairs FILE --root DIR [--max-pairs 300]

#include <siamese/eval.hpp>
#include <siamese/siamese.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

}  // namespace

int main(int argc, char** argv) {
  std::string models, pairs_file, root;
  std::size_t max_pairs = 300;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--models") models = argv[i + 1];
    else if (flag == "--pairs") pairs_file = argv[i + 1];
    else if (flag == "--root") root = argv[i + 1];
    else if (flag == "--max-pairs") max_pairs = std::stoul(argv[i + 1]);
  }
  if (models.empty() || pairs_file.empty() || root.empty()) {
    std::cerr << "usage: pipeline_breakdown --models DIR --pairs FILE --root DIR [--max-pairs 300]\n";
    return 2;
  }
  try {
    using namespace siamese;
    auto list = eval::parse_pairs(pairs_file, root);
    if (list.pairs.size() > max_pairs) list.pairs.resize(max_pairs);
    const auto images = eval::distinct_images(list);
    BackboneOptions options;
    options.device = Device::cpu();
    const TorchScriptBackbone backbone(std::filesystem::path(models) / "faceapi_recognition.pt", options);
    TinyFaceDetector detector(std::filesystem::path(models) / "faceapi_tiny_detector.pt");
    FacePipelineOptions face_options;
    face_options.center_fallback = true;
    face_options.policy = FacePolicy::central;
    auto pipeline = FacePipeline::from_models(models, face_options);

    double decode_s = 0, detect_s = 0, align_s = 0;
    std::vector<cv::Mat> chips;
    for (const auto& image : images) {
      auto start = Clock::now();
      const auto rgb = read_image(image);
      decode_s += since(start);
      start = Clock::now();
      const auto faces = select_faces(detector.detect(rgb), FacePolicy::central, rgb.size());
      detect_s += since(start);
      start = Clock::now();
      const float side = 0.6F * static_cast<float>(std::min(rgb.cols, rgb.rows));
      const FaceDetection centre{cv::Rect2f((rgb.cols - side) / 2, (rgb.rows - side) / 2, side, side), 0.0F};
      chips.push_back(pipeline.align_detection(rgb, faces.empty() ? centre : faces.front()).chip);
      align_s += since(start);
    }
    auto start = Clock::now();
    std::vector<torch::Tensor> parts;
    for (std::size_t first = 0; first < chips.size(); first += 32) {
      const std::vector<cv::Mat> batch(chips.begin() + static_cast<long>(first),
                                       chips.begin() + static_cast<long>(std::min(chips.size(), first + 32)));
      parts.push_back(backbone.embed(to_input_batch(batch, backbone.input_spec())));
    }
    const auto embeddings = torch::cat(parts);
    const double embed_s = since(start);
    start = Clock::now();
    std::unordered_map<std::string, std::int64_t> row;
    for (std::size_t i = 0; i < images.size(); ++i) row[images[i].string()] = static_cast<std::int64_t>(i);
    std::vector<std::int64_t> ia, ib;
    for (const auto& pair : list.pairs) {
      ia.push_back(row.at(pair.a.string()));
      ib.push_back(row.at(pair.b.string()));
    }
    const auto distances = EuclideanDistance{}(embeddings.index_select(0, torch::tensor(ia)),
                                               embeddings.index_select(0, torch::tensor(ib)));
    (void)distances.sum().item<float>();
    const double distance_s = since(start);
    const double total = decode_s + detect_s + align_s + embed_s + distance_s;
    std::printf("%zu pairs, %zu distinct images, %d threads: %.1f pairs/s, %.1f images/s end to end\n",
                list.pairs.size(), images.size(), torch::get_num_threads(), list.pairs.size() / total,
                images.size() / total);
    const std::pair<const char*, double> stages[] = {{"decode", decode_s}, {"detect", detect_s}, {"align (landmarks + warp)", align_s},
                                                     {"embed", embed_s}, {"distance", distance_s}};
    for (const auto& [stage, seconds] : stages) {
      std::printf("  %-26s %7.2f s %6.1f%%  %6.2f ms/image\n", stage, seconds, 100 * seconds / total, 1e3 * seconds / images.size());
    }
    std::printf("  decode + detect + align share: %.1f%%\n", 100 * (decode_s + detect_s + align_s) / total);
  } catch (const std::exception& e) {
    std::cerr << "pipeline_breakdown: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
