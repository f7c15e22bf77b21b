// evaluate: how well does a model verify faces on a labelled pair list?
//
// Embeds every distinct image of an LFW pair file (pairs.txt, pairsDevTrain.txt, ...) or a CSV
// (path_a,path_b,label) once, in batches, through the face pipeline (detection, 68 landmarks,
// dlib-template alignment), then prints ROC AUC, EER, best accuracy, TAR at FAR 1e-2 and
// 1e-3, and, for files with folds, the LFW protocol's 10-fold accuracy (threshold chosen on 9
// folds, measured on the 10th). Writes roc.csv and roc.png (FAR on a logarithmic axis, TAR at
// FAR 1e-3 and 1e-2 marked). Progress goes to standard error. With --calibrate it also fits the
// head's w, b to these pairs, picks a threshold (for a target FAR, or best accuracy), prints
// the Brier score and a reliability table, and saves MODEL.calibration.json, which
// verify_pair and load_face_verifier() then use; without --calibrate, a model that has such a
// file also gets its accuracy at the saved threshold (chosen on other pairs) printed.
//
// Models needed: the backbone (models/faceapi_recognition.pt) and, beside it, the detector and
// landmark models from tools/setup-models.sh (else the Haar cascade and box crops are used).
//
// Usage: evaluate --model M --pairs FILE --root DIR [--out DIR] [--mirror] [--batch N]
//                 [--mirror-landmarks] [--jitters N] [--every-detector-size]
//                 [--precision float32|bfloat16|float16] [--cropped] [--linear-far]
//                 [--calibrate far=0.001|accuracy]
// (evaluate --help lists every option with its default.)

#include "example_main.hpp"
#include "plot.hpp"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>

