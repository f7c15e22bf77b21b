#pragma once

#include <siamese/backbone.hpp>
#include <siamese/detail/files.hpp>
#include <siamese/detail/json.hpp>
#include <siamese/distance.hpp>
#include <siamese/errors.hpp>
#include <siamese/eval/metrics.hpp>
#include <siamese/eval/pairs.hpp>
#include <siamese/progress.hpp>
#include <siamese/train/chips.hpp>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

namespace siamese::train {

/// How a training run learns and when it stops: what FineTuneOptions and DistillOptions share.
struct TrainingSchedule {
  /// Parameter-name prefixes to train; every other parameter stays frozen. Empty: refused.
  std::vector<std::string> trainable;
  bool use_sgd = false;            ///< Adam by default; SGD with momentum 0.9 when true
  double learning_rate = 1e-4;
  double lr_decay = 0.5;           ///< learning rate multiplied by this ...
  int decay_every = 2;             ///< ... every this many epochs
  double clip_norm = 1.0;          ///< gradient clipping (L2 norm over trainable parameters)
  int epochs = 4;
  int patience = 2;                ///< early stopping: epochs without validation gain
  std::uint64_t seed = 1;
  std::filesystem::path checkpoint_dir;  ///< where checkpoints go; required
  /// Where the network, its inputs and the optimiser's state live while training. Checkpoints
  /// load on any device, whichever this is.
  Device device = Device::automatic();
};

/// What an epoch achieved.
struct EpochReport {
  int epoch = 0;
  double loss = 0.0;
  double validation_accuracy = 0.0;  ///< best-threshold accuracy on the validation pairs
  double learning_rate = 0.0;
};

namespace detail {

/// What FineTuner and Distiller share: a TorchScript backbone of which only the parameters
/// named by prefix learn, Adam or SGD, a step learning-rate schedule, gradient clipping, early
/// stopping on validation pairs, and checkpoints that resume.
///
/// `Options` derives from TrainingSchedule. A derived class supplies steps_per_epoch() and
/// train_step(), and calls start() from its constructor.
///
/// Checkpoints in checkpoint_dir, each loadable on any device: last.pt (TorchScript with
/// metadata, an ordinary backbone file), optimizer.pt, state.json; best.pt is the model with the
/// best validation accuracy so far. Starting on a folder with state.json resumes from it. The module stays in eval mode:
/// BatchNorm statistics and dropout stay as they are at inference.
template <class Options>
class EpochTrainer {
  static_assert(std::is_base_of_v<TrainingSchedule, Options>, "EpochTrainer's options derive from TrainingSchedule");

 public:
  EpochTrainer(const EpochTrainer&) = delete;
  EpochTrainer& operator=(const EpochTrainer&) = delete;
  virtual ~EpochTrainer() = default;

  std::size_t trainable_parameter_count() const {
    std::size_t n = 0;
    for (const auto& t : trainable_) n += static_cast<std::size_t>(t.numel());
    return n;
  }

  /// Validation accuracy of the current weights (best threshold over the validation pairs).
  double validation_accuracy() {
    if (validation_.empty()) return 0.0;
    torch::InferenceMode guard;
    const eval::PairList list{validation_, 1};
    const auto files = eval::distinct_images(list);
    std::map<std::string, torch::Tensor> embedding;
    constexpr std::size_t batch = 32;
    for (std::size_t first = 0; first < files.size(); first += batch) {
      std::vector<torch::Tensor> chips;
      const std::size_t last = std::min(files.size(), first + batch);
      for (std::size_t i = first; i < last; ++i) chips.push_back(chip(files[i]));
      const torch::Tensor e = backbone_->module().forward({on_device(torch::stack(chips))}).toTensor();
      for (std::size_t i = first; i < last; ++i) embedding[files[i].string()] = e[static_cast<std::int64_t>(i - first)];
    }
    std::vector<double> distances;
    std::vector<int> labels;
    for (const auto& pair : validation_) {
      const auto& a = embedding.at(pair.a.string());
      const auto& b = embedding.at(pair.b.string());
      distances.push_back(EuclideanDistance{}(a.unsqueeze(0), b.unsqueeze(0)).template item<double>());
      labels.push_back(pair.label);
    }
    return eval::evaluate_scores<EuclideanDistance>(distances, labels).best_accuracy;
  }

