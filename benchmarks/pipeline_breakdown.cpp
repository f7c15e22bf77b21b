// pipeline_breakdown: photos per second from file to embedding, as users feel it, and the
// share of time in each stage.
//
// 1. Stages alone, one after the other over the distinct photos of an LFW-style pair list, in
//    batches of 32: decode, detect (tiny face detector, one call per input size per batch),
//    landmarks + warp (one landmark call per batch), embed (the chips, with mirrors under
//    --mirror). The shares say where time goes; "one at a time" repeats detection and
//    landmarks per photo, as the library ran them before batching, for the ratio; the
//    detector alone, coarse to fine and with every size merged, for theirs; detection and
//    alignment with the rotation search (FacePipelineOptions::rotation_search, when_needed by
//    default) and without, for its price on photos as they come.
// 2. End to end through ImageEmbedder, the path of evaluate and gallery enroll: with the
//    preparing thread (decode, detect, align) overlapping the backbone, and without.
// Each at the machine's threads and at one thread (--threads sets the first).
// 3. With --synthetic N, a folder of N distinct photos made from the first photos (each a copy
//    with its own trailing bytes, so that none is served from the cache), embedded end to end:
//    photos/s and the process's peak resident memory, which must not grow with the photos.
// 4. With --peer RESULTS (benchmarks/faceapi_peer.mjs's output on the same --photo-list), only
//    the end-to-end figures, at one thread and at the machine's, and their ratios to the peer's.
//
// Models needed: models/ from tools/setup-models.sh.
// Usage: pipeline_breakdown --models DIR (--pairs FILE --root DIR | --photo-list FILE)
//          [--max-photos 600] [--mirror] [--threads N] [--detector-sizes 416,192] [--merge-sizes]
//          [--peer RESULTS] [--synthetic N] [--precision float32|bfloat16]
// The detector runs coarse to fine, as FacePipeline::from_models runs it; --merge-sizes runs
// every input size and merges them instead.

#include <siamese/eval.hpp>
#include <siamese/siamese.hpp>

#include "bench_common.hpp"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sys/resource.h>
#include <unistd.h>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

siamese::TinyFaceDetectorOptions coarse_to_fine() {
  siamese::TinyFaceDetectorOptions options;
  options.coarse_to_fine = true;  // as FacePipeline::from_models sets it for one face per photo
  return options;
}

struct Settings {
  std::filesystem::path models;
  std::vector<std::filesystem::path> photos;
  bool mirror = false;
  siamese::TinyFaceDetectorOptions detector = coarse_to_fine();
};

siamese::FacePipeline lfw_pipeline(const Settings& settings,
                                   siamese::RotationSearch rotation = siamese::RotationSearch::when_needed) {
  siamese::FacePipelineOptions options;
  options.center_fallback = true;
  options.policy = siamese::FacePolicy::central;
  options.rotation_search = rotation;
  return siamese::FacePipeline(
      std::make_unique<siamese::TinyFaceDetector>(settings.models / "faceapi_tiny_detector.pt", settings.detector),
      std::make_unique<siamese::LandmarkDetector68>(settings.models / "faceapi_landmarks68.pt"), options);
}

// "key<TAB>value" lines, as benchmarks/faceapi_peer.mjs prints them.
std::map<std::string, std::string> read_peer(const std::string& file) {
  std::ifstream in(file);
  if (!in) throw siamese::FileError("cannot read peer results '" + file + "'");
  std::map<std::string, std::string> values;
  for (std::string line; std::getline(in, line);) {
    const auto tab = line.find('\t');
    if (tab != std::string::npos) values[line.substr(0, tab)] = line.substr(tab + 1);
  }
  if (values.count("photos_per_second") == 0) throw siamese::FileError("'" + file + "' has no photos_per_second line");
  return values;
}

template <class T>
std::vector<T> slice(const std::vector<T>& all, std::size_t first, std::size_t count) {
  return {all.begin() + static_cast<long>(first), all.begin() + static_cast<long>(std::min(all.size(), first + count))};
}