namespace {

struct Arguments {
  std::string model, pairs, root, out = ".", calibrate, precision = "float32", device = "auto",
              rotations = "when-needed";
  bool mirror = false, mirror_landmarks = false, cropped = false, linear_far = false, every_detector_size = false;
  int jitters = 0;
  std::size_t batch = 32;
};

void add_arguments(CLI::App& app, Arguments& a) {
  app.add_option("--model", a.model, "backbone file")->required();
  app.add_option("--pairs", a.pairs, "LFW pair file (pairs.txt, pairsDevTest.txt, ...) or CSV path_a,path_b,label")->required();
  app.add_option("--root", a.root, "folder the pair file's images are in")->required();
  app.add_option("--out", a.out, "where roc.csv and roc.png go");
  example::add_device_option(app, a.device);
  example::add_rotation_option(app, a.rotations);
  app.add_option("--batch", a.batch, "images per backbone call")->check(CLI::Range(1, 4096));
  app.add_flag("--mirror", a.mirror, "average each embedding with its mirror image's");
  app.add_flag("--mirror-landmarks", a.mirror_landmarks, "average the landmarks with the mirror image's before aligning");
  app.add_option("--jitters", a.jitters, "also average N jittered copies of each chip (dlib's jitter_image)")
      ->check(CLI::Range(0, 1000));
  app.add_flag("--every-detector-size", a.every_detector_size,
               "run the face detector at every input size and merge (slower, more precise boxes) "
               "instead of coarse to fine");
  app.add_option("--precision", a.precision,
                 "backbone arithmetic: float32, bfloat16 (CUDA, or a CPU with AVX512-BF16 or AMX) or float16 (CUDA)")
      ->check([](const std::string& value) -> std::string {
        try {
          siamese::parse_precision(value);
          return "";
        } catch (const siamese::Error& e) {
          return e.what();
        }
      });
  app.add_flag("--cropped", a.cropped, "images are aligned crops: no detection, the centre is the face");
  app.add_flag("--linear-far", a.linear_far, "draw the ROC with a linear FAR axis instead of a logarithmic one");
  app.add_option("--calibrate", a.calibrate, "fit the head and a threshold on these pairs (far=0.001 or accuracy); "
                                             "save MODEL.calibration.json")
      ->check([](const std::string& value) -> std::string {
        if (value == "accuracy") return "";
        try {
          std::size_t used = 0;
          const double far = value.rfind("far=", 0) == 0 ? std::stod(value.substr(4), &used) : -1.0;
          if (used == value.size() - 4 && far > 0.0 && far < 1.0) return "";
        } catch (const std::logic_error&) {
        }
        return "takes far=VALUE (0 < VALUE < 1) or accuracy, got '" + value + "'";
      });
}

void write_roc_csv(const siamese::eval::VerificationReport& report, const std::filesystem::path& file) {
  std::ofstream out(file);
  out << "threshold,far,tar\n" << std::setprecision(8);
  for (const auto& p : report.roc) out << p.threshold << ',' << p.far << ',' << p.tar << '\n';
  if (!out) throw siamese::FileError("cannot write '" + file.string() + "'");
}

void draw_roc(const siamese::eval::VerificationReport& report, const std::string& title, bool log_far,
              const std::filesystem::path& file) {
  // FAR 0 (below one false accept in the pair list) sits at the left edge of the log axis.
  example::PlotSeries roc{{}, example::series_colour(0), cv::format("ROC, AUC = %.4f", report.auc)};
  for (const auto& p : report.roc) roc.points.emplace_back(p.far, p.tar);
  std::vector<example::PlotMark> marks;
  for (const auto& [far, tar] : {std::pair{1e-3, report.tar_at_far_1e3}, std::pair{1e-2, report.tar_at_far_1e2}}) {
    marks.push_back({{far, tar}, cv::format("TAR %.4f @ FAR %.0e", tar, far)});
  }
  if (!log_far) roc.points.insert(roc.points.begin(), {0.0, 0.0});
  std::vector<example::PlotSeries> series{roc};
  if (!log_far) series.push_back({{{0.0, 0.0}, {1.0, 1.0}}, cv::Scalar::all(200), "chance"});
  example::PlotAxes axes{title, log_far ? "false accept rate (log scale)" : "false accept rate", "true accept rate", log_far,
                         1e-4, /*legend_at_top=*/false};
  example::draw_plot(axes, series, marks, file);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("How well does a model verify faces on a labelled pair list? ROC, AUC, EER, TAR at FAR, "
               "10-fold accuracy; roc.csv and roc.png.",
               "evaluate");
  example::configure(app);
  Arguments args;
  add_arguments(app, args);
  return example::run_main(app, argc, argv, [&] {
    using namespace siamese;
    const auto list = eval::parse_pairs(args.pairs, args.root);
    BackboneOptions options;
    options.device = Device::parse(args.device);
    options.precision = parse_precision(args.precision);
    TorchScriptBackbone backbone(args.model, options);
    std::optional<FacePipeline> pipeline;
    if (!args.cropped) {
      FacePipelineOptions face_options;
      face_options.chip_size = backbone.input_spec().height;
      face_options.center_fallback = true;  // pair lists hold face photos: never drop a pair
      face_options.policy = FacePolicy::central;  // the subject of a face dataset is centred
      face_options.mirror_landmarks = args.mirror_landmarks;
      face_options.coarse_to_fine_detection = !args.every_detector_size;
      face_options.rotation_search = parse_rotation_search(args.rotations);
      pipeline.emplace(FacePipeline::from_models(std::filesystem::path(args.model).parent_path(), face_options, options.device));
    }
    EmbedderOptions embed_options;
    embed_options.batch_size = args.batch;
    embed_options.mirror = args.mirror;
    embed_options.jitters = args.jitters;
    ImageEmbedder embedder(backbone, std::move(pipeline), embed_options);
    embedder.set_progress(stderr_progress());

    const auto images = eval::distinct_images(list);
    std::cerr << "evaluate: " << list.pairs.size() << " pairs, " << images.size() << " distinct images, "
              << torch::get_num_threads() << " threads, backbone in " << precision_name(backbone.precision()) << "\n";
    const auto start = std::chrono::steady_clock::now();
    const auto embeddings = embedder.embed_files(images);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::unordered_map<std::string, std::int64_t> row;
    for (std::size_t i = 0; i < images.size(); ++i) row[images[i].string()] = static_cast<std::int64_t>(i);
    std::vector<std::int64_t> ia, ib;
    std::vector<int> labels, folds;
    for (const auto& p : list.pairs) {
      ia.push_back(row.at(p.a.string()));
      ib.push_back(row.at(p.b.string()));
      labels.push_back(p.label);
      folds.push_back(p.fold);
    }
    const auto d = EuclideanDistance{}(embeddings.index_select(0, torch::tensor(ia)),
                                       embeddings.index_select(0, torch::tensor(ib)));
    const auto dd = d.squeeze(1).to(torch::kFloat64).contiguous();
    const std::vector<double> distances(dd.data_ptr<double>(), dd.data_ptr<double>() + dd.numel());
    const auto report = eval::evaluate_scores<EuclideanDistance>(distances, labels);
    const auto& stats = embedder.stats();

    std::cout << std::fixed << std::setprecision(4)
              << "model            " << backbone.metadata().name << (args.mirror ? " (+ mirror)" : "")
              << (args.mirror_landmarks ? " (+ mirror-averaged landmarks)" : "")
              << (args.jitters > 0 ? " (+ " + std::to_string(args.jitters) + " jitters)" : std::string()) << '\n'
              << "pairs            " << list.pairs.size() << " (" << report.same_pairs << " same, "
              << report.different_pairs << " different) from " << args.pairs << '\n'
              << "embedding        " << stats.embedded << " images in " << stats.backbone_calls
              << " backbone calls of up to " << args.batch * (args.mirror ? 2 : 1) << " chips, "
              << std::setprecision(1) << seconds << " s (" << stats.embedded / seconds
              << " photos/s end to end: read, decode, detect, align, embed)\n"
              << "faces            "
              << (!embedder.pipeline() ? "not detected: the images are face chips (--cropped)"
                  : embedder.pipeline()->options().coarse_to_fine_detection
                      ? "detected coarse to fine (input sizes smallest first; --every-detector-size merges them all)"
                      : "detected at every input size, merged (--every-detector-size)")
              << '\n'
              << std::setprecision(4)
              << "ROC AUC          " << report.auc << '\n'
              << "EER              " << report.eer << " at distance " << report.eer_threshold << '\n'
              << "best accuracy    " << report.best_accuracy << " at distance " << report.best_threshold << '\n'
              << "TAR @ FAR=1e-2   " << report.tar_at_far_1e2 << '\n'
              << "TAR @ FAR=1e-3   " << report.tar_at_far_1e3 << '\n';
    if (list.folds > 1) {
      const auto kfold = eval::kfold_accuracy<EuclideanDistance>(distances, labels, folds);
      std::cout << list.folds << "-fold accuracy  " << kfold.mean << " +- " << kfold.stddev << '\n';
    }
    std::filesystem::create_directories(args.out);
    write_roc_csv(report, std::filesystem::path(args.out) / "roc.csv");
    draw_roc(report, backbone.metadata().name + " on " + std::filesystem::path(args.pairs).filename().string(),
             !args.linear_far, std::filesystem::path(args.out) / "roc.png");
    std::cout << "wrote            " << (std::filesystem::path(args.out) / "roc.csv").string() << ", "
              << (std::filesystem::path(args.out) / "roc.png").string() << '\n';

    const auto calibration_file = eval::calibration_path_for(args.model);
    if (const auto c = args.calibrate.empty() ? eval::load_calibration_for(args.model, backbone.metadata().name)
                                              : std::nullopt) {
      // A threshold chosen on other pairs (e.g. --calibrate on a training list), measured here.
      std::size_t correct = 0;
      for (std::size_t i = 0; i < distances.size(); ++i) {
        correct += is_match<EuclideanDistance>(distances[i], c->distance_threshold) == (labels[i] == 1);
      }
      std::cout << "calibrated       accuracy " << static_cast<double>(correct) / distances.size() << " at distance "
                << c->distance_threshold << " (" << c->criterion << " on " << c->pairs << " other pairs, "
                << calibration_file.string() << ")\n";
    }
    if (!args.calibrate.empty()) {
      const auto head = eval::fit_sigmoid_head(distances, labels);
      eval::Calibration c;
      c.model_name = backbone.metadata().name;
      c.weight = head.weight;
      c.bias = head.bias;
      c.pairs = distances.size();
      if (args.calibrate == "accuracy") {
        c.criterion = "best-accuracy";
        c.distance_threshold = report.best_threshold;
      } else {
        const double target = std::stod(args.calibrate.substr(4));
        c.criterion = "far<=" + args.calibrate.substr(4);
        c.distance_threshold = eval::point_at_far(report, target).threshold;
      }
      std::size_t fa = 0, ta = 0;
      std::vector<double> probabilities;
      for (std::size_t i = 0; i < distances.size(); ++i) {
        const bool accept = is_match<EuclideanDistance>(distances[i], c.distance_threshold);
        (labels[i] ? ta : fa) += accept;
        probabilities.push_back(1.0 / (1.0 + std::exp(-(c.weight * distances[i] + c.bias))));
      }
      c.far = static_cast<double>(fa) / report.different_pairs;
      c.tar = static_cast<double>(ta) / report.same_pairs;
      c.brier = eval::brier_score(probabilities, labels);
      const auto& file = calibration_file;
      eval::save_calibration(c, file);
      std::cout << "calibration      p = sigmoid(" << c.weight << " * d + " << c.bias << "), Brier " << c.brier
                << "\n                 threshold " << c.distance_threshold << " (" << c.criterion << "): FAR "
                << c.far << ", TAR " << c.tar << "\n                 saved to " << file.string() << '\n'
                << "reliability      predicted  observed  pairs\n";
      for (const auto& bin : eval::reliability_table(probabilities, labels)) {
        if (bin.count == 0) continue;
        std::cout << "  " << std::setprecision(1) << bin.low << "-" << bin.high << std::setprecision(4) << "      "
                  << bin.mean_probability << "    " << bin.observed_rate << "    " << bin.count << '\n';
      }
    }
    return 0;
  });
}
