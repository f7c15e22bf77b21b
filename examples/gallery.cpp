// gallery: enroll people and identify faces (1:N).
//
// A gallery database holds people and the embeddings of their enrolled photos, tagged with the
// model that made them: a SQLite file (DB is its path), or a PostgreSQL server shared by many
// machines (DB is a postgresql://user@host:port/database URL; libpq's PG* variables, .pgpass
// and sslmode apply, and a password in the URL is masked in everything printed). Every enroll,
// remove and rename is a transaction of its own, so many `gallery` processes may change one
// gallery at once and none loses another's work.
// Faces are found and aligned as in verify_pair.
//
// `identify` names every face in the photo (the largest alone with --largest): its box, the
// person or "unknown", the distance, and the decision behind it. By default the decision keeps
// strangers out at a false positive identification rate (--fpir, 1%) for the gallery's size
// now, read from the model's open-set calibration (MODEL.open-set.json, made by `open_set
// calibrate`; the default model's comes from tools/setup-models.sh): a threshold chosen for one
// pair would name most strangers as someone in a gallery of a thousand. --threshold fixes a
// distance instead. Without a calibration it warns, once, and uses the model's 1:1 threshold.
//
// `enroll` takes one person's photos, or a folder of people (--folder ROOT: ROOT/<person>/<photos>,
// and photos directly in ROOT named after their person), embedded in batches in one process.
// A photo the person already has (same content) is skipped, so an interrupted folder enrollment
// resumes where it stopped; a face the gallery already identifies as someone else is refused,
// naming them, unless --allow-lookalike (twins, look-alikes). A photo whose face falls below
// the quality bar (siamese::QualityBar: smaller than 40 px, turned past 45 degrees of yaw or 40
// of pitch, blurred flat, too dark or too bright) is refused with the reason, unless
// --any-quality. `export` and `import` move a
// gallery to and from the single checksummed file format; `import` also copies one gallery
// database into another, across engines (SQLite to PostgreSQL and back), photo records included. The open-set benchmark is `open_set`.
//
// Models needed: models/faceapi_recognition.pt with its detector and landmark models
// (tools/setup-models.sh), or another backbone given with --model.
//
// Usage: gallery enroll DB NAME PHOTO...        gallery enroll DB --folder ROOT
//        gallery identify DB PHOTO [--k 5] [--fpir 0.01] [--json]
//        gallery list DB                        gallery remove DB NAME
//        gallery rename DB OLD NEW              gallery export DB FILE
//        gallery import SOURCE DB               (SOURCE: an exported file, or a gallery database)
// (gallery --help and gallery COMMAND --help list every option with its default.)

#include "example_main.hpp"
#include "gallery_decision.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <iomanip>
#include <iostream>
#include <map>

namespace {

struct Arguments {
  std::string db, file, person, new_name, folder;
  std::vector<std::string> photos;
  std::string model = "models/faceapi_recognition.pt", device = "auto";
  std::size_t k = 5;
  double threshold = -1.0, fpir = 0.01;
  bool largest = false, json = false, allow_lookalike = false, any_quality = false;
};

// The model and its face pipeline (the largest face of each photo), for enrolling.
struct Model {
  explicit Model(const Arguments& args)
      : backbone(args.model, backbone_options(args)),
        pipeline(make_pipeline(args.model, backbone.input_spec().height, backbone.device())) {}

  static siamese::BackboneOptions backbone_options(const Arguments& args) {
    siamese::BackboneOptions options;
    options.device = siamese::Device::parse(args.device);
    return options;
  }

  static siamese::FacePipeline make_pipeline(const std::string& model, int chip, siamese::Device device) {
    siamese::FacePipelineOptions options;
    options.chip_size = chip;
    options.policy = siamese::FacePolicy::largest;
    return siamese::FacePipeline::from_models(std::filesystem::path(model).parent_path(), options, device);
  }

  const siamese::BackboneMetadata& metadata() const { return backbone.metadata(); }

