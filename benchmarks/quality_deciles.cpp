// quality_deciles: does the face-quality score find the pairs a verifier gets wrong? On an
// LFW-style pair list (View 2's pairs.txt), every photo is aligned as `evaluate` aligns it
// (the central face, the image centre where none is found), scored with face_quality() and
// embedded; each pair is decided at its fold's 10-fold threshold. The pairs are ranked by the
// quality of their worse face and cut into deciles: the error rate of each decile, then the
// 10-fold accuracy on the pairs left when the lowest 10% and 20% are rejected. The same table
// for each measure alone (size, |yaw|, sharpness) says which of them carries the signal.
//
// Models needed: models/ from tools/setup-models.sh.
// Usage: quality_deciles --models DIR --pairs ../shared/lfw/pairs.txt --root ../shared/lfw

#include <siamese/siamese.hpp>

#include "bench_common.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <numeric>
#include <unordered_map>

namespace {

namespace fs = std::filesystem;

struct Photo {
  siamese::FaceQuality quality;
  bool centre = false;
};

// The error rate of each tenth of the pairs ranked by `key` (lowest first), and the 10-fold
// accuracy with the lowest 10% and 20% rejected.
void print_deciles(const char* title, const std::vector<double>& key, const std::vector<double>& distances,
                   const std::vector<int>& labels, const std::vector<int>& folds, const std::vector<bool>& wrong) {
  std::vector<std::size_t> order(key.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return key[a] < key[b]; });
  const std::size_t total_wrong = static_cast<std::size_t>(std::count(wrong.begin(), wrong.end(), true));
  std::printf("\n%s\n| decile (lowest first) | worse face's value | pairs | errors | error rate | share of all errors |\n"
              "| --- | --- | --- | --- | --- | --- |\n", title);
  for (int d = 0; d < 10; ++d) {
    const std::size_t first = order.size() * d / 10, last = order.size() * (d + 1) / 10;
    std::size_t errors = 0;
    for (std::size_t k = first; k < last; ++k) errors += wrong[order[k]];
    std::printf("| %d | %.3f - %.3f | %zu | %zu | %.2f%% | %.0f%% |\n", d + 1, key[order[first]], key[order[last - 1]], last - first, errors,
                100.0 * errors / (last - first), total_wrong ? 100.0 * errors / total_wrong : 0.0);
  }
  for (const double rejected : {0.1, 0.2}) {
    const std::size_t cut = static_cast<std::size_t>(order.size() * rejected);
    std::vector<double> kept_distances;
    std::vector<int> kept_labels, kept_folds;
    for (std::size_t k = cut; k < order.size(); ++k) {
      kept_distances.push_back(distances[order[k]]);
      kept_labels.push_back(labels[order[k]]);
      kept_folds.push_back(folds[order[k]]);
    }
    const auto kfold = siamese::eval::kfold_accuracy<siamese::EuclideanDistance>(kept_distances, kept_labels, kept_folds);
    std::printf("lowest %.0f%% rejected: %zu pairs left, 10-fold accuracy %.2f%% +- %.2f\n", rejected * 100, kept_distances.size(),
                100 * kfold.mean, 100 * kfold.stddev);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("Verification errors by face-quality decile on an LFW-style pair list", "quality_deciles");
  fs::path models = "models", pairs = "../shared/lfw/pairs.txt", root = "../shared/lfw";
  app.add_option("--models", models, "models folder (tools/setup-models.sh)");
  app.add_option("--pairs", pairs, "LFW pair file with folds (View 2's pairs.txt)");
  app.add_option("--root", root, "folder the pair file's images are in");
  CLI11_PARSE(app, argc, argv);
  try {
    const auto list = siamese::eval::parse_pairs(pairs, root);
    if (list.folds < 2) throw siamese::Error("'" + pairs.string() + "' has no folds: give View 2's pairs.txt");
    const auto images = siamese::eval::distinct_images(list);
    siamese::TorchScriptBackbone backbone(models / "faceapi_recognition.pt");
    siamese::FacePipelineOptions options;
    options.chip_size = backbone.input_spec().height;
    options.center_fallback = true;
    options.policy = siamese::FacePolicy::central;
    auto pipeline = siamese::FacePipeline::from_models(models, options);

    const auto start = std::chrono::steady_clock::now();
    std::vector<Photo> photos;
    std::vector<torch::Tensor> rows;
    for (std::size_t first = 0; first < images.size(); first += 32) {
      std::vector<cv::Mat> batch;
      std::vector<std::string> names;
      for (std::size_t i = first; i < std::min(images.size(), first + 32); ++i) {
        batch.push_back(siamese::read_image(images[i]));
        names.push_back(images[i].string());
      }
      std::vector<cv::Mat> chips;
      for (const auto& face : pipeline.align_batch(batch, names)) {
        photos.push_back({siamese::face_quality(face), face.center_fallback});
        chips.push_back(face.chip);
      }
      torch::InferenceMode guard;
      rows.push_back(backbone.embed(siamese::to_input_batch(chips, backbone.input_spec())));
      std::fprintf(stderr, "\rquality_deciles: %zu of %zu photos", photos.size(), images.size());
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const auto embeddings = torch::cat(rows);
    std::unordered_map<std::string, std::size_t> row_of;
    for (std::size_t i = 0; i < images.size(); ++i) row_of[images[i].string()] = i;

    std::vector<double> distances, worse_score, worse_size, worse_yaw, worse_sharpness;
    std::vector<int> labels, folds;
    for (const auto& p : list.pairs) {
      const auto a = row_of.at(p.a.string()), b = row_of.at(p.b.string());
      distances.push_back(siamese::EuclideanDistance{}(embeddings[static_cast<std::int64_t>(a)].unsqueeze(0),
                                                       embeddings[static_cast<std::int64_t>(b)].unsqueeze(0)).item<double>());
      labels.push_back(p.label);
      folds.push_back(p.fold);
      const auto& qa = photos[a].quality;
      const auto& qb = photos[b].quality;
      worse_score.push_back(std::min(qa.score, qb.score));
      worse_size.push_back(std::min(qa.face_pixels, qb.face_pixels));
      worse_yaw.push_back(-std::max(std::abs(qa.pose.yaw), std::abs(qb.pose.yaw)));  // ranked lowest first: the most turned
      worse_sharpness.push_back(std::min(qa.sharpness, qb.sharpness));
    }
    const auto kfold = siamese::eval::kfold_accuracy<siamese::EuclideanDistance>(distances, labels, folds);
    std::vector<bool> wrong;
    for (std::size_t i = 0; i < distances.size(); ++i) {
      const bool same = distances[i] <= kfold.thresholds[static_cast<std::size_t>(folds[i])];
      wrong.push_back(same != (labels[i] == 1));
    }
    const auto centre = std::count_if(photos.begin(), photos.end(), [](const Photo& p) { return p.centre; });
    std::printf("quality_deciles: %zu pairs, %zu photos (%ld without a face found: the centre) in %.1f s; CPU: %s\n",
                list.pairs.size(), images.size(), static_cast<long>(centre), seconds, bench::cpu_features().c_str());
    std::printf("10-fold accuracy, every pair: %.2f%% +- %.2f (%zu pairs wrong at their fold's threshold)\n", 100 * kfold.mean,
                100 * kfold.stddev, static_cast<std::size_t>(std::count(wrong.begin(), wrong.end(), true)));
    print_deciles("By FaceQuality::score of the pair's worse face:", worse_score, distances, labels, folds, wrong);
    print_deciles("By the worse face's size (detector box's shorter side, px):", worse_size, distances, labels, folds, wrong);
    print_deciles("By the worse face's |yaw| (negated: the most turned first):", worse_yaw, distances, labels, folds, wrong);
    print_deciles("By the worse face's sharpness:", worse_sharpness, distances, labels, folds, wrong);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "quality_deciles: %s\n", e.what());
    return 1;
  }
}
