// rotation_probe: faces at other angles, as a new user would try them. Each of the first
// photo of the first N people of an LFW-style folder is verified against copies of itself
// turned 45, 90, 180 and 270 degrees counter-clockwise (and 0, as the control): how many
// copies have a face found, how many are called the same person (distance below the face
// model's 0.6), and the milliseconds per copy that finding and aligning took, with the
// rotation search (FacePipelineOptions::rotation_search, when_needed: the library's
// default) and without it (upright_only), side by side in one run, taking turns photo by photo.
//
// Models needed: models/ from tools/setup-models.sh.
// Usage: rotation_probe --models DIR --people ROOT [--photos 40]

#include <siamese/siamese.hpp>

#include "bench_common.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Tally {
  int found = 0, same = 0, turned = 0;
  double seconds = 0.0;
};

std::vector<fs::path> first_photos(const fs::path& root, std::size_t count) {
  std::vector<fs::path> people, photos;
  for (const auto& entry : fs::directory_iterator(root)) {
    if (entry.is_directory()) people.push_back(entry.path());
  }
  std::sort(people.begin(), people.end());
  for (const auto& person : people) {
    if (photos.size() >= count) break;
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(person)) files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    if (!files.empty()) photos.push_back(files.front());
  }
  return photos;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("Photos verified against turned copies of themselves, with the rotation search and without.", "rotation_probe");
  std::string models, people;
  std::size_t count = 40;
  app.add_option("--models", models, "models folder (tools/setup-models.sh)")->required();
  app.add_option("--people", people, "folder of identities, ROOT/<person>/<photo>")->required();
  app.add_option("--photos", count, "people, one photo each")->check(CLI::Range(1, 100000));
  CLI11_PARSE(app, argc, argv);
  try {
    using namespace siamese;
    BackboneOptions backbone_options;
    backbone_options.device = Device::cpu();
    const TorchScriptBackbone backbone(fs::path(models) / "faceapi_recognition.pt", backbone_options);
    FacePipelineOptions searching_options, upright_options;
    upright_options.rotation_search = RotationSearch::upright_only;
    FacePipeline pipelines[2] = {FacePipeline::from_models(models, searching_options, Device::cpu()),
                                 FacePipeline::from_models(models, upright_options, Device::cpu())};
    const auto photos = first_photos(people, count);
    std::printf("%s; %zu photos, each against copies of itself turned counter-clockwise\n", bench::cpu_features().c_str(),
                photos.size());
    std::printf("%-8s | %-40s | %-40s\n", "turned", "rotation search (when needed)", "none (upright only)");
    for (const int degrees : {0, 45, 90, 180, 270}) {
      Tally tally[2];
      for (const auto& photo : photos) {
        const auto image = read_image(photo);
        const auto reference = backbone.embed(to_input_tensor(pipelines[1].align(image, photo.string()).chip, backbone.input_spec()));
        const auto copy = turned_image(image, degrees).image;
        for (int which = 0; which < 2; ++which) {
          const auto start = Clock::now();
          try {
            const auto face = pipelines[which].align(copy, photo.string());
            tally[which].seconds += std::chrono::duration<double>(Clock::now() - start).count();
            const auto embedding = backbone.embed(to_input_tensor(face.chip, backbone.input_spec()));
            ++tally[which].found;
            tally[which].same += EuclideanDistance{}(embedding, reference).item<double>() < 0.6;
            tally[which].turned += face.turned_degrees != 0;
          } catch (const NoFaceFound&) {
            tally[which].seconds += std::chrono::duration<double>(Clock::now() - start).count();
          }
        }
      }
      const auto n = static_cast<double>(photos.size());
      char columns[2][64];
      for (int which = 0; which < 2; ++which) {
        std::snprintf(columns[which], sizeof columns[which], "found %3d, same %3d (%5.1f%%), %6.1f ms", tally[which].found,
                      tally[which].same, 100.0 * tally[which].same / n, 1e3 * tally[which].seconds / n);
      }
      std::printf("%3d deg  | %-40s | %-40s | searched turn used %d\n", degrees, columns[0], columns[1], tally[0].turned);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rotation_probe: %s\n", e.what());
    return 1;
  }
}
