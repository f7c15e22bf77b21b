#pragma once

#include <siamese/backbone.hpp>
#include <siamese/distance.hpp>
#include <siamese/detail/files.hpp>
#include <siamese/errors.hpp>
#include <siamese/eval/metrics.hpp>
#include <siamese/face.hpp>
#include <siamese/image.hpp>
#include <siamese/preprocess.hpp>
#include <siamese/progress.hpp>
#include <siamese/train/data.hpp>
#include <siamese/train/losses.hpp>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace siamese::train {

/// How fine-tuning runs.
struct FineTuneOptions {
  /// Parameter-name prefixes to unfreeze (e.g. "blocks.13" for the last block of the face
  /// model); every other parameter stays frozen. Empty: refuse to train (nothing to do).
  std::vector<std::string> trainable;
  bool use_sgd = false;            ///< Adam by default; SGD with momentum 0.9 when true
  double learning_rate = 1e-4;
  double lr_decay = 0.5;           ///< learning rate multiplied by this ...
  int decay_every = 2;             ///< ... every this many epochs
  double clip_norm = 1.0;          ///< gradient clipping (L2 norm over trainable parameters)
  int epochs = 4;
  int steps_per_epoch = 10;
  int people_per_batch = 8;        ///< each gives one anchor-positive pair; negatives mined in the batch
  double margin = 0.2;             ///< triplet margin, on raw distances
  Mining mining = Mining::semi_hard;
  int patience = 2;                ///< early stopping: epochs without validation gain
  std::uint64_t seed = 1;
  std::filesystem::path checkpoint_dir;  ///< where checkpoints go; required
};

/// What an epoch achieved.
struct EpochReport {
  int epoch = 0;
  double loss = 0.0;
  double validation_accuracy = 0.0;  ///< best-threshold accuracy on the validation pairs
  double learning_rate = 0.0;
};

/// Triplet fine-tuning of the last blocks of a TorchScript backbone, with checkpoints that can
/// be resumed and early stopping on validation pairs. BatchNorm statistics, if any, stay as
/// they are (the module stays in eval mode); only the named parameters learn.
///
/// Checkpoints in checkpoint_dir: last.pt (TorchScript with metadata, loadable by
/// verify_pair), optimizer.pt, state.json; best.pt is the model with the best validation
/// accuracy so far. Constructing a FineTuner on a folder with state.json resumes from it.
class FineTuner {
 public:
  FineTuner(const std::filesystem::path& model, FacePipeline* pipeline, IdentityFolder people,
            std::vector<eval::ImagePair> validation, FineTuneOptions options)
      : pipeline_(pipeline), people_(std::move(people)), validation_(std::move(validation)), options_(std::move(options)),
        rng_(options_.seed) {
    if (options_.trainable.empty()) throw Error("FineTuner needs at least one trainable parameter prefix");
    if (options_.checkpoint_dir.empty()) throw Error("FineTuner needs a checkpoint_dir");
    if (options_.people_per_batch < 2) throw Error("FineTuner needs at least 2 people per batch");
    std::filesystem::create_directories(options_.checkpoint_dir);
    const bool resuming = std::filesystem::exists(options_.checkpoint_dir / "state.json");
    BackboneOptions load;
    load.device = Device::cpu();
    load.optimize = false;
    backbone_.emplace(resuming ? options_.checkpoint_dir / "last.pt" : model, load);
    for (std::size_t i = 0; i < people_.people().size(); ++i) {
      if (people_.people()[i].images.size() >= 2) with_two_.push_back(i);
    }
    if (with_two_.size() < 2) throw Error("FineTuner needs at least 2 people with 2+ images");
    std::vector<torch::Tensor> trainable;
    for (const auto& parameter : backbone_->module().named_parameters(/*recurse=*/true)) {
      const bool train = std::any_of(options_.trainable.begin(), options_.trainable.end(),
                                     [&](const std::string& prefix) { return parameter.name.rfind(prefix, 0) == 0; });
      parameter.value.set_requires_grad(train);
      if (train) trainable.push_back(parameter.value);
    }
    if (trainable.empty()) throw Error("no parameter of '" + model.string() + "' starts with the given prefixes");
    trainable_ = trainable;
    if (options_.use_sgd) {
      optimizer_ = std::make_unique<torch::optim::SGD>(trainable, torch::optim::SGDOptions(options_.learning_rate).momentum(0.9));
    } else {
      optimizer_ = std::make_unique<torch::optim::Adam>(trainable, torch::optim::AdamOptions(options_.learning_rate));
    }
    if (resuming) resume();
  }