void stage_breakdown(const Settings& settings, const siamese::TorchScriptBackbone& backbone) {
  using namespace siamese;
  constexpr std::size_t batch = 32;
  auto pipeline = lfw_pipeline(settings);
  auto start = Clock::now();
  std::vector<cv::Mat> images;
  for (const auto& photo : settings.photos) images.push_back(read_image(photo));
  const double decode_s = since(start);

  start = Clock::now();
  std::vector<FaceDetection> detections;
  std::vector<std::string> names;
  for (const auto& photo : settings.photos) names.push_back(photo.string());
  for (std::size_t first = 0; first < images.size(); first += batch) {
    for (const auto& face : pipeline.find_faces(slice(images, first, batch), slice(names, first, batch))) {
      detections.push_back(face.detection);
    }
  }
  const double detect_s = since(start);

  start = Clock::now();
  std::vector<cv::Mat> chips;
  for (std::size_t first = 0; first < images.size(); first += batch) {
    for (auto& face : pipeline.align_detections(slice(images, first, batch), slice(detections, first, batch))) {
      chips.push_back(face.chip);
    }
  }
  const double align_s = since(start);

  start = Clock::now();
  for (std::size_t first = 0; first < chips.size(); first += batch) {
    auto input = to_input_batch(slice(chips, first, batch), backbone.input_spec());
    if (settings.mirror) input = torch::cat({input, input.flip({3})});
    (void)backbone.embed(input);
  }
  const double embed_s = since(start);

  // The detector both ways: coarse to fine (the pipeline's default) and every size merged.
  double detector_s[2] = {0, 0};
  for (bool coarse : {true, false}) {
    auto detector_options = settings.detector;
    detector_options.coarse_to_fine = coarse;
    TinyFaceDetector detector(settings.models / "faceapi_tiny_detector.pt", detector_options);
    start = Clock::now();
    for (std::size_t first = 0; first < images.size(); first += batch) (void)detector.detect_batch(slice(images, first, batch));
    detector_s[coarse ? 0 : 1] = since(start);
  }

  // The same detection and landmark work one photo at a time, for the batching ratio.
  start = Clock::now();
  for (std::size_t i = 0; i < images.size(); ++i) {
    (void)pipeline.find_faces({images[i]}, {names[i]});
    (void)pipeline.align_detection(images[i], detections[i]);
  }
  const double single_s = since(start);

  // The rotation search's price on photos as they come (the library's default, when_needed,
  // against none), align_batch() both ways, taking turns batch by batch, each going first
  // every other batch (the second finds the photos in cache).
  auto upright_only = lfw_pipeline(settings, RotationSearch::upright_only);
  double rotation_s[2] = {0, 0};
  std::size_t turned = 0;
  for (std::size_t first = 0; first < images.size(); first += batch) {
    const bool search_first = (first / batch) % 2 == 0;
    for (const bool search : {search_first, !search_first}) {
      start = Clock::now();
      const auto faces = (search ? pipeline : upright_only).align_batch(slice(images, first, batch), slice(names, first, batch));
      rotation_s[search ? 0 : 1] += since(start);
      if (search) {
        for (const auto& face : faces) turned += face.turned_degrees != 0;
      }
    }
  }

  // The same, one photo at a time, split by whether the upright search succeeded there (a face
  // found as the photo is that passes the upright check, or needs none): the target is that
  // only the photos where it fails pay.
  double upright_case_s[2] = {0, 0}, failed_case_s[2] = {0, 0};
  std::size_t failed = 0;
  for (std::size_t i = 0; i < images.size(); ++i) {
    double seconds[2] = {0, 0};
    bool upright_case = true;
    for (const bool search : {i % 2 == 0, i % 2 != 0}) {
      start = Clock::now();
      const auto face = (search ? pipeline : upright_only).align_batch({images[i]}, {names[i]}).front();
      seconds[search ? 0 : 1] = since(start);
      if (search) {
        upright_case = face.turned_degrees == 0 && !face.center_fallback &&
                       face.landmark_disagreement <= pipeline.options().upright_disagreement;
      }
    }
    auto& into = upright_case ? upright_case_s : failed_case_s;
    into[0] += seconds[0];
    into[1] += seconds[1];
    failed += !upright_case;
  }

  const double total = decode_s + detect_s + align_s + embed_s;
  const double n = static_cast<double>(images.size());
  std::printf("stages alone, %d threads, %zu photos%s: %.1f photos/s\n", torch::get_num_threads(), images.size(),
              settings.mirror ? " (embedding with mirrors)" : "", n / total);
  const std::pair<const char*, double> stages[] = {
      {"decode", decode_s}, {"detect", detect_s}, {"landmarks + warp", align_s}, {"embed", embed_s}};
  for (const auto& [stage, seconds] : stages) {
    std::printf("  %-18s %7.2f s %6.1f%%  %6.2f ms/photo\n", stage, seconds, 100 * seconds / total, 1e3 * seconds / n);
  }
  std::printf("  detect + landmarks + warp: %.1f%% of the time; batched %.2f ms/photo vs one at a time %.2f ms/photo: %.2fx\n",
              100 * (detect_s + align_s) / total, 1e3 * (detect_s + align_s) / n, 1e3 * single_s / n,
              single_s / (detect_s + align_s));
  std::printf("  detector alone: coarse to fine %.2f ms/photo vs every size merged %.2f ms/photo: %.2fx%s\n",
              1e3 * detector_s[0] / n, 1e3 * detector_s[1] / n, detector_s[1] / detector_s[0],
              settings.detector.coarse_to_fine ? "" : " (the stages above merge every size: --merge-sizes)");
  std::printf("  detect + landmarks + warp with the rotation search (when needed) %.2f ms/photo vs none %.2f ms/photo: %.2fx the"
              " time; %zu of %zu photos taken at another turn\n",
              1e3 * rotation_s[0] / n, 1e3 * rotation_s[1] / n, rotation_s[0] / rotation_s[1], turned, images.size());
  const double upright_n = std::max(1.0, n - static_cast<double>(failed)), failed_n = std::max<double>(1.0, static_cast<double>(failed));
  std::printf("    one photo at a time, where the upright search succeeds (%zu photos): %.2f vs %.2f ms/photo, %.2fx; where it "
              "fails (%zu: no face as the photo is, or none passing the upright check): %.2f vs %.2f ms/photo, %.2fx\n",
              images.size() - failed, 1e3 * upright_case_s[0] / upright_n, 1e3 * upright_case_s[1] / upright_n,
              upright_case_s[0] / upright_case_s[1], failed, 1e3 * failed_case_s[0] / failed_n, 1e3 * failed_case_s[1] / failed_n,
              failed_case_s[0] / std::max(1e-12, failed_case_s[1]));
}

