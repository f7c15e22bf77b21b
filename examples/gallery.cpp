// gallery: enroll people and identify faces (1:N).
//
// A gallery file holds people and the embeddings of their enrolled photos, tagged with the
// model that made them. Faces are found and aligned as in verify_pair; identification ranks
// people by their nearest enrolled embedding and answers "unknown" beyond the distance
// threshold (the model's calibration when there is one, else its metadata's threshold).
// `benchmark` enrolls the first photos of each person in a folder of identities and
// identifies the held-back ones: rank-1 accuracy, and the rejection rate of people never
// enrolled.
//
// Models needed: models/faceapi_recognition.pt with its detector and landmark models
// (tools/setup-models.sh), or another backbone given with --model.
//
// Usage: gallery enroll DB NAME PHOTO...        gallery identify DB PHOTO [--k 5]
//        gallery list DB                        gallery remove DB NAME
//        gallery rename DB OLD NEW              gallery benchmark --people ROOT [--enroll 2]
//        options: --model M (default models/faceapi_recognition.pt) --threshold T

#include "example_main.hpp"

#include <iomanip>
#include <iostream>

namespace {

constexpr const char* usage =
    "usage: gallery enroll DB NAME PHOTO...\n"
    "       gallery identify DB PHOTO [--k 5]\n"
    "       gallery list DB\n"
    "       gallery remove DB NAME\n"
    "       gallery rename DB OLD NEW\n"
    "       gallery benchmark --people ROOT [--enroll 2] [--max-people N]\n"
    "  options: --model M (default models/faceapi_recognition.pt), --threshold T (distance)\n";

struct Arguments {
  std::vector<std::string> positional;
  std::string model = "models/faceapi_recognition.pt";
  std::string people;
  std::size_t k = 5, enroll = 2, max_people = 300;
  double threshold = -1.0;
};

Arguments parse(int argc, char** argv) {
  Arguments a;
  for (example::Flags flags(argc, argv); flags.next();) {
    const std::string arg = flags.arg();
    auto value = [&] { return flags.value(); };
    if (arg == "--model") a.model = value();
    else if (arg == "--people") a.people = value();
    else if (arg == "--k") a.k = std::stoul(value());
    else if (arg == "--enroll") a.enroll = std::stoul(value());
    else if (arg == "--max-people") a.max_people = std::stoul(value());
    else if (arg == "--threshold") a.threshold = std::stod(value());
    else if (arg == "-h" || arg == "--help") { std::cout << usage; std::exit(0); }
    else if (arg.rfind("--", 0) == 0) throw std::invalid_argument("unknown option '" + arg + "'");
    else a.positional.push_back(arg);
  }
  if (a.positional.empty()) throw std::invalid_argument("missing command");
  const auto& command = a.positional[0];
  const std::size_t n = a.positional.size();
  const bool ok = (command == "enroll" && n >= 4) || (command == "identify" && n == 3) || (command == "list" && n == 2) ||
                  (command == "remove" && n == 3) || (command == "rename" && n == 4) || (command == "benchmark" && n == 1 && !a.people.empty());
  if (!ok) throw std::invalid_argument("wrong arguments for '" + command + "'");
  return a;
}

// The model, its face pipeline and its threshold, loaded only by the commands that embed.
struct Embedder {
  /// `dataset`: photos are face-dataset images (LFW-style): the central face, and the image
  /// centre where no face is found.
  Embedder(const Arguments& args, bool dataset)
      : net(siamese::load_face_verifier(args.model)),
        pipeline(make_pipeline(args.model, net.backbone().input_spec().height, dataset)),
        threshold(args.threshold > 0 ? args.threshold : net.head()->distance_at(net.decision_threshold())) {}

  static siamese::FacePipeline make_pipeline(const std::string& model, int chip, bool dataset) {
    siamese::FacePipelineOptions options;
    options.chip_size = chip;
    options.center_fallback = dataset;
    if (dataset) options.policy = siamese::FacePolicy::central;
    return siamese::FacePipeline::from_models(std::filesystem::path(model).parent_path(), options);
  }

  torch::Tensor embed(const std::vector<std::string>& photos) {
    return images.embed_files(std::vector<std::filesystem::path>(photos.begin(), photos.end()));
  }