  siamese::TorchScriptBackbone backbone;
  siamese::FacePipeline pipeline;
};

// The content hash of a photo file, as the gallery database records it.
std::uint64_t photo_hash(const std::filesystem::path& photo) {
  return siamese::content_hash(siamese::read_file_bytes(photo, siamese::ImageLimits{}.max_file_bytes)).value;
}

// A person's photos to enroll.
struct PersonPhotos {
  std::string person;
  std::vector<std::filesystem::path> photos;
};

// ROOT/<person>/<photos>, and photos directly in ROOT named after their person (the file name
// without its extension), as face_recognition's command line takes them.
std::vector<PersonPhotos> folder_people(const std::filesystem::path& root) {
  std::error_code ec;
  if (!std::filesystem::is_directory(root, ec)) throw siamese::FileError("enrollment folder '" + root.string() + "' is not a folder");
  std::map<std::string, std::vector<std::filesystem::path>> people;
  for (const auto& entry : std::filesystem::directory_iterator(root)) {
    if (entry.is_directory(ec)) {
      for (const auto& file : std::filesystem::directory_iterator(entry.path())) {
        if (file.is_regular_file(ec) && siamese::is_photo_file(file.path())) people[entry.path().filename().string()].push_back(file.path());
      }
    } else if (entry.is_regular_file(ec) && siamese::is_photo_file(entry.path())) {
      people[entry.path().stem().string()].push_back(entry.path());
    }
  }
  std::vector<PersonPhotos> out;
  for (auto& [person, photos] : people) {
    std::sort(photos.begin(), photos.end());
    out.push_back({person, std::move(photos)});
  }
  if (out.empty()) throw siamese::Error("enrollment folder '" + root.string() + "' holds no photo (" + siamese::photo_extensions + ")");
  return out;
}

// A photo refused on its own, not the person's others: no face in it, or a face below the quality bar.
bool refused_alone(const siamese::ImageError& e) {
  return dynamic_cast<const siamese::NoFaceFound*>(&e) != nullptr || dynamic_cast<const siamese::LowQualityFace*>(&e) != nullptr;
}

// What an enrollment run did, for its summary.
struct EnrollSummary {
  std::size_t photos = 0, people = 0, skipped = 0;
  std::vector<std::string> refused;  ///< "PHOTO: reason"
};

int enroll(const Arguments& args) {
  const bool one_person = args.folder.empty();
  if (one_person && (args.person.empty() || args.photos.empty())) {
    throw siamese::Error("enroll needs NAME and PHOTO..., or --folder ROOT");
  }
  const auto people = one_person ? std::vector<PersonPhotos>{{args.person, {args.photos.begin(), args.photos.end()}}}
                                 : folder_people(args.folder);
  Model model(args);
  siamese::EmbedderOptions embed_options;
  if (!args.any_quality) embed_options.quality_bar = siamese::QualityBar{};
  siamese::ImageEmbedder<> embedder(model.backbone, std::move(model.pipeline), embed_options);
  embedder.set_progress(siamese::stderr_progress());
  auto gallery = siamese::Gallery::open(args.db, model.metadata().name, model.metadata().embedding_size);
  std::optional<siamese::OpenSetDecision> decision;  // read when the gallery first holds someone
  std::string decision_source;
  EnrollSummary summary;
  const auto start = std::chrono::steady_clock::now();
  for (const auto& [person, photos] : people) {
    std::vector<std::filesystem::path> fresh;
    std::vector<siamese::EnrolledPhoto> records;
    for (const auto& photo : photos) {
      const auto hash = photo_hash(photo);
      const auto owners = gallery.store()->people_with_photo(hash);
      // Enrolled before (a resumed run): not embedded again. A photo given twice in this run is
      // embedded once (the embedder's cache) and stored once (GalleryStore::enroll).
      if (std::find(owners.begin(), owners.end(), person) != owners.end()) {
        ++summary.skipped;
      } else {
        fresh.push_back(photo);
        records.push_back({photo.string(), hash});
      }
    }
    if (fresh.empty()) continue;
    torch::Tensor rows;
    try {
      rows = embedder.embed_files(fresh);
    } catch (const siamese::ImageError& e) {
      if (one_person || !refused_alone(e)) throw;
      // One photo without a usable face refuses that photo, not the person's others: embed them one by one.
      std::vector<torch::Tensor> kept;
      std::vector<siamese::EnrolledPhoto> kept_records;
      for (std::size_t i = 0; i < fresh.size(); ++i) {
        try {
          kept.push_back(embedder.embed_files({fresh[i]}));
          kept_records.push_back(records[i]);
        } catch (const siamese::ImageError& e) {
          if (!refused_alone(e)) throw;
          summary.refused.push_back(fresh[i].string() + ": " + e.what());
        }
      }
      if (kept.empty()) continue;
      rows = torch::cat(kept);
      records = std::move(kept_records);
    }
    if (!args.allow_lookalike && gallery.size() > 0) {
      if (!decision) {
        try {
          decision = example::gallery_decision("gallery", args.model, args.threshold, args.fpir, model.backbone, gallery, decision_source);
        } catch (const siamese::UncalibratedModelError&) {
          std::cerr << "gallery: warning: '" << args.model << "' has no threshold, so look-alikes of enrolled people are not refused\n";
          decision = siamese::OpenSetDecision::distance_at_most(-1.0);  // accepts nothing: no conflict
        }
      }
      if (const auto other = gallery.conflicting_person(person, rows, *decision)) {
        std::ostringstream reason;
        reason << "refused: a face of '" << person << "' is identified as '" << other->person << "' (distance " << std::fixed
               << std::setprecision(4) << other->distance << ", " << example::describe(*decision, decision_source)
               << "); --allow-lookalike enrolls them anyway";
        if (one_person) throw siamese::GalleryError(reason.str());
        summary.refused.push_back(person + ": " + reason.str());
        continue;
      }
    }
    const auto added = gallery.enroll(person, rows, records);
    summary.photos += added;
    summary.skipped += records.size() - added;
    summary.people += added > 0;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "enrolled " << summary.photos << " photo(s) of " << summary.people << " people (" << std::fixed
            << std::setprecision(1) << summary.photos / std::max(seconds, 1e-9) << " photos/s end to end); skipped "
            << summary.skipped << " already enrolled; refused " << summary.refused.size() << "; "
            << gallery.people().size() << " people in " << siamese::displayed_location(args.db) << '\n';
  for (const auto& line : summary.refused) std::cout << "  refused " << line << '\n';
  return 0;
}

nlohmann::json identification_json(const siamese::AlignedFace& face, const siamese::Identification& found) {
  const auto& box = face.detection.box;
  nlohmann::json candidates = nlohmann::json::array();
  for (const auto& m : found.candidates) candidates.push_back({{"person", m.person}, {"distance", m.distance}});
  return {{"box", {box.x, box.y, box.width, box.height}},
          {"known", found.known},
          {"person", found.known ? nlohmann::json(*found.best()) : nlohmann::json()},
          {"score", found.score},
          {"candidates", candidates}};
}

int identify(const Arguments& args) {
  siamese::FacesOptions options;
  options.backbone = std::filesystem::path(args.model).filename();
  options.largest_face_only = args.largest;
  options.device = siamese::Device::parse(args.device);
  siamese::Faces people(std::filesystem::path(args.model).parent_path(), options);
  const auto& backbone = people.verifier().backbone();
  const auto gallery = example::open_gallery_to_identify(args.db, backbone);
  std::string source;
  const auto decision = example::gallery_decision("gallery", args.model, args.threshold, args.fpir, backbone, gallery, source);
  const auto photo = people.find(std::filesystem::path(args.file));
  const auto& faces = photo.faces;
  const auto found = gallery.identify(photo.embeddings, args.k, decision);
  if (args.json) {
    nlohmann::json out = {{"photo", args.file},
                          {"model", backbone.metadata().name},
                          {"decision", {{"rule", to_string(decision.rule)}, {"threshold", decision.threshold},
                                        {"fpir", decision.target_fpir > 0 ? nlohmann::json(decision.target_fpir) : nlohmann::json()},
                                        {"gallery_people", decision.gallery_people}, {"source", source}}},
                          {"faces", nlohmann::json::array()}};
    for (std::size_t i = 0; i < faces.size(); ++i) out["faces"].push_back(identification_json(faces[i], found[i]));
    std::cout << out.dump(2) << '\n';
    return 0;
  }
  // Whether a face is known is said in words no name can take: a person may be named "unknown".
  std::cout << std::fixed << std::setprecision(4) << "decision: " << example::describe(decision, source) << '\n'
            << "faces:    " << faces.size() << (args.largest ? " (the largest)" : "") << '\n';
  for (std::size_t i = 0; i < faces.size(); ++i) {
    const auto& box = faces[i].detection.box;
    std::cout << "face " << i + 1 << " at " << std::setprecision(0) << box.x << "," << box.y << " " << box.width << "x"
              << box.height << std::setprecision(4) << '\n';
    if (found[i].known) {
      std::cout << "  known:  yes\n  person: " << *found[i].best() << '\n';
    } else {
      std::cout << "  known:  no, nobody enrolled passes the decision\n";
    }
    for (const auto& m : found[i].candidates) std::cout << "    " << m.person << "\tdistance " << m.distance << '\n';
  }
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
    std::cerr << "gallery: no person '" << args.person << "' in " << siamese::displayed_location(args.db) << '\n';
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

// Whether `location` is a gallery database (a server's URL, or a SQLite file) rather than a
// file written by export.
bool is_gallery_database(const std::string& location) {
  return siamese::is_gallery_server(location) || siamese::SqliteGalleryStore::is_sqlite_file(location);
}

int import_file(const Arguments& args) {
  const auto target = siamese::displayed_location(args.db);
  if (is_gallery_database(args.file)) {
    // Database to database, on either engine: the photo records travel too, so importing
    // again adds only the rows without a content hash.
    const auto source = siamese::open_gallery_store(args.file);
    auto gallery = siamese::Gallery::open(args.db, source->model_name(), source->embedding_size());
    const auto enrollments = source->enrollments();
    std::size_t rows = 0;
    for (const auto& e : enrollments) rows += static_cast<std::size_t>(e.embeddings.size(0));
    const auto added = gallery.enroll(enrollments);  // one transaction: all or nothing
    std::cout << "imported " << enrollments.size() << " people, " << added << " embeddings (with their photo records) from "
              << source->location() << " into " << target << "; " << rows - added << " were there already\n";
    return 0;
  }
  const auto source = siamese::Gallery::load(args.file);
  auto gallery = siamese::Gallery::open(args.db, source.model_name(), source.embedding_size());
  gallery.enroll(source.enrollments());  // one transaction: all or nothing
  std::cout << "imported " << source.people().size() << " people, " << source.size() << " embeddings into " << target << '\n';
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
    example::add_device_option(*command, args.device);
    command->add_option("--threshold", args.threshold, "a fixed distance beyond which a face is unknown, whatever the gallery's size")
        ->default_str("the open-set calibration at --fpir");
    command->add_option("--fpir", args.fpir, "strangers named as someone at most this often (false positive identification rate)")
        ->check(CLI::Range(1e-4, 0.5));
  };
  auto* enroll_command = app.add_subcommand("enroll", "add photos of a person, or a folder of people");
  enroll_command->add_option("DB", args.db, "gallery database (a SQLite file, or a postgresql:// URL); created when absent")->required();
  enroll_command->add_option("NAME", args.person, "the person's name (without --folder)");
  enroll_command->add_option("PHOTO", args.photos, "photos of the person, one face each (without --folder)");
  enroll_command->add_option("--folder", args.folder, "ROOT/<person>/<photos>, and ROOT/<person>.jpg: everyone in one run")
      ->excludes("NAME");
  enroll_command->add_flag("--allow-lookalike", args.allow_lookalike,
                           "enroll a face the gallery identifies as someone else (twins, look-alikes)");
  enroll_command->add_flag("--any-quality", args.any_quality,
                           "enroll faces below the quality bar too (smaller than 40 px, turned past 45 degrees of yaw or 40 "
                           "of pitch, blurred flat, too dark or too bright)");
  model_options(enroll_command);
  auto* identify_command = app.add_subcommand("identify", "who is in this photo? (every face)");
  identify_command->add_option("DB", args.db, "gallery database")->required();
  identify_command->add_option("PHOTO", args.file, "the photo")->required();
  identify_command->add_option("--k", args.k, "candidates to list")->check(CLI::Range(1, 1000));
  identify_command->add_flag("--largest", args.largest, "the largest face only");
  identify_command->add_flag("--json", args.json, "print one JSON object for scripts");
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
  auto* import_command =
      app.add_subcommand("import", "add a single-file gallery, or another gallery database, to a database (created when absent)");
  import_command->add_option("SOURCE", args.file, "a file written by export (or an older gallery), or a gallery database: a "
                                                  "SQLite file or a postgresql:// URL")
      ->required();
  import_command->add_option("DB", args.db, "gallery database")->required();

  return example::run_main(app, argc, argv, [&] {
    if (*enroll_command) return enroll(args);
    if (*identify_command) return identify(args);
    if (*list_command) return list(args);
    if (*remove_command) return change(args, /*remove=*/true);
    if (*rename_command) return change(args, /*remove=*/false);
    if (*export_command) return export_file(args);
    return import_file(args);
  });
}