double end_to_end(const Settings& settings, const siamese::TorchScriptBackbone& backbone, std::size_t prefetch) {
  siamese::EmbedderOptions options;
  options.mirror = settings.mirror;
  options.prefetch_batches = prefetch;
  siamese::ImageEmbedder embedder(backbone, lfw_pipeline(settings), options);
  const auto start = Clock::now();
  (void)embedder.embed_files(settings.photos);
  return static_cast<double>(settings.photos.size()) / since(start);
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

// N distinct photos in a new folder under the system's temporary folder, copies of `sources`.
std::vector<std::filesystem::path> synthetic_folder(const std::vector<std::filesystem::path>& sources, std::size_t count,
                                                    const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  std::vector<std::string> contents;
  for (const auto& source : sources) {
    std::ifstream in(source, std::ios::binary);
    contents.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::vector<std::filesystem::path> files;
  for (std::size_t i = 0; i < count; ++i) {
    files.push_back(dir / ("photo" + std::to_string(i) + ".jpg"));
    std::ofstream out(files.back(), std::ios::binary);
    out << contents[i % contents.size()] << "synthetic copy " << i;  // after the JPEG's end: decoders ignore it
    if (!out) throw siamese::FileError("cannot write '" + files.back().string() + "'");
  }
  return files;
}

}  // namespace

int main(int argc, char** argv) {
  std::string pairs_file, root, photo_list, peer_file, precision = "float32";
  Settings settings;
  std::size_t max_photos = 600, synthetic = 0;
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    const bool has_value = i + 1 < argc;
    if (flag == "--mirror") settings.mirror = true;
    else if (flag == "--merge-sizes") settings.detector.coarse_to_fine = false;
    else if (flag == "--models" && has_value) settings.models = argv[++i];
    else if (flag == "--pairs" && has_value) pairs_file = argv[++i];
    else if (flag == "--photo-list" && has_value) photo_list = argv[++i];
    else if (flag == "--peer" && has_value) peer_file = argv[++i];
    else if (flag == "--synthetic" && has_value) synthetic = std::stoul(argv[++i]);
    else if (flag == "--detector-sizes" && has_value) {
      settings.detector.input_sizes.clear();
      for (auto size : bench::parse_list(argv[++i])) settings.detector.input_sizes.push_back(static_cast<int>(size));
    }
    else if (flag == "--root" && has_value) root = argv[++i];
    else if (flag == "--max-photos" && has_value) max_photos = std::stoul(argv[++i]);
    else if (flag == "--threads" && has_value) threads = std::stoi(argv[++i]);
    else if (flag == "--precision" && has_value) precision = argv[++i];
    else settings.models.clear(), i = argc;
  }
  const bool from_pairs = !pairs_file.empty() && !root.empty();
  if (settings.models.empty() || from_pairs == !photo_list.empty() || threads < 1) {
    std::cerr << "usage: pipeline_breakdown --models DIR (--pairs FILE --root DIR | --photo-list FILE) [--max-photos 600]\n"
                 "         [--mirror] [--threads N] [--detector-sizes 416,192] [--merge-sizes] [--peer RESULTS]\n"
                 "         [--synthetic N] [--precision float32|bfloat16]\n";
    return 2;
  }
  try {
    using namespace siamese;
    if (from_pairs) {
      settings.photos = eval::distinct_images(eval::parse_pairs(pairs_file, root));
    } else {
      std::ifstream in(photo_list);
      if (!in) throw FileError("cannot read photo list '" + photo_list + "'");
      for (std::string line; std::getline(in, line);) if (!line.empty()) settings.photos.emplace_back(line);
    }
    if (settings.photos.size() > max_photos) settings.photos.resize(max_photos);
    BackboneOptions options;
    options.device = Device::cpu();
    options.precision = parse_precision(precision);
    std::printf("%s; backbone in %s\n", bench::cpu_features().c_str(), precision_name(options.precision));
    if (synthetic > 0) {
      torch::set_num_threads(threads);
      const auto dir = std::filesystem::temp_directory_path() / ("siamese-synthetic-" + std::to_string(getpid()));
      const auto sources = std::vector<std::filesystem::path>(settings.photos.begin(), settings.photos.begin() + std::min<long>(20, static_cast<long>(settings.photos.size())));
      settings.photos = synthetic_folder(sources, synthetic, dir);
      const TorchScriptBackbone backbone(settings.models / "faceapi_recognition.pt", options);
      const double before = peak_rss_mib();
      const double rate = end_to_end(settings, backbone, 1);
      std::filesystem::remove_all(dir);
      std::printf("%zu synthetic photos, %d threads%s: %.1f photos/s end to end, peak resident memory %.0f MiB (%.0f MiB after loading)\n",
                  synthetic, threads, settings.mirror ? ", mirror averaging" : "", rate, peak_rss_mib(), before);
      return 0;
    }
    if (!peer_file.empty()) {
      const auto peer = read_peer(peer_file);
      const double peer_rate = std::stod(peer.at("photos_per_second"));
      std::printf("%zu photos, detector at", settings.photos.size());
      for (int size : settings.detector.input_sizes) std::printf(" %d", size);
      std::printf(", %s: face-api.js %s (wasm, SIMD %s, multithreading %s: one thread) %.1f photos/s\n",
                  settings.mirror ? "mirror averaging" : "no mirror averaging", peer.count("version") ? peer.at("version").c_str() : "",
                  peer.count("simd") ? peer.at("simd").c_str() : "?", peer.count("multithread") ? peer.at("multithread").c_str() : "?",
                  peer_rate);
      for (int run_threads : {1, threads}) {
        torch::set_num_threads(run_threads);
        const TorchScriptBackbone backbone(settings.models / "faceapi_recognition.pt", options);
        end_to_end(settings, backbone, 1);  // warm-up
        const double rate = end_to_end(settings, backbone, 1);
        std::printf("  library, %d thread%s: %.1f photos/s, %.2fx face-api.js\n", run_threads, run_threads == 1 ? "" : "s",
                    rate, rate / peer_rate);
        if (threads == 1) break;
      }
      return 0;
    }
    for (int run_threads : {threads, 1}) {
      torch::set_num_threads(run_threads);
      const TorchScriptBackbone backbone(settings.models / "faceapi_recognition.pt", options);
      end_to_end(settings, backbone, 1);  // warm-up: the first calls of each network compile it
      stage_breakdown(settings, backbone);
      const double pipelined = end_to_end(settings, backbone, 1);
      const double in_turn = end_to_end(settings, backbone, 0);
      std::printf("end to end (ImageEmbedder), %d threads: %.1f photos/s with a preparing thread, %.1f photos/s in turn: %.2fx\n\n",
                  run_threads, pipelined, in_turn, pipelined / in_turn);
      if (threads == 1) break;
    }
  } catch (const std::exception& e) {
    std::cerr << "pipeline_breakdown: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