  std::size_t trainable_parameter_count() const {
    std::size_t n = 0;
    for (const auto& t : trainable_) n += static_cast<std::size_t>(t.numel());
    return n;
  }

  /// Validation accuracy of the current weights (best threshold over the validation pairs).
  double validation_accuracy() {
    if (validation_.empty()) return 0.0;
    torch::InferenceMode guard;
    std::vector<double> distances;
    std::vector<int> labels;
    for (const auto& pair : validation_) {
      const auto e = embed({chip(pair.a), chip(pair.b)});
      distances.push_back(EuclideanDistance{}(e.narrow(0, 0, 1), e.narrow(0, 1, 1)).item<double>());
      labels.push_back(pair.label);
    }
    return eval::evaluate_scores<EuclideanDistance>(distances, labels).best_accuracy;
  }

  /// Trains until options.epochs or early stopping. Ensures: last.pt and best.pt written.
  /// `progress` is told after every step ("fine-tuning", in steps; the note holds the epoch
  /// and the epoch's mean loss so far).
  std::vector<EpochReport> run(const ProgressCallback& progress = {}) {
    std::vector<EpochReport> reports;
    if (epoch_ == 0 && best_accuracy_ < 0) {
      best_accuracy_ = validation_accuracy();
      save_model(options_.checkpoint_dir / "best.pt");
    }
    ProgressCounter counter(progress, "fine-tuning", "steps",
                            static_cast<std::size_t>((options_.epochs - epoch_) * options_.steps_per_epoch));
    for (; epoch_ < options_.epochs && bad_epochs_ < options_.patience;) {
      const double lr = options_.learning_rate * std::pow(options_.lr_decay, epoch_ / options_.decay_every);
      set_learning_rate(lr);
      double loss_sum = 0.0;
      for (int step = 0; step < options_.steps_per_epoch; ++step) {
        loss_sum += train_step();
        counter.advance(1, "epoch " + std::to_string(epoch_ + 1) + ", loss " + std::to_string(loss_sum / (step + 1)));
      }
      ++epoch_;
      EpochReport report{epoch_, loss_sum / options_.steps_per_epoch, validation_accuracy(), lr};
      if (report.validation_accuracy > best_accuracy_) {
        best_accuracy_ = report.validation_accuracy;
        bad_epochs_ = 0;
        save_model(options_.checkpoint_dir / "best.pt");
      } else {
        ++bad_epochs_;
      }
      save_checkpoint();
      reports.push_back(report);
    }
    return reports;
  }

  double best_validation_accuracy() const { return best_accuracy_; }
  int epochs_done() const { return epoch_; }
  TorchScriptBackbone& backbone() { return *backbone_; }

 private:
  torch::Tensor chip(const std::filesystem::path& file) {
    auto found = chips_.find(file.string());
    if (found != chips_.end()) return found->second;
    const auto image = read_image(file);
    const cv::Mat face = pipeline_ ? pipeline_->align(image, file.string()).chip : image;
    return chips_[file.string()] = to_input_tensor(face, backbone_->input_spec())[0];
  }

  torch::Tensor embed(const std::vector<torch::Tensor>& chips) {
    return backbone_->module().forward({torch::stack(chips)}).toTensor();
  }

