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
// Usage: finetune --model M --people ROOT --out DIR [--epochs N] [--steps N] [--lr X] [--decay-every N]
//                 [--margin X] [--mining semi-hard|hard|random] [--sgd] [--train PREFIX]...
// (finetune --help lists every option with its default.)

#include "example_main.hpp"

#include <iomanip>
#include <iostream>

namespace {

struct Arguments {
  std::string model, people, out;
  std::string mining = "semi-hard";
  std::string device = "auto";
  siamese::train::FineTuneOptions options;
};

void add_arguments(CLI::App& app, Arguments& a) {
  auto& o = a.options;
  app.add_option("--model", a.model, "backbone file to start from")->required();
  app.add_option("--people", a.people, "folder of identities, ROOT/<person>/<image>")->required();
  app.add_option("--out", a.out, "checkpoint folder; running again with the same folder resumes")->required();
  example::add_schedule_options(app, o, "default blocks.13 and fc, the last residual block and projection of the face model");
  example::add_device_option(app, a.device);
  app.add_option("--steps", o.steps_per_epoch, "steps per epoch")->check(CLI::Range(1, 1000000));
  app.add_option("--margin", o.margin, "triplet margin, on raw distances")->check(CLI::PositiveNumber);
  app.add_option("--mining", a.mining, "how negatives are chosen in each batch")
      ->check(CLI::IsMember({"semi-hard", "hard", "random"}));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("Triplet fine-tuning of the last blocks of a backbone on your people, with checkpoints that resume.",
               "finetune");
  example::configure(app);
  Arguments args;
  add_arguments(app, args);
  return example::run_main(app, argc, argv, [&] {
    using namespace siamese;
    auto& [model, people, out, mining, device, options] = args;
    options.device = Device::parse(device);
    options.mining = mining == "hard" ? train::Mining::hard : mining == "random" ? train::Mining::random : train::Mining::semi_hard;
    if (options.trainable.empty()) options.trainable = {"blocks.13", "fc"};
    options.checkpoint_dir = out;
    const train::IdentityFolder everyone(people, 2);
    const auto [train_people, validation_people] = everyone.split(0.75, options.seed);
    const auto validation = train::sample_pairs(validation_people, 200, options.seed + 1);
    auto pipeline = example::training_pipeline(std::filesystem::path(model).parent_path(), model, options.device);
    train::FineTuner tuner(model, train::photo_chips(&pipeline), train_people, validation, options);
    std::cout << "finetune: " << train_people.people().size() << " training people, " << validation_people.people().size()
              << " validation people (" << validation.size() << " pairs), " << tuner.trainable_parameter_count()
              << " trainable parameters, starting at epoch " << tuner.epochs_done() << '\n';
    std::cout << std::fixed << std::setprecision(4) << "validation accuracy before fine-tuning " << tuner.validation_accuracy()
              << '\n';
    const auto reports = tuner.run(stderr_progress());
    for (const auto& r : reports) {
      std::cout << std::fixed << std::setprecision(4) << "epoch " << r.epoch << ": loss " << r.loss << ", validation accuracy "
                << r.validation_accuracy << ", learning rate " << std::setprecision(6) << r.learning_rate << '\n';
    }
    std::cout << std::setprecision(4) << "best validation accuracy " << tuner.best_validation_accuracy() << ", saved in "
              << (std::filesystem::path(out) / "best.pt").string() << '\n';
    return 0;
  });
}
