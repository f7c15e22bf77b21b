// gallery: enroll people and identify faces (1:N).
//
// A gallery database (SQLite) holds people and the embeddings of their enrolled photos, tagged
// with the model that made them. Every enroll, remove and rename is a transaction of its own,
// so many `gallery` processes may change one gallery at once and none loses another's work.
// Faces are found and aligned as in verify_pair; identification ranks people by their nearest
// enrolled embedding and answers "unknown" beyond the distance threshold (the model's
// calibration when there is one, else its metadata's threshold; a model with neither, such as
// the pretrained InceptionV3, is refused unless --threshold is given). `export` and `import` move a
// gallery to and from the single checksummed file format. `benchmark` enrolls the first photos
// of each person in a folder of identities and identifies the held-back ones: rank-1 accuracy,
// and the rejection rate of people never enrolled.
//
// Models needed: models/faceapi_recognition.pt with its detector and landmark models
// (tools/setup-models.sh), or another backbone given with --model.
//
// Usage: gallery enroll DB NAME PHOTO...        gallery identify DB PHOTO [--k 5]
//        gallery list DB                        gallery remove DB NAME
//        gallery rename DB OLD NEW              gallery export DB FILE
//        gallery import FILE DB                 gallery benchmark --people ROOT [--enroll 2]
// (gallery --help and gallery COMMAND --help list every option with its default.)

#include "example_main.hpp"

#include <algorithm>
#include <chrono>
#include <iomanip>
#include <iostream>

namespace {

struct Arguments {
  std::string db, file, person, new_name, people;
  std::vector<std::string> photos;
  std::string model = "models/faceapi_recognition.pt";
  std::size_t k = 5, enroll = 2, max_people = 300;
  double threshold = -1.0;
};

// The distance beyond which a face is unknown: --threshold, else the model's calibration or
// published threshold. A model with neither cannot say who is who: refused, saying what to run.
double identification_threshold(const Arguments& args, const siamese::TorchScriptBackbone& backbone) {
  if (args.threshold > 0) return args.threshold;
  if (const auto decision = siamese::fitted_decision(args.model, backbone.metadata())) return decision->distance_threshold;
  throw siamese::UncalibratedModelError(siamese::uncalibrated_message(args.model, backbone.metadata()) +
                                        "; or give --threshold");
}

// The model, its face pipeline and, for the commands that answer who someone is, its
// threshold; loaded only by the commands that embed.
struct Embedder {
  /// `dataset`: photos are face-dataset images (LFW-style): the central face, and the image
  /// centre where no face is found. `identifies`: the command names people, so it needs a
  /// threshold (enrolling does not).
  Embedder(const Arguments& args, bool dataset, bool identifies)
      : backbone(args.model),
        threshold(identifies ? identification_threshold(args, backbone) : 0.0),
        images(backbone, make_pipeline(args.model, backbone.input_spec().height, dataset)) {
    images.set_progress(siamese::stderr_progress());
  }

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

  const siamese::BackboneMetadata& metadata() const { return backbone.metadata(); }

