#pragma once

#include <siamese/backbone.hpp>
#include <siamese/errors.hpp>
#include <siamese/progress.hpp>
#include <siamese/train/chips.hpp>
#include <siamese/train/epoch_trainer.hpp>

#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace siamese::train {

/// How distillation runs. The student is wrapped as `projection(top(stem(x)))` (see
/// Distiller), so the default `trainable` trains everything after the stem and the new
/// projection.
struct DistillOptions : TrainingSchedule {
  int batch_size = 32;             ///< chips per step
  bool mirror = true;              ///< also learn every chip's mirror image (twice the samples)
  std::string name;                ///< the student's name in its metadata; default: its own + "-distilled"

  DistillOptions() {
    trainable = {"top", "projection"};
    learning_rate = 1e-3;
    decay_every = 4;
    clip_norm = 10.0;
    epochs = 12;
    patience = 3;
  }
};

/// Trains a student backbone to reproduce a teacher's embeddings on face chips: the loss is
/// the squared Euclidean distance between the two, so the student's distances become the
/// teacher's and the result is an ordinary backbone file (best.pt) with the teacher's
/// embedding size. Identity labels are not needed; the validation pairs measure verification.
///
/// The student is wrapped once, into checkpoint_dir/start.pt, as
///   forward(x) = from_stem(stem(x)),  from_stem(s) = top(s) @ projection_weight^T + projection_bias
/// when its file has submodules `stem` and `top` with forward(x) == top(stem(x))
/// (tools/convert_keras_tfjs.py --split writes that), else with `top` = the whole network and
/// no stem. The projection maps the student's D to the teacher's D, initialised small and
/// random (seeded). A student that already has `from_stem` (a distilled file) is used as is.
///
/// While no trainable prefix reaches into the stem, each chip's stem output is computed once
/// and kept (float16) for every epoch: training then costs only the top. Memory: samples x the
/// stem output's size x 2 bytes (InceptionV3 at 160 split at mixed7: 98 KB per sample).
class Distiller : public detail::EpochTrainer<DistillOptions> {
 public:
  /// Requires: `images` not empty (photos of people not in any test list), each one `chips`
  /// can give (photo_chips() reads and aligns photos; its chip size should then be the
  /// student's input side); the teacher loaded on any device.
  /// Throws Error for bad options, ModelError / MetadataError for unloadable models.
  Distiller(const std::filesystem::path& student, const TorchScriptBackbone& teacher, ChipSource chips,
            std::vector<std::filesystem::path> images, std::vector<eval::ImagePair> validation, DistillOptions options)
      : EpochTrainer("distillation", std::move(chips), std::move(validation), std::move(options)), teacher_(teacher),
        images_(std::move(images)) {
    if (images_.empty()) throw Error("Distiller needs at least one training image");
    if (options_.batch_size < 1) throw Error("Distiller needs a batch size of at least 1");
    siamese::detail::create_folder(options_.checkpoint_dir, "checkpoint");
    const auto start_file = options_.checkpoint_dir / "start.pt";
    if (!resuming()) write_start(student, start_file);
    start(start_file);
    auto& module = backbone_->module();
    cache_stem_ = module.hasattr("stem");
    for (const auto& parameter : module.named_parameters(/*recurse=*/true)) {
      if (parameter.name.rfind("stem.", 0) == 0 && parameter_is_trainable(parameter.name)) cache_stem_ = false;
    }
  }

  /// Samples per epoch: the images, twice with mirror.
  std::size_t sample_count() const { return images_.size() * (options_.mirror ? 2 : 1); }

  /// True when stem outputs are cached (the stem is frozen).
  bool caches_stem() const { return cache_stem_; }

  /// Gets every image's chip, embeds it with the teacher, and runs the frozen stem, once,
  /// keeping the results in host memory. run() calls it when needed; call it first to see its
  /// progress ("distillation data", in images). Throws the first unreadable image's error,
  /// naming the file.
  void prepare(const ProgressCallback& progress = {}) {
    if (!inputs_.empty()) return;
    for_each_chunk(progress, [&](std::size_t, const torch::Tensor& chips, const torch::Tensor& targets) {
      auto inputs = chips;
      if (cache_stem_) inputs = backbone_->module().attr("stem").toModule().forward({on_device(chips)}).toTensor();
      inputs = inputs.to(torch::kCPU, torch::kHalf);
      for (std::int64_t i = 0; i < inputs.size(0); ++i) {
        inputs_.push_back(inputs[i].clone());
        targets_.push_back(targets[i].clone());
      }
    });
  }

  /// The images, the teacher and whether mirror images are learnt: what export_samples()
  /// (siamese/train/photo_chips.hpp) writes out.
  const std::vector<std::filesystem::path>& images() const { return images_; }
  const TorchScriptBackbone& teacher() const { return teacher_; }
  bool mirror() const { return options_.mirror; }

