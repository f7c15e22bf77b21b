// distill: teach a student backbone (e.g. a pretrained InceptionV3) to embed faces like a
// teacher (e.g. the face model), then use it as an ordinary backbone file.
//
// Takes every photo of a folder of identities (ROOT/<person>/<image>) except the people of
// the --exclude pair lists (your test people), holds back 10% of the people for validation
// pairs, aligns each photo once with the face pipeline at the student's input size, and
// trains the student's top (after its stem, with a new projection to the teacher's embedding
// size) to minimise the squared distance between its embedding and the teacher's, each chip
// and its mirror image. With a student written by tools/convert_keras_tfjs.py --split, the
// frozen stem runs once per chip and only the top trains. Checkpoints go to OUT/ after every
// epoch and running again with the same OUT resumes; OUT/best.pt is the best student so far
// on the validation pairs, a backbone file that evaluate and verify_pair load.
//
// Models needed: the student and the teacher, and the detector and landmark models beside the
// teacher (tools/setup-models.sh).
//
// With --export FOLDER it trains nothing: it writes the aligned chips and the teacher's
// embeddings of them (train::export_samples) for training on another machine, such as a
// GPU with tools/distill_gpu.py, whose weights go back into OUT/start.pt.
//
// Usage: distill --student S --teacher T --people ROOT --out DIR [--exclude PAIRS]...
//                [--epochs N] [--lr X] [--decay-every N] [--batch N] [--no-mirror] [--sgd]
//                [--train PREFIX]... [--name NAME] [--export FOLDER [--export-format png|webp|jpg] [--export-quality Q]]
// (distill --help lists every option with its default.)

#include "example_main.hpp"

#include <chrono>
#include <iomanip>
#include <iostream>

namespace {

struct Arguments {
  std::string student, teacher, people, out;
  std::vector<std::string> exclude;
  bool no_mirror = false;
  std::string export_folder, export_format = "png";
  int export_quality = 95;
  std::string device = "auto";
  siamese::train::DistillOptions options;
};

void add_arguments(CLI::App& app, Arguments& a) {
  auto& o = a.options;
  app.add_option("--student", a.student, "backbone file to train (e.g. converted with --split)")->required();
  app.add_option("--teacher", a.teacher, "backbone file whose embeddings the student learns")->required();
  app.add_option("--people", a.people, "folder of identities, ROOT/<person>/<image>")->required();
  app.add_option("--out", a.out, "checkpoint folder; running again with the same folder resumes")->required();
  app.add_option("--exclude", a.exclude, "pair list whose people never train (repeatable), e.g. pairsDevTest.txt");
  example::add_schedule_options(app, o, "default top and projection: everything after the student's stem");
  example::add_device_option(app, a.device);
  app.add_option("--batch", o.batch_size, "chips per step")->check(CLI::Range(1, 4096));
  app.add_flag("--no-mirror", a.no_mirror, "do not also learn each chip's mirror image");
  app.add_option("--name", o.name, "the student's name in its metadata (default: its own + \"-distilled\")");
  app.add_option("--export", a.export_folder, "train nothing: write the chips and the teacher's embeddings here");
  app.add_option("--export-format", a.export_format, "chip files: png (lossless), webp or jpg")
      ->check(CLI::IsMember({"png", "webp", "jpg"}));
  app.add_option("--export-quality", a.export_quality, "webp or jpg quality")->check(CLI::Range(1, 100));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("Distillation of a teacher's face embeddings into a student backbone, with checkpoints that resume.",
               "distill");
  example::configure(app);
  Arguments args;
  add_arguments(app, args);
  return example::run_main(app, argc, argv, [&] {
    using namespace siamese;
    auto& options = args.options;
    options.mirror = !args.no_mirror;
    options.checkpoint_dir = args.out;
    options.device = Device::parse(args.device);
    std::unordered_set<std::string> excluded;
    for (const auto& list : args.exclude) {
      for (auto& person : eval::people_in(eval::parse_pairs(list, args.people))) excluded.insert(person);
    }
    const auto everyone = train::IdentityFolder(args.people).excluding(excluded);
    const auto [train_people, validation_people] = everyone.split(0.9, options.seed);
    const auto validation = train::sample_pairs(validation_people, 400, options.seed + 1);
    BackboneOptions teacher_options;
    teacher_options.device = options.device;
    const TorchScriptBackbone teacher(args.teacher, teacher_options);
    auto pipeline = example::training_pipeline(std::filesystem::path(args.teacher).parent_path(), args.student, options.device);
    // An export is for training elsewhere, which holds back its own validation people.
    const auto& training = args.export_folder.empty() ? train_people : everyone;
    train::Distiller distiller(args.student, teacher, train::photo_chips(&pipeline), training.images(), validation, options);
    std::cout << "distill: " << excluded.size() << " people excluded, " << train_people.people().size()
              << " training people (" << distiller.sample_count() << " samples), " << validation_people.people().size()
              << " validation people (" << validation.size() << " pairs), " << distiller.trainable_parameter_count()
              << " trainable parameters, stem " << (distiller.caches_stem() ? "cached" : "not cached")
              << ", starting at epoch " << distiller.epochs_done() << std::endl;
    if (!args.export_folder.empty()) {
      train::export_samples(distiller, &pipeline, args.export_folder, "." + args.export_format, args.export_quality, stderr_progress());
      std::cout << "exported " << training.images().size() << " chips and their teacher embeddings to "
                << args.export_folder << "; the student to train is " << (std::filesystem::path(args.out) / "start.pt").string()
                << std::endl;
      return 0;
    }
    auto start = std::chrono::steady_clock::now();
    const auto seconds = [&start] {
      const auto now = std::chrono::steady_clock::now();
      const double s = std::chrono::duration<double>(now - start).count();
      start = now;
      return s;
    };
    if (!distiller.finished()) {
      distiller.prepare(stderr_progress());
      std::cout << std::fixed << std::setprecision(1) << "data prepared in " << seconds() << " s" << std::endl;
      if (distiller.epochs_done() == 0) {
        std::cout << std::setprecision(4) << "validation accuracy before training " << distiller.validation_accuracy()
                  << std::endl;
      }
    }
    seconds();
    const auto reports = distiller.run(stderr_progress());
    const double total = seconds();
    for (const auto& r : reports) {
      std::cout << std::fixed << std::setprecision(4) << "epoch " << r.epoch << ": loss " << r.loss
                << ", validation accuracy " << r.validation_accuracy << ", learning rate " << std::setprecision(6)
                << r.learning_rate << '\n';
    }
    if (!reports.empty()) {
      std::cout << std::setprecision(1) << total / static_cast<double>(reports.size()) << " s per epoch\n";
    }
    std::cout << std::setprecision(4) << "best validation accuracy " << distiller.best_validation_accuracy()
              << ", saved in " << (std::filesystem::path(args.out) / "best.pt").string() << '\n';
    return 0;
  });
}
