// open_set: does a gallery keep strangers out? Open-set identification (1:N) measured as NIST's
// FRVT 1:N measures it, and the calibration that lets a gallery choose its own threshold.
//
// A folder of identities (ROOT/<person>/<photos>) is split by a seeded hash of each name
// (--share, --seed) into calibration people and test people; the two commands never share one.
//
// `calibrate` embeds the calibration people's photos and simulates strangers searching
// galleries of every size, writing MODEL.open-set.json: distance statistics only (no images, no
// embeddings). `Gallery::identify` and `gallery identify` read the threshold for their
// gallery's size and a target FPIR from it. Use it on LFW (the default model's file is made
// so: tools/make-open-set-calibration.sh) or on your own photos (--share 1 takes everyone).
//
// `benchmark` enrolls test people (the first --enroll photos of each) into galleries of several
// sizes (--sizes; "all" is every test person with more than --enroll photos) and one padded
// with one-photo people as distractors (--distractor-gallery, as MegaFace does), then searches
// with their other photos (mated) and with never-enrolled people (non-mated: one-photo people
// not used as distractors, and people with several photos held out whole). Reports rank-1 and
// rank-5; FNIR at FPIR 0.1%, 1% and 10% with the threshold each needs, for each rule and
// template; the calibration's predicted threshold beside the FPIR it gives; det.csv and det.png.
//
// Models needed: models/faceapi_recognition.pt with its detector and landmark models
// (tools/setup-models.sh), or another backbone given with --model.
//
// Usage: open_set calibrate --people ROOT [--share 0.2] [--seed 1] [--searches 100000]
//        open_set benchmark --people ROOT [--enroll 1] [--sizes 100,1000,all] [--out DIR]
// (open_set COMMAND --help lists every option with its default.)

#include "example_main.hpp"
#include "plot.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <random>
#include <sstream>

namespace {

struct Arguments {
  std::string model = "models/faceapi_recognition.pt", people, out = ".", cache, output, device = "auto";
  double share = 0.2, fpir = 0.01, confidence = 0.99;
  std::uint64_t seed = 1;
  std::size_t searches = 100000, enroll = 1, probes_per_person = 3, distractor_gallery = 4000;
  std::vector<std::string> sizes{"100", "1000", "all"};
};

using siamese::eval::OpenSetSearches;
using Person = siamese::train::IdentityFolder::Person;

// Embeds face-dataset photos (the central face; the image centre where none is found), each
// distinct file once, through an optional cache file.
class PhotoEmbedder {
 public:
  explicit PhotoEmbedder(const Arguments& args)
      : backbone_(args.model, backbone_options(args)),
        images_(backbone_, example::dataset_pipeline(std::filesystem::path(args.model).parent_path(),
                                                     backbone_.input_spec().height, backbone_.device())),
        cache_(args.cache) {
    images_.set_progress(siamese::stderr_progress());
    if (!cache_.empty()) images_.load_cache(cache_, backbone_.metadata().name);
  }

  /// Row i for photos[i].
  torch::Tensor embed(const std::vector<std::filesystem::path>& photos) {
    auto rows = images_.embed_files(photos);
    if (!cache_.empty()) images_.save_cache(cache_, backbone_.metadata().name);
    return rows;
  }

  const siamese::BackboneMetadata& metadata() const { return backbone_.metadata(); }

 private:
  static siamese::BackboneOptions backbone_options(const Arguments& args) {
    siamese::BackboneOptions options;
    options.device = siamese::Device::parse(args.device);
    return options;
  }