  /// Trains until options.epochs or early stopping. Ensures: last.pt and best.pt written.
  /// `progress` is told after every step (`task`, in steps; the note holds the epoch and the
  /// epoch's mean loss so far).
  std::vector<EpochReport> run(const ProgressCallback& progress = {}) {
    std::vector<EpochReport> reports;
    if (epoch_ == 0 && best_accuracy_ < 0) {
      best_accuracy_ = validation_accuracy();
      save_model(options_.checkpoint_dir / "best.pt");
    }
    const int steps = steps_per_epoch();
    ProgressCounter counter(progress, task_, "steps", static_cast<std::size_t>((options_.epochs - epoch_) * steps));
    while (!finished()) {
      // Every epoch draws from a generator seeded by its own number, so a run resumed at
      // epoch K draws what the uninterrupted run drew in epochs K+1.. (same losses, same weights).
      rng_.seed(epoch_seed(epoch_));
      const double lr = options_.learning_rate * std::pow(options_.lr_decay, epoch_ / options_.decay_every);
      set_learning_rate(lr);
      double loss_sum = 0.0;
      for (int step = 0; step < steps; ++step) {
        loss_sum += train_step();
        counter.advance(1, "epoch " + std::to_string(epoch_ + 1) + ", loss " + std::to_string(loss_sum / (step + 1)));
      }
      ++epoch_;
      EpochReport report{epoch_, loss_sum / steps, validation_accuracy(), lr};
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

  /// True when run() has nothing left to do: every epoch done, or stopped early.
  bool finished() const { return epoch_ >= options_.epochs || bad_epochs_ >= options_.patience; }

  double best_validation_accuracy() const { return best_accuracy_; }
  int epochs_done() const { return epoch_; }
  TorchScriptBackbone& backbone() { return *backbone_; }

 protected:
  /// `task` names the work in progress reports and errors ("fine-tuning", "distillation").
  EpochTrainer(std::string task, ChipSource chips, std::vector<eval::ImagePair> validation, Options options)
      : task_(std::move(task)), chip_source_(std::move(chips)), validation_(std::move(validation)),
        options_(std::move(options)), rng_(options_.seed) {
    if (!chip_source_) throw Error(task_ + " needs a chip source");
    if (options_.trainable.empty()) throw Error(task_ + " needs at least one trainable parameter prefix");
    if (options_.checkpoint_dir.empty()) throw Error(task_ + " needs a checkpoint_dir");
  }

  bool resuming() const { return std::filesystem::exists(options_.checkpoint_dir / "state.json"); }

  /// Loads `model` (or, when resuming, checkpoint_dir/last.pt), unfreezes the parameters the
  /// options name, builds the optimizer and restores its state when resuming.
  void start(const std::filesystem::path& model) {
    siamese::detail::create_folder(options_.checkpoint_dir, "checkpoint");
    const bool resume_now = resuming();
    BackboneOptions load;
    load.device = options_.device;
    load.optimize = false;
    backbone_.emplace(resume_now ? options_.checkpoint_dir / "last.pt" : model, load);
    for (const auto& parameter : backbone_->module().named_parameters(/*recurse=*/true)) {
      const bool train = parameter_is_trainable(parameter.name);
      parameter.value.set_requires_grad(train);
      if (train) trainable_.push_back(parameter.value);
    }
    if (trainable_.empty()) throw Error("no parameter of '" + model.string() + "' starts with the given prefixes");
    if (options_.use_sgd) {
      optimizer_ = std::make_unique<torch::optim::SGD>(trainable_, torch::optim::SGDOptions(options_.learning_rate).momentum(0.9));
    } else {
      optimizer_ = std::make_unique<torch::optim::Adam>(trainable_, torch::optim::AdamOptions(options_.learning_rate));
    }
    if (resume_now) resume();
  }

  virtual int steps_per_epoch() const = 0;
  /// One optimisation step; returns its loss.
  virtual double train_step() = 0;

  /// Clears gradients, back-propagates `loss`, clips and steps. Returns the loss's value.
  double optimise(const torch::Tensor& loss) {
    optimizer_->zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(trainable_, options_.clip_norm);
    optimizer_->step();
    return loss.item<double>();
  }

  /// The input tensor [3,H,W] of `file`'s face at the backbone's input spec, on the CPU, from
  /// the chip source once.
  torch::Tensor chip(const std::filesystem::path& file) {
    auto found = chips_.find(file.string());
    if (found != chips_.end()) return found->second;
    return chips_[file.string()] = detail::checked_chip(chip_source_, file, backbone_->input_spec()).to(torch::kCPU);
  }

  /// `batch` on the training device, as float32.
  torch::Tensor on_device(const torch::Tensor& batch) const {
    return siamese::detail::moved_to(batch, options_.device.torch_device(), torch::kFloat32, task_);
  }

  bool parameter_is_trainable(const std::string& name) const {
    return std::any_of(options_.trainable.begin(), options_.trainable.end(),
                       [&](const std::string& prefix) { return name.rfind(prefix, 0) == 0; });
  }

  std::string task_;
  ChipSource chip_source_;
  std::vector<eval::ImagePair> validation_;
  Options options_;
  std::mt19937_64 rng_;
  std::optional<TorchScriptBackbone> backbone_;

 private:
  std::uint64_t epoch_seed(int epoch) const { return options_.seed + 7919u * static_cast<std::uint64_t>(epoch); }

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
    const nlohmann::json state = {{"epoch", epoch_}, {"best_validation_accuracy", best_accuracy_}, {"bad_epochs", bad_epochs_}};
    siamese::detail::write_file_atomically(options_.checkpoint_dir / "state.json", state.dump(2) + "\n", "training state");
  }

  void resume() {
    const auto state_file = options_.checkpoint_dir / "state.json";
    try {
      std::ifstream in(state_file);
      const auto state = nlohmann::json::parse(in);
      epoch_ = static_cast<int>(siamese::detail::json_integer(state.at("epoch"), "epoch", 0, 1 << 30));
      best_accuracy_ = siamese::detail::json_number(state.at("best_validation_accuracy"), "best_validation_accuracy");
      bad_epochs_ = static_cast<int>(siamese::detail::json_integer(state.at("bad_epochs"), "bad_epochs", 0, 1 << 30));
      torch::load(*optimizer_, (options_.checkpoint_dir / "optimizer.pt").string(), options_.device.torch_device());
    } catch (const std::exception& e) {
      throw ModelError("cannot resume from '" + options_.checkpoint_dir.string() + "': " + e.what());
    }
  }

  std::vector<torch::Tensor> trainable_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::map<std::string, torch::Tensor> chips_;
  int epoch_ = 0;
  int bad_epochs_ = 0;
  double best_accuracy_ = -1.0;
};

}  // namespace detail
}  // namespace siamese::train