  siamese::TorchScriptBackbone backbone;
  double threshold;
  siamese::ImageEmbedder<> images;
};

int enroll(const Arguments& args) {
  Embedder embedder(args, /*dataset=*/false, /*identifies=*/false);
  const auto start = std::chrono::steady_clock::now();
  const auto embeddings = embedder.embed(args.photos);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<siamese::EnrolledPhoto> photos;
  for (const auto& photo : args.photos) {
    const auto bytes = siamese::read_file_bytes(photo, siamese::ImageLimits{}.max_file_bytes);
    photos.push_back({photo, siamese::content_hash(bytes).value});
  }
  auto gallery = siamese::Gallery::open(args.db, embedder.metadata().name, embedder.metadata().embedding_size);
  gallery.enroll(args.person, embeddings, photos);
  std::cout << "enrolled " << args.person << " with " << photos.size() << " photo(s) (" << std::fixed
            << std::setprecision(1) << photos.size() / std::max(seconds, 1e-9) << " photos/s end to end); "
            << gallery.people().size() << " people in " << args.db << '\n';
  return 0;
}

int identify(const Arguments& args) {
  Embedder embedder(args, /*dataset=*/false, /*identifies=*/true);
  const auto gallery = siamese::Gallery::open(args.db);
  gallery.check_model(embedder.metadata().name, embedder.metadata().embedding_size);
  const auto found = gallery.identify(embedder.embed({args.file}), args.k, embedder.threshold).front();
  // Whether the face is known is said in words no name can take: a person may be named "unknown".
  std::cout << std::fixed << std::setprecision(4);
  if (found.known) {
    std::cout << "known:  yes, within distance " << embedder.threshold << "\nperson: " << *found.best() << '\n';
  } else {
    std::cout << "known:  no, nobody within distance " << embedder.threshold << '\n';
  }
  for (const auto& m : found.candidates) std::cout << "  " << m.person << "\tdistance " << m.distance << '\n';
  return 0;
}

int list(const Arguments& args) {
  const auto gallery = siamese::Gallery::open(args.db);
  std::cout << "model " << gallery.model_name() << ", " << gallery.size() << " embeddings\n";
  for (const auto& [person, count] : gallery.people()) std::cout << person << '\t' << count << '\n';
  return 0;
}

int change(const Arguments& args, bool remove) {
  auto gallery = siamese::Gallery::open(args.db);
  if (!(remove ? gallery.remove(args.person) : gallery.rename(args.person, args.new_name))) {
    std::cerr << "gallery: no person '" << args.person << "' in " << args.db << '\n';
    return 1;
  }
  std::cout << (remove ? "removed " : "renamed ") << args.person << '\n';
  return 0;
}

int export_file(const Arguments& args) {
  const auto gallery = siamese::Gallery::open(args.db);
  gallery.save(args.file);
  std::cout << "exported " << gallery.people().size() << " people, " << gallery.size() << " embeddings to " << args.file << '\n';
  return 0;
}

int import_file(const Arguments& args) {
  const auto source = siamese::Gallery::load(args.file);
  auto gallery = siamese::Gallery::open(args.db, source.model_name(), source.embedding_size());
  gallery.enroll(source.enrollments());  // one transaction: all or nothing
  std::cout << "imported " << source.people().size() << " people, " << source.size() << " embeddings into " << args.db << '\n';
  return 0;
}

int benchmark(const Arguments& args) {
  Embedder embedder(args, /*dataset=*/true, /*identifies=*/true);
  siamese::train::IdentityFolder folder(args.people);
  std::vector<std::string> enrolled_people, enroll_photos, probes, probe_people, strangers;
  for (const auto& person : folder.people()) {
    if (person.images.size() > args.enroll && enrolled_people.size() < args.max_people) {
      enrolled_people.push_back(person.name);
      for (std::size_t i = 0; i < args.enroll; ++i) enroll_photos.push_back(person.images[i].string());
      probes.push_back(person.images[args.enroll].string());
      probe_people.push_back(person.name);
    } else if (person.images.size() == 1 && strangers.size() < args.max_people) {
      strangers.push_back(person.images[0].string());
    }
  }
  const auto enroll_rows = embedder.embed(enroll_photos);
  std::vector<siamese::Enrollment> batch;
  const auto per_person = static_cast<std::int64_t>(args.enroll);
  for (std::size_t p = 0; p < enrolled_people.size(); ++p) {
    batch.push_back({enrolled_people[p], enroll_rows.narrow(0, static_cast<std::int64_t>(p) * per_person, per_person), {}});
  }
  siamese::Gallery gallery(embedder.metadata().name, embedder.metadata().embedding_size);
  gallery.enroll(batch);
  auto share_right = [&](const std::vector<std::string>& photos, auto right) {
    const auto found = gallery.identify(embedder.embed(photos), args.k, embedder.threshold);
    std::size_t count = 0;
    for (std::size_t i = 0; i < found.size(); ++i) count += right(found[i], i);
    return static_cast<double>(count) / static_cast<double>(found.size());
  };
  const double rank1 = share_right(probes, [&](const siamese::Identification& r, std::size_t i) {
    return r.candidates.front().person == probe_people[i];
  });
  const double rejected = share_right(strangers, [](const siamese::Identification& r, std::size_t) { return !r.known; });
  std::cout << std::fixed << std::setprecision(4) << "gallery          " << gallery.people().size() << " people, "
            << gallery.size() << " embeddings (" << args.enroll << " photos each)\n"
            << "rank-1 accuracy  " << rank1 << " on " << probes.size() << " held-back photos of enrolled people\n"
            << "unknown rejected " << rejected << " of " << strangers.size() << " people never enrolled, at distance "
            << embedder.threshold << '\n';
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("Enroll people and identify faces (1:N) in a gallery database.", "gallery");
  example::configure(app);
  app.require_subcommand(1);
  Arguments args;
  auto model_options = [&](CLI::App* command) {
    command->add_option("--model", args.model, "backbone file; its detector and landmark models beside it");
    command->add_option("--threshold", args.threshold, "distance beyond which a face is unknown")
        ->default_str("the model's calibration or metadata");
  };
  auto* enroll_command = app.add_subcommand("enroll", "add photos of a person (a new one, or more of one enrolled)");
  enroll_command->add_option("DB", args.db, "gallery database; created when absent")->required();
  enroll_command->add_option("NAME", args.person, "the person's name")->required();
  enroll_command->add_option("PHOTO", args.photos, "photos of the person, one face each")->required();
  model_options(enroll_command);
  auto* identify_command = app.add_subcommand("identify", "who is in this photo?");
  identify_command->add_option("DB", args.db, "gallery database")->required();
  identify_command->add_option("PHOTO", args.file, "the photo")->required();
  identify_command->add_option("--k", args.k, "candidates to list")->check(CLI::Range(1, 1000));
  model_options(identify_command);
  auto* list_command = app.add_subcommand("list", "the people and how many photos each has");
  list_command->add_option("DB", args.db, "gallery database")->required();
  auto* remove_command = app.add_subcommand("remove", "delete a person");
  remove_command->add_option("DB", args.db, "gallery database")->required();
  remove_command->add_option("NAME", args.person, "the person")->required();
  auto* rename_command = app.add_subcommand("rename", "rename a person");
  rename_command->add_option("DB", args.db, "gallery database")->required();
  rename_command->add_option("OLD", args.person, "the person's name now")->required();
  rename_command->add_option("NEW", args.new_name, "the new name")->required();
  auto* export_command = app.add_subcommand("export", "write the gallery to a single checksummed file");
  export_command->add_option("DB", args.db, "gallery database")->required();
  export_command->add_option("FILE", args.file, "the file to write")->required();
  auto* import_command = app.add_subcommand("import", "add a single-file gallery to a database (created when absent)");
  import_command->add_option("FILE", args.file, "a file written by export (or an older gallery)")->required();
  import_command->add_option("DB", args.db, "gallery database")->required();
  auto* benchmark_command = app.add_subcommand("benchmark", "rank-1 accuracy and unknown rejection on a folder of identities");
  benchmark_command->add_option("--people", args.people, "folder of identities, ROOT/<person>/<image>")->required();
  benchmark_command->add_option("--enroll", args.enroll, "photos enrolled per person")->check(CLI::Range(1, 1000));
  benchmark_command->add_option("--max-people", args.max_people, "people enrolled, and strangers tried, at most")
      ->check(CLI::Range(1, 10000000));
  benchmark_command->add_option("--k", args.k, "candidates per probe")->check(CLI::Range(1, 1000));
  model_options(benchmark_command);

  return example::run_main(app, argc, argv, [&] {
    if (*enroll_command) return enroll(args);
    if (*identify_command) return identify(args);
    if (*list_command) return list(args);
    if (*remove_command) return change(args, /*remove=*/true);
    if (*rename_command) return change(args, /*remove=*/false);
    if (*export_command) return export_file(args);
    if (*import_command) return import_file(args);
    return benchmark(args);
  });
}