  siamese::FaceVerifier net;
  siamese::FacePipeline pipeline;
  siamese::ImageEmbedder<> images{net.backbone(), &pipeline};
  double threshold;
};

siamese::Gallery open_or_create(const std::string& file, const siamese::FaceVerifier& net) {
  const auto& m = net.backbone().metadata();
  if (!std::filesystem::exists(file)) return siamese::Gallery(m.name, m.embedding_size);
  auto gallery = siamese::Gallery::load(file);
  gallery.check_model(m.name, m.embedding_size);
  return gallery;
}

int benchmark(const Arguments& args) {
  Embedder embedder(args, /*dataset=*/true);
  siamese::train::IdentityFolder folder(args.people);
  siamese::Gallery gallery(embedder.net.backbone().metadata().name, embedder.net.backbone().metadata().embedding_size);
  std::vector<std::pair<std::string, std::string>> probes, strangers;  // (photo, true person)
  std::size_t enrolled = 0;
  for (const auto& person : folder.people()) {
    if (person.images.size() > args.enroll && enrolled < args.max_people) {
      std::vector<std::string> photos;
      for (std::size_t i = 0; i < args.enroll; ++i) photos.push_back(person.images[i].string());
      gallery.enroll(person.name, embedder.embed(photos));
      probes.emplace_back(person.images[args.enroll].string(), person.name);
      ++enrolled;
    } else if (person.images.size() == 1 && strangers.size() < args.max_people) {
      strangers.emplace_back(person.images[0].string(), "unknown");
    }
  }
  auto run = [&](const std::vector<std::pair<std::string, std::string>>& set, bool known_people) {
    std::vector<std::string> photos;
    for (const auto& p : set) photos.push_back(p.first);
    const auto found = gallery.identify(embedder.embed(photos), args.k, embedder.threshold);
    std::size_t right = 0;
    for (std::size_t i = 0; i < set.size(); ++i) {
      right += known_people ? found[i].candidates.front().person == set[i].second : !found[i].known;
    }
    return static_cast<double>(right) / static_cast<double>(set.size());
  };
  const double rank1 = run(probes, true);
  const double rejected = run(strangers, false);
  std::cout << std::fixed << std::setprecision(4) << "gallery          " << gallery.people().size() << " people, "
            << gallery.size() << " embeddings (" << args.enroll << " photos each)\n"
            << "rank-1 accuracy  " << rank1 << " on " << probes.size() << " held-back photos of enrolled people\n"
            << "unknown rejected " << rejected << " of " << strangers.size() << " people never enrolled, at distance "
            << embedder.threshold << '\n';
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return example::main_with_usage("gallery", usage, argc, argv, parse, [](const Arguments& args) {
    const auto& command = args.positional[0];
    if (command == "benchmark") return benchmark(args);
    const std::string db = args.positional[1];
    if (command == "list" || command == "remove" || command == "rename") {
      auto gallery = siamese::Gallery::load(db);
      if (command == "list") {
        std::cout << "model " << gallery.model_name() << ", " << gallery.size() << " embeddings\n";
        for (const auto& [person, count] : gallery.people()) std::cout << person << '\t' << count << '\n';
        return 0;
      }
      const bool changed = command == "remove" ? gallery.remove(args.positional[2])
                                               : gallery.rename(args.positional[2], args.positional[3]);
      if (!changed) {
        std::cerr << "gallery: no person '" << args.positional[2] << "' in " << db << '\n';
        return 1;
      }
      gallery.save(db);
      std::cout << command << "d " << args.positional[2] << '\n';
      return 0;
    }
    Embedder embedder(args, /*dataset=*/false);
    auto gallery = open_or_create(db, embedder.net);
    if (command == "enroll") {
      const std::vector<std::string> photos(args.positional.begin() + 3, args.positional.end());
      gallery.enroll(args.positional[2], embedder.embed(photos));
      gallery.save(db);
      std::cout << "enrolled " << args.positional[2] << " with " << photos.size() << " photo(s); " << gallery.people().size()
                << " people in " << db << '\n';
      return 0;
    }
    const auto found = gallery.identify(embedder.embed({args.positional[2]}), args.k, embedder.threshold).front();
    std::cout << std::fixed << std::setprecision(4) << "answer: " << found.best() << " (threshold " << embedder.threshold << ")\n";
    for (const auto& m : found.candidates) std::cout << "  " << m.person << "\tdistance " << m.distance << '\n';
    return 0;
  });
}
