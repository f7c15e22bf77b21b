// finetune: adapt the last block of a TorchScript backbone to your people with triplet loss.
//
// Splits a folder of identities (ROOT/<person>/<image>) by person into training and
// validation people, then trains the named parameters (default: the face model's last
// residual block and fc) with triplet loss on raw distances, negatives mined in each batch
// (semi-hard by default), Adam or SGD, a step learning-rate schedule, gradient clipping, and
// early stopping on validation accuracy. Checkpoints go to OUT/ after every epoch
// (last.pt, optimizer.pt, state.json) and run again with the same OUT resumes; OUT/best.pt is
// the best model so far, a backbone file verify_pair loads.
//
// Models needed: the backbone, and the detector and landmark models beside it.
//
// Usage: finetune --model M --people ROOT --out DIR [--epochs N] [--steps N] [--lr X]
//                 [--margin X] [--mining semi-hard|hard|random] [--sgd] [--train PREFIX]...

#include "example_main.hpp"

#include <iomanip>
#include <iostream>

namespace {

constexpr const char* usage =
    "usage: finetune --model M --people ROOT --out DIR [--epochs N] [--steps N] [--lr X]\n"
    "                [--margin X] [--mining semi-hard|hard|random] [--sgd] [--train PREFIX]...\n"
    "  --train   parameter-name prefix to unfreeze (repeatable); default blocks.13 and fc,\n"
    "            the last residual block and projection of the face model\n";

struct Arguments {
  std::string model, people, out;
  siamese::train::FineTuneOptions options;
};

Arguments parse_arguments(int argc, char** argv) {
  using namespace siamese;
  Arguments a;
  auto& [model, people, out, options] = a;
  for (example::Flags flags(argc, argv); flags.next();) {
    const std::string arg = flags.arg();
    auto value = [&] { return flags.value(); };
    {
      if (arg == "--model") model = value();
      else if (arg == "--people") people = value();
      else if (arg == "--out") out = value();
      else if (arg == "--epochs") options.epochs = std::stoi(value());
      else if (arg == "--steps") options.steps_per_epoch = std::stoi(value());
      else if (arg == "--lr") options.learning_rate = std::stod(value());
      else if (arg == "--margin") options.margin = std::stod(value());
      else if (arg == "--sgd") options.use_sgd = true;
      else if (arg == "--train") options.trainable.push_back(value());
      else if (arg == "--mining") {
        const auto m = value();
        if (m == "semi-hard") options.mining = train::Mining::semi_hard;
        else if (m == "hard") options.mining = train::Mining::hard;
        else if (m == "random") options.mining = train::Mining::random;
        else throw std::invalid_argument("--mining takes semi-hard, hard or random, got '" + m + "'");
      } else if (arg == "-h" || arg == "--help") { std::cout << usage; std::exit(0); }
      else throw std::invalid_argument("unknown argument '" + arg + "'");
    }
  }
  if (model.empty() || people.empty() || out.empty()) throw std::invalid_argument("--model, --people and --out are required");
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  return example::main_with_usage("finetune", usage, argc, argv, parse_arguments, [](Arguments args) {
    using namespace siamese;
    auto& [model, people, out, options] = args;
    if (options.trainable.empty()) options.trainable = {"blocks.13", "fc"};
    options.checkpoint_dir = out;
    const train::IdentityFolder everyone(people, 2);
    const auto [train_people, validation_people] = everyone.split(0.75, options.seed);
    const auto validation = train::sample_pairs(validation_people, 200, options.seed + 1);
    FacePipelineOptions face_options;
    face_options.center_fallback = true;
    face_options.policy = FacePolicy::central;  // identity folders hold face-dataset photos
    auto pipeline = FacePipeline::from_models(std::filesystem::path(model).parent_path(), face_options);
    train::FineTuner tuner(model, &pipeline, train_people, validation, options);
    std::cout << "finetune: " << train_people.people().size() << " training people, " << validation_people.people().size()
              << " validation people (" << validation.size() << " pairs), " << tuner.trainable_parameter_count()
              << " trainable parameters, starting at epoch " << tuner.epochs_done() << '\n';
    std::cout << std::fixed << std::setprecision(4) << "validation accuracy before fine-tuning " << tuner.validation_accuracy()
              << '\n';
    const auto reports = tuner.run([](const train::Progress& p) {
      std::cerr << "\repoch " << p.epoch << " step " << p.step << "/" << p.steps << "  loss " << std::fixed
                << std::setprecision(4) << p.loss << "  " << std::setprecision(1) << p.triplets_per_second
                << " triplets/s  ETA " << std::setprecision(0) << p.eta_seconds << " s   " << std::flush;
    });
    std::cerr << '\n';
    for (const auto& r : reports) {
      std::cout << std::fixed << std::setprecision(4) << "epoch " << r.epoch << ": loss " << r.loss << ", validation accuracy "
                << r.validation_accuracy << ", learning rate " << std::setprecision(6) << r.learning_rate << '\n';
    }
    std::cout << std::setprecision(4) << "best validation accuracy " << tuner.best_validation_accuracy() << ", saved in "
              << (std::filesystem::path(out) / "best.pt").string() << '\n';
    return 0;
  });
}