  double train_step() {
    // One anchor-positive pair from each of people_per_batch people; negatives mined in batch.
    std::vector<std::size_t> chosen = with_two_;
    std::shuffle(chosen.begin(), chosen.end(), rng_);
    chosen.resize(std::min<std::size_t>(chosen.size(), static_cast<std::size_t>(options_.people_per_batch)));
    std::vector<torch::Tensor> chips;
    std::vector<std::int64_t> labels, anchors, positives;
    for (std::size_t person : chosen) {
      const auto& images = people_.people()[person].images;
      std::vector<std::size_t> pick(images.size());
      std::iota(pick.begin(), pick.end(), 0);
      std::shuffle(pick.begin(), pick.end(), rng_);
      anchors.push_back(static_cast<std::int64_t>(chips.size()));
      chips.push_back(chip(images[pick[0]]));
      positives.push_back(static_cast<std::int64_t>(chips.size()));
      chips.push_back(chip(images[pick[1]]));
      labels.insert(labels.end(), {static_cast<std::int64_t>(person), static_cast<std::int64_t>(person)});
    }
    const auto embeddings = embed(chips);
    const auto negatives = select_negatives(embeddings, labels, anchors, positives, options_.mining, rng_);
    auto rows = [&](const std::vector<std::int64_t>& index) { return embeddings.index_select(0, torch::tensor(index)); };
    const EuclideanDistance distance;
    const auto a = rows(anchors);
    auto loss = triplet_loss(distance(a, rows(positives)), distance(a, rows(negatives)), options_.margin);
    optimizer_->zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(trainable_, options_.clip_norm);
    optimizer_->step();
    return loss.item<double>();
  }

  void set_learning_rate(double lr) {
    for (auto& group : optimizer_->param_groups()) {
      if (options_.use_sgd) {
        static_cast<torch::optim::SGDOptions&>(group.options()).lr(lr);
      } else {
        static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
      }
    }
  }

  void save_model(const std::filesystem::path& file) {
    siamese::detail::replace_file(file, "model", [&](const std::string& temporary) {
      save_backbone(backbone_->module(), temporary, backbone_->metadata());
    });
  }

  void save_checkpoint() {
    save_model(options_.checkpoint_dir / "last.pt");
    siamese::detail::replace_file(options_.checkpoint_dir / "optimizer.pt", "optimizer state",
                         [&](const std::string& temporary) { torch::save(*optimizer_, temporary); });
    const nlohmann::json state = {{"epoch", epoch_}, {"best_validation_accuracy", best_accuracy_},
                                  {"bad_epochs", bad_epochs_}, {"rng_seed", options_.seed + 7919u * epoch_}};
    siamese::detail::write_file_atomically(options_.checkpoint_dir / "state.json", state.dump(2) + "\n", "training state");
  }

  void resume() {
    const auto state_file = options_.checkpoint_dir / "state.json";
    try {
      std::ifstream in(state_file);
      const auto state = nlohmann::json::parse(in);
      epoch_ = static_cast<int>(siamese::detail::json_integer(state.at("epoch"), "epoch", 0, 1 << 30));
      best_accuracy_ = state.at("best_validation_accuracy").get<double>();
      bad_epochs_ = static_cast<int>(siamese::detail::json_integer(state.at("bad_epochs"), "bad_epochs", 0, 1 << 30));
      const auto& seed = state.at("rng_seed");
      if (!seed.is_number_integer()) throw MetadataError("rng_seed must be an integer");
      rng_.seed(seed.get<std::uint64_t>());
      torch::load(*optimizer_, (options_.checkpoint_dir / "optimizer.pt").string());
    } catch (const std::exception& e) {
      throw ModelError("cannot resume from '" + options_.checkpoint_dir.string() + "': " + e.what());
    }
  }

  FacePipeline* pipeline_;
  IdentityFolder people_;
  std::vector<eval::ImagePair> validation_;
  FineTuneOptions options_;
  std::mt19937_64 rng_;
  std::optional<TorchScriptBackbone> backbone_;
  std::vector<std::size_t> with_two_;
  std::vector<torch::Tensor> trainable_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::map<std::string, torch::Tensor> chips_;
  int epoch_ = 0;
  int bad_epochs_ = 0;
  double best_accuracy_ = -1.0;
};

}  // namespace siamese::train