  siamese::TorchScriptBackbone backbone_;
  siamese::ImageEmbedder<> images_;
  std::string cache_;
};

std::vector<Person> people_on_side(const Arguments& args, bool calibration_side) {
  std::vector<Person> side;
  const siamese::train::IdentityFolder folder(args.people);
  for (const auto& person : folder.people()) {
    if (siamese::eval::is_calibration_person(person.name, args.share, args.seed) == calibration_side) side.push_back(person);
  }
  if (side.empty()) {
    throw siamese::Error("no person of '" + args.people + "' falls on the " + (calibration_side ? "calibration" : "test") +
                         " side of --share " + std::to_string(args.share));
  }
  return side;
}

int calibrate(const Arguments& args, const std::string& command_line) {
  const auto people = people_on_side(args, /*calibration_side=*/true);
  std::vector<std::filesystem::path> photos;
  std::vector<std::int64_t> person_of_row;
  for (std::size_t p = 0; p < people.size(); ++p) {
    for (const auto& photo : people[p].images) {
      photos.push_back(photo);
      person_of_row.push_back(static_cast<std::int64_t>(p));
    }
  }
  PhotoEmbedder embedder(args);
  const auto rows = embedder.embed(photos);
  siamese::eval::OpenSetCalibrationOptions options;
  options.seed = args.seed;
  options.searches = args.searches;
  options.confidence = args.confidence;
  options.made_by = command_line;
  const auto c = siamese::eval::calibrate_open_set(rows, person_of_row, embedder.metadata().name, options);
  const auto file = args.output.empty() ? siamese::open_set_calibration_path_for(args.model) : std::filesystem::path(args.output);
  siamese::save_open_set_calibration(c, file);
  std::cout << std::fixed << std::setprecision(4) << "calibration      " << c.people << " people, " << c.photos
            << " photos (share " << args.share << ", seed " << args.seed << ")\n"
            << "1:1 impostors    " << c.impostor_pairs << " pairs, median distance " << c.reference_distance << '\n';
  for (std::size_t i = 0; i < c.far_levels.size(); ++i) {
    std::cout << "  FAR " << std::setw(8) << std::scientific << std::setprecision(1) << c.far_levels[i] << std::fixed
              << std::setprecision(4) << "  at distance " << c.far_distances[i] << '\n';
  }
  std::cout << "1:N strangers    " << c.searches << " searches per gallery size on each of " << c.resamplings
            << " resamplings of the strangers; threshold at FPIR " << args.fpir << " (holding for " << c.confidence * 100
            << "% of them):\n";
  for (const auto n : c.gallery_sizes) {
    std::cout << "  " << std::setw(6) << n << " people  distance " << threshold_for(c, siamese::OpenSetRule::nearest_distance, n, args.fpir).threshold
              << "  ratio " << threshold_for(c, siamese::OpenSetRule::distance_ratio, n, args.fpir).threshold << '\n';
  }
  std::cout << "wrote            " << file.string() << '\n';
  return 0;
}

// One gallery of the benchmark: who is enrolled, who searches.
struct Protocol {
  std::string label;
  std::vector<std::size_t> mated, distractors;  ///< indexes into the test's people
  std::vector<std::filesystem::path> mated_probes, nonmated_probes;
  std::vector<std::size_t> mated_probe_person;  ///< position in `mated`
};

struct Template {
  std::string name;
  siamese::PersonDistance distance;
};

// The searches of `protocol` against a gallery of its people (distances to templates, or to
// the nearest photo) under `decision`'s rule; the threshold does not matter, only the scores.
OpenSetSearches run_searches(const Protocol& protocol, const std::vector<Person>& people, std::size_t enroll,
                             siamese::PersonDistance distance, const siamese::OpenSetDecision& decision,
                             const std::map<std::string, torch::Tensor>& rows_of, const siamese::BackboneMetadata& model) {
  siamese::Gallery gallery(model.name, model.embedding_size);
  gallery.set_person_distance(distance);
  std::vector<siamese::Enrollment> batch;
  const auto enrolled_rows = [&](const Person& person, std::size_t count) {
    std::vector<torch::Tensor> rows;
    for (std::size_t i = 0; i < count; ++i) rows.push_back(rows_of.at(person.images[i].string()));
    return torch::stack(rows);
  };
  for (const auto p : protocol.mated) batch.push_back({people[p].name, enrolled_rows(people[p], enroll), {}});
  for (const auto p : protocol.distractors) batch.push_back({people[p].name, enrolled_rows(people[p], 1), {}});
  gallery.enroll(batch);
  const auto stack = [&](const std::vector<std::filesystem::path>& photos) {
    std::vector<torch::Tensor> rows;
    for (const auto& photo : photos) rows.push_back(rows_of.at(photo.string()));
    return torch::stack(rows);
  };
  OpenSetSearches searches;
  const auto mated = gallery.identify(stack(protocol.mated_probes), 5, decision);
  for (std::size_t i = 0; i < mated.size(); ++i) {
    const auto& mate = people[protocol.mated[protocol.mated_probe_person[i]]].name;
    std::size_t rank = 0;
    for (std::size_t r = 0; r < mated[i].candidates.size() && rank == 0; ++r) rank = mated[i].candidates[r].person == mate ? r + 1 : 0;
    searches.mated_scores.push_back(mated[i].score);
    searches.mate_ranks.push_back(rank);
  }
  for (const auto& found : gallery.identify(stack(protocol.nonmated_probes), 1, decision)) searches.nonmated_scores.push_back(found.score);
  return searches;
}

std::vector<Protocol> make_protocols(const Arguments& args, const std::vector<Person>& people) {
  std::vector<std::size_t> several, single;  // people with more than --enroll photos; with one photo
  std::vector<std::size_t> too_few;          // 2..enroll photos: strangers only
  for (std::size_t p = 0; p < people.size(); ++p) {
    (people[p].images.size() > args.enroll ? several : people[p].images.size() == 1 ? single : too_few).push_back(p);
  }
  std::mt19937_64 rng(args.seed);
  std::shuffle(several.begin(), several.end(), rng);
  std::shuffle(single.begin(), single.end(), rng);
  const auto first_photo = [&](std::size_t p) { return people[p].images.front(); };
  const auto make = [&](std::size_t mated_count, std::size_t distractor_count) {
    Protocol protocol;
    protocol.mated.assign(several.begin(), several.begin() + static_cast<std::ptrdiff_t>(mated_count));
    protocol.distractors.assign(single.begin(), single.begin() + static_cast<std::ptrdiff_t>(distractor_count));
    for (std::size_t m = 0; m < protocol.mated.size(); ++m) {
      const auto& images = people[protocol.mated[m]].images;
      for (std::size_t i = args.enroll; i < std::min(images.size(), args.enroll + args.probes_per_person); ++i) {
        protocol.mated_probes.push_back(images[i]);
        protocol.mated_probe_person.push_back(m);
      }
    }
    for (std::size_t i = distractor_count; i < single.size(); ++i) protocol.nonmated_probes.push_back(first_photo(single[i]));
    for (std::size_t i = mated_count; i < several.size(); ++i) protocol.nonmated_probes.push_back(first_photo(several[i]));
    for (const auto p : too_few) protocol.nonmated_probes.push_back(first_photo(p));
    std::ostringstream label;
    label << mated_count + distractor_count << " people";
    if (distractor_count > 0) label << " (" << distractor_count << " distractors)";
    protocol.label = label.str();
    return protocol;
  };
  std::vector<Protocol> protocols;
  for (const auto& size : args.sizes) {
    const std::size_t n = size == "all" ? several.size() : std::min<std::size_t>(std::stoul(size), several.size());
    if (n == 0) throw siamese::Error("no test person has more than " + std::to_string(args.enroll) + " photos");
    protocols.push_back(make(n, 0));
  }
  // Padded with distractors, keeping at least a tenth of the one-photo people as strangers.
  if (args.distractor_gallery > several.size()) {
    const auto distractors = std::min(args.distractor_gallery - several.size(), single.size() - single.size() / 10);
    if (distractors > 0) protocols.push_back(make(several.size(), distractors));
  }
  return protocols;
}

int benchmark(const Arguments& args) {
  const auto calibration = siamese::load_open_set_calibration_for(args.model, siamese::TorchScriptBackbone(args.model).metadata().name);
  if (!calibration) {
    throw siamese::UncalibratedModelError("'" + args.model + "' has no open-set calibration (" +
                                          siamese::open_set_calibration_path_for(args.model).string() +
                                          "): run `open_set calibrate --model " + args.model + " --people ROOT` first");
  }
  const auto people = people_on_side(args, /*calibration_side=*/false);
  const auto protocols = make_protocols(args, people);
  std::vector<std::filesystem::path> photos;
  for (const auto& protocol : protocols) {
    for (const auto p : protocol.mated) photos.insert(photos.end(), people[p].images.begin(), people[p].images.begin() + static_cast<std::ptrdiff_t>(args.enroll));
    for (const auto p : protocol.distractors) photos.push_back(people[p].images.front());
    photos.insert(photos.end(), protocol.mated_probes.begin(), protocol.mated_probes.end());
    photos.insert(photos.end(), protocol.nonmated_probes.begin(), protocol.nonmated_probes.end());
  }
  std::sort(photos.begin(), photos.end());
  photos.erase(std::unique(photos.begin(), photos.end()), photos.end());
  PhotoEmbedder embedder(args);
  const auto rows = embedder.embed(photos);
  std::map<std::string, torch::Tensor> rows_of;
  for (std::size_t i = 0; i < photos.size(); ++i) rows_of.emplace(photos[i].string(), rows[static_cast<std::int64_t>(i)]);

  // With one photo per person a template is that photo: one way to measure.
  std::vector<Template> templates{{"template", siamese::PersonDistance::template_mean}};
  if (args.enroll > 1) templates.push_back({"nearest", siamese::PersonDistance::nearest_photo});
  const std::vector<double> levels{0.001, 0.01, 0.1};
  std::filesystem::create_directories(args.out);
  std::ofstream csv(std::filesystem::path(args.out) / "det.csv");
  csv << "gallery,template,rule,threshold,fpir,fnir\n" << std::setprecision(8);
  std::vector<example::PlotSeries> det_series;
  std::cout << std::fixed << std::setprecision(4) << "model            " << embedder.metadata().name << "; " << args.enroll
            << " photo(s) enrolled per person; open-set calibration of " << calibration->people << " other people\n";
  for (const auto& protocol : protocols) {
    std::cout << "\ngallery " << protocol.label << ": " << protocol.mated_probes.size() << " mated searches, "
              << protocol.nonmated_probes.size() << " non-mated\n";
    for (const auto& templ : templates) {
      for (const auto rule : {siamese::OpenSetRule::nearest_distance, siamese::OpenSetRule::distance_ratio}) {
        siamese::OpenSetDecision decision;
        decision.rule = rule;
        decision.reference_distance = calibration->reference_distance;
        const auto searches = run_searches(protocol, people, args.enroll, templ.distance, decision, rows_of, embedder.metadata());
        if (rule == siamese::OpenSetRule::nearest_distance) {
          std::cout << "  " << templ.name << ": rank-1 " << siamese::eval::rank_accuracy(searches, 1) << ", rank-5 "
                    << siamese::eval::rank_accuracy(searches, 5) << '\n';
        }
        std::cout << "  " << std::left << std::setw(10) << templ.name << std::setw(17) << to_string(rule) << std::right;
        for (const double level : levels) {
          const auto point = siamese::eval::fnir_at_fpir(searches, level);
          std::cout << "  FNIR " << point.fnir << " @ FPIR " << std::setprecision(3) << level << std::setprecision(4) << " (t "
                    << point.threshold << ")";
        }
        std::cout << '\n';
        if (templ.distance == siamese::PersonDistance::template_mean) {
          // The threshold the gallery would choose for itself, against what it gives.
          std::cout << "    calibrated:";
          for (const double level : levels) {
            const auto chosen = threshold_for(*calibration, rule, protocol.mated.size() + protocol.distractors.size(), level);
            const auto point = siamese::eval::open_set_point(searches, chosen.threshold);
            std::cout << "  t " << chosen.threshold << " -> FPIR " << point.fpir << " (target " << std::setprecision(3) << level
                      << std::setprecision(4) << "), FNIR " << point.fnir << (chosen.extrapolated ? " (extrapolated)" : "");
          }
          std::cout << '\n';
        }
        example::PlotSeries series{{}, example::series_colour(det_series.size()), protocol.label};
        for (const auto& point : siamese::eval::det_curve(searches)) {
          csv << '"' << protocol.label << "\"," << templ.name << ',' << to_string(rule) << ',' << point.threshold << ','
              << point.fpir << ',' << point.fnir << '\n';
          series.points.emplace_back(point.fpir, point.fnir);
        }
        if (templ.distance == siamese::PersonDistance::template_mean && rule == siamese::OpenSetRule::distance_ratio) {
          det_series.push_back(std::move(series));
        }
      }
    }
  }
  if (!csv) throw siamese::FileError("cannot write '" + (std::filesystem::path(args.out) / "det.csv").string() + "'");
  example::PlotAxes axes{embedder.metadata().name + ", distance-ratio rule", "false positive identification rate (log scale)",
                         "false negative identification rate", /*log_x=*/true, 1e-3, /*legend_at_top=*/true};
  example::draw_plot(axes, det_series, {}, std::filesystem::path(args.out) / "det.png");
  std::cout << "\nwrote            " << (std::filesystem::path(args.out) / "det.csv").string() << ", "
            << (std::filesystem::path(args.out) / "det.png").string() << '\n';
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("Open-set identification (1:N): calibrate a model's thresholds and measure FNIR at FPIR.", "open_set");
  example::configure(app);
  app.require_subcommand(1);
  Arguments args;
  const auto common = [&](CLI::App* command) {
    command->add_option("--people", args.people, "folder of identities, ROOT/<person>/<photo>")->required();
    command->add_option("--model", args.model, "backbone file; its detector and landmark models beside it");
    example::add_device_option(*command, args.device);
    command->add_option("--share", args.share, "share of people (by a seeded hash of the name) on the calibration side")
        ->check(CLI::Range(0.0, 1.0));
    command->add_option("--seed", args.seed, "seed of the split and of the draws");
    command->add_option("--cache", args.cache, "embedding cache file, read and written");
  };
  auto* calibrate_command = app.add_subcommand("calibrate", "write MODEL.open-set.json from the calibration side's people");
  common(calibrate_command);
  calibrate_command->add_option("--searches", args.searches, "simulated stranger searches per gallery size")
      ->check(CLI::Range(1000, 100000000));
  calibrate_command->add_option("--confidence", args.confidence,
                                "share of resamplings of the strangers each threshold must hold for")
      ->check(CLI::Range(0.5, 0.999));
  calibrate_command->add_option("--output", args.output, "where to write the calibration")->default_str("MODEL.open-set.json");
  calibrate_command->add_option("--fpir", args.fpir, "FPIR whose thresholds are printed")->check(CLI::Range(1e-4, 0.5));
  auto* benchmark_command = app.add_subcommand("benchmark", "FNIR at FPIR, rank-1 and DET curves on the test side's people");
  common(benchmark_command);
  benchmark_command->add_option("--enroll", args.enroll, "photos enrolled per person")->check(CLI::Range(1, 1000));
  benchmark_command->add_option("--sizes", args.sizes, "mated gallery sizes; 'all': every person with enough photos")
      ->delimiter(',')
      ->check([](const std::string& size) {
        const bool number = !size.empty() && size.size() < 10 && std::all_of(size.begin(), size.end(), ::isdigit) && std::stoul(size) > 0;
        return size == "all" || number ? std::string() : "a gallery size is a positive number or 'all', got '" + size + "'";
      });
  benchmark_command->add_option("--distractor-gallery", args.distractor_gallery,
                                "people in a gallery padded with one-photo distractors (0: none)");
  benchmark_command->add_option("--probes-per-person", args.probes_per_person, "mated searches per enrolled person at most")
      ->check(CLI::Range(1, 1000));
  benchmark_command->add_option("--out", args.out, "where det.csv and det.png go");

  std::string command_line = "open_set";
  for (int i = 1; i < argc; ++i) command_line += std::string(" ") + argv[i];
  return example::run_main(app, argc, argv, [&] {
    if (*calibrate_command) return calibrate(args, command_line);
    return benchmark(args);
  });
}