 private:
  /// Calls consume(first image index, student inputs, teacher embeddings) for every chunk of up
  /// to 32 images, in order: the student's inputs [chips,3,H,W] float32 of the images' chips,
  /// then (with mirror) of their mirror images, and the teacher's embeddings of the same chips
  /// at its own input spec, [chips, D] float32 on the CPU.
  template <class Consume>
  void for_each_chunk(const ProgressCallback& progress, Consume consume) {
    torch::NoGradGuard no_grad;
    ProgressCounter counter(progress, "distillation data", "images", images_.size());
    const auto& student_spec = backbone_->input_spec();
    const auto& teacher_spec = teacher_.input_spec();
    const bool same_spec = student_spec == teacher_spec;
    constexpr std::size_t chunk = 32;
    for (std::size_t first = 0; first < images_.size(); first += chunk) {
      const std::size_t last = std::min(images_.size(), first + chunk);
      std::vector<torch::Tensor> student, teacher;
      for (std::size_t i = first; i < last; ++i) {
        student.push_back(detail::checked_chip(chip_source_, images_[i], student_spec).to(torch::kCPU));
        teacher.push_back(same_spec ? student.back()
                                    : detail::checked_chip(chip_source_, images_[i], teacher_spec).to(torch::kCPU));
      }
      auto student_batch = torch::stack(student), teacher_batch = torch::stack(teacher);
      if (options_.mirror) {  // normalisation is per pixel, so a flipped input is the flipped chip's input
        student_batch = torch::cat({student_batch, student_batch.flip({3})});
        teacher_batch = torch::cat({teacher_batch, teacher_batch.flip({3})});
      }
      consume(first, student_batch, teacher_.embed(teacher_batch).to(torch::kCPU));
      counter.advance(last - first);
    }
  }

  int steps_per_epoch() const override {
    return static_cast<int>((sample_count() + static_cast<std::size_t>(options_.batch_size) - 1) /
                            static_cast<std::size_t>(options_.batch_size));
  }

  double train_step() override {
    prepare();
    if (next_ == 0) {
      order_.resize(inputs_.size());
      std::iota(order_.begin(), order_.end(), std::size_t{0});
      std::shuffle(order_.begin(), order_.end(), rng_);
    }
    const std::size_t end = std::min(order_.size(), next_ + static_cast<std::size_t>(options_.batch_size));
    std::vector<torch::Tensor> inputs, targets;
    for (std::size_t i = next_; i < end; ++i) {
      inputs.push_back(inputs_[order_[i]]);
      targets.push_back(targets_[order_[i]]);
    }
    next_ = end == order_.size() ? 0 : end;
    const auto input = on_device(torch::stack(inputs));
    auto& module = backbone_->module();
    const auto output = (cache_stem_ ? module.get_method("from_stem")({input}) : module.forward({input})).toTensor();
    return optimise((output - on_device(torch::stack(targets))).pow(2).sum(1).mean());
  }

  void write_start(const std::filesystem::path& student, const std::filesystem::path& file) const {
    BackboneOptions load;
    load.device = Device::cpu();
    load.optimize = false;
    const TorchScriptBackbone original(student, load);
    auto metadata = original.metadata();
    const auto& source = original.module();
    if (source.find_method("from_stem")) {
      siamese::detail::replace_file(file, "model", [&](const std::string& t) { save_backbone(source, t, metadata); });
      return;
    }
    const std::int64_t in = original.embedding_size(), out = teacher_.embedding_size();
    torch::jit::Module wrapped(c10::QualifiedName("__torch__.siamese.DistilledBackbone"));
    const bool split = source.hasattr("stem") && source.hasattr("top");
    if (split) {
      wrapped.register_module("stem", source.attr("stem").toModule());
      wrapped.register_module("top", source.attr("top").toModule());
    } else {
      wrapped.register_module("top", source);
    }
    // nn.Linear's initial range, drawn from the options' seed so that runs repeat.
    std::mt19937_64 rng(options_.seed);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    const float bound = 1.0f / std::sqrt(static_cast<float>(in));
    auto weight = torch::empty({out, in});
    for (float* w = weight.data_ptr<float>(), *end = w + weight.numel(); w != end; ++w) *w = bound * uniform(rng);
    wrapped.register_parameter("projection_weight", weight, false);
    wrapped.register_parameter("projection_bias", torch::zeros({out}), false);
    wrapped.define(std::string(split ? "def forward(self, x: Tensor) -> Tensor:\n    return self.from_stem(self.stem.forward(x))\n"
                                     : "def forward(self, x: Tensor) -> Tensor:\n    return self.from_stem(x)\n") +
                   "def from_stem(self, s: Tensor) -> Tensor:\n"
                   "    return torch.matmul(self.top.forward(s), self.projection_weight.t()) + self.projection_bias\n");
    wrapped.eval();
    metadata.embedding_size = out;
    metadata.name = options_.name.empty() ? metadata.name + "-distilled" : options_.name;
    metadata.weights += "; distilled from '" + teacher_.metadata().name + "' on " + std::to_string(images_.size()) +
                        " face photos";
    metadata.alignment = teacher_.metadata().alignment;
    metadata.distance_threshold = teacher_.metadata().distance_threshold;
    siamese::detail::replace_file(file, "model", [&](const std::string& t) { save_backbone(wrapped, t, metadata); });
  }

  TorchScriptBackbone teacher_;  // a copy shares the caller's module
  std::vector<std::filesystem::path> images_;
  bool cache_stem_ = false;
  std::vector<torch::Tensor> inputs_, targets_;
  std::vector<std::size_t> order_;
  std::size_t next_ = 0;
};

}  // namespace siamese::train
