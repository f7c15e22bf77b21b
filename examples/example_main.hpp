#pragma once

// What every example shares: its command line parsed by CLI11, the exit-code convention
// (0 done, 1 error, 2 bad arguments with the usage printed, 3 no face found), progress on
// standard error, and the training examples' schedule options.

#include <siamese/siamese.hpp>

#include <CLI/CLI.hpp>

#include <iostream>
#include <string>

namespace example {

inline constexpr const char* exit_codes = "Exit codes: 0 done, 1 error, 2 bad arguments, 3 no face found.\n";

/// Gives `app` the examples' conventions: help shows defaults, a parse error shows the usage,
/// the exit codes are in the footer.
inline void configure(CLI::App& app) {
  app.option_defaults()->always_capture_default();
  app.failure_message(CLI::FailureMessage::help);
  app.footer(exit_codes);
}

/// --device: where every network of the example runs, chosen once (Device::parse).
inline void add_device_option(CLI::App& app, std::string& device) {
  app.add_option("--device", device, "where every network runs: auto (CUDA device 0 when there is one), cpu, cuda or cuda:N");
}

/// --rotations: how the face pipeline looks for faces that are not upright (RotationSearch).
inline void add_rotation_option(CLI::App& app, std::string& rotations) {
  app.add_option("--rotations", rotations,
                 "faces not upright: when-needed (turned copies searched where the photo as it is has no face, or one "
                 "that fails the upright check), every-angle, or upright-only")
      ->check(CLI::IsMember({"when-needed", "every-angle", "upright-only"}));
}

/// The options of a training schedule (finetune, distill); `train_help` says what --train
/// defaults to.
inline void add_schedule_options(CLI::App& app, siamese::train::TrainingSchedule& s, const std::string& train_help) {
  app.add_option("--epochs", s.epochs, "epochs at most (early stopping may end sooner)")->check(CLI::Range(1, 100000));
  app.add_option("--lr", s.learning_rate, "learning rate")->check(CLI::PositiveNumber);
  app.add_option("--decay-every", s.decay_every, "halve the learning rate every this many epochs")
      ->check(CLI::Range(1, 100000));
  app.add_flag("--sgd", s.use_sgd, "SGD with momentum 0.9 instead of Adam");
  app.add_option("--train", s.trainable, "parameter-name prefix to train (repeatable); " + train_help);
}

/// The face pipeline for face-dataset photos (LFW-style folders of identities): models from
/// `models_dir`, chips of `chip_size`, the most central face, and the image centre when no face
/// is found; its networks on `device`.
inline siamese::FacePipeline dataset_pipeline(const std::filesystem::path& models_dir, int chip_size,
                                              siamese::Device device) {
  siamese::FacePipelineOptions options;
  options.chip_size = chip_size;
  options.center_fallback = true;
  options.policy = siamese::FacePolicy::central;
  return siamese::FacePipeline::from_models(models_dir, options, device);
}

/// dataset_pipeline() at the input size of the backbone file `backbone`, for training.
inline siamese::FacePipeline training_pipeline(const std::filesystem::path& models_dir,
                                               const std::filesystem::path& backbone, siamese::Device device) {
  siamese::BackboneOptions load;
  load.optimize = false;
  load.device = siamese::Device::cpu();  // read for its input size only
  return dataset_pipeline(models_dir, siamese::TorchScriptBackbone(backbone, load).input_spec().height, device);
}

/// Parses the command line with `app`, then returns `run()`, turning exceptions into messages
/// on standard error and exit codes: --help 0, bad arguments 2, NoFaceFound 3, any other error 1.
template <class Run>
int run_main(CLI::App& app, int argc, char** argv, Run run) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == static_cast<int>(CLI::ExitCodes::Success) ? 0 : 2;
  }
  try {
    return run();
  } catch (const siamese::NoFaceFound& e) {
    std::cerr << app.get_name() << ": " << e.what() << '\n';
    return 3;
  } catch (const std::exception& e) {
    std::cerr << app.get_name() << ": " << e.what() << '\n';
    return 1;
  }
}

}  // namespace example
