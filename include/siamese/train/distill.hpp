#pragma once

#include <siamese/backbone.hpp>
#include <siamese/errors.hpp>
#include <siamese/face.hpp>
#include <siamese/image.hpp>
#include <siamese/preprocess.hpp>
#include <siamese/progress.hpp>
#include <siamese/train/epoch_trainer.hpp>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
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
  /// Requires: `images` not empty (photos of people not in any test list), every file a
  /// readable image; the teacher loaded on any device. `pipeline` may be null (images are
  /// already face chips); else its chip size should be the student's input side.
  /// Throws Error for bad options, ModelError / MetadataError for unloadable models.
  Distiller(const std::filesystem::path& student, const TorchScriptBackbone& teacher, FacePipeline* pipeline,
            std::vector<std::filesystem::path> images, std::vector<eval::ImagePair> validation, DistillOptions options)
      : EpochTrainer("distillation", pipeline, std::move(validation), std::move(options)), teacher_(teacher),
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

  /// Reads, aligns and embeds every image with the teacher, and runs the frozen stem, once.
  /// run() calls it when needed; call it first to see its progress ("distillation data",
  /// in images). Throws the first unreadable image's error, naming the file.
  void prepare(const ProgressCallback& progress = {}) {
    if (!inputs_.empty()) return;
    const auto& student_spec = backbone_->input_spec();
    for_each_chunk(progress, [&](std::size_t, std::vector<cv::Mat>& chips, const torch::Tensor& targets) {
      auto inputs = to_input_batch(chips, student_spec);
      if (cache_stem_) inputs = backbone_->module().attr("stem").toModule().forward({inputs}).toTensor();
      inputs = inputs.to(torch::kHalf);
      for (std::int64_t i = 0; i < inputs.size(0); ++i) {
        inputs_.push_back(inputs[i].clone());
        targets_.push_back(targets[i].clone());
      }
    });
  }

  /// Writes the training set that prepare() computes, for training elsewhere (a GPU machine:
  /// tools/distill_gpu.py), into `folder`:
  ///   chips/NNNNNN<extension>  image N's aligned chip, at the student's input side, as
  ///                            cv::imwrite writes it (".png" lossless; ".webp" / ".jpg" at
  ///                            `quality`); a mirror image is its horizontal flip
  ///   samples.tsv              "index<TAB>person<TAB>source file" per image, in order
  ///   targets.f16              float16, little-endian, [images, 2 if mirror else 1, D]: the
  ///                            teacher's embedding of the chip (and of its mirror image)
  ///   samples.json             image count, mirror, D, chip side, extension, teacher name;
  ///                            written last, so a folder without it is an unfinished export
  /// Ensures: nothing in the student is trained or changed. Throws the first unreadable
  /// image's error, naming the file, and FileError when a file cannot be written.
  void export_samples(const std::filesystem::path& folder, const std::string& extension = ".png", int quality = 95,
                      const ProgressCallback& progress = {}) {
    siamese::detail::create_folder(folder / "chips", "distillation samples");
    std::ofstream samples(folder / "samples.tsv"), targets(folder / "targets.f16", std::ios::binary);
    if (!samples || !targets) throw FileError("cannot write the distillation samples in '" + folder.string() + "'");
    const std::vector<int> parameters = {extension == ".webp" ? cv::IMWRITE_WEBP_QUALITY : cv::IMWRITE_JPEG_QUALITY,
                                         quality};
    const std::int64_t views = options_.mirror ? 2 : 1;
    for_each_chunk(progress, [&](std::size_t first, std::vector<cv::Mat>& chips, const torch::Tensor& embeddings) {
      const auto images = static_cast<std::int64_t>(chips.size()) / views;
      // [views * images, D] -> [images, views, D]: each image's chip, then its mirror image.
      const auto ordered = embeddings.view({views, images, -1}).transpose(0, 1).contiguous().to(torch::kHalf);
      targets.write(static_cast<const char*>(ordered.data_ptr()), static_cast<std::streamsize>(ordered.nbytes()));
      for (std::int64_t i = 0; i < images; ++i) {
        const auto index = first + static_cast<std::size_t>(i);
        char name[16];
        std::snprintf(name, sizeof name, "%06zu", index);
        const auto file = folder / "chips" / (name + extension);
        cv::Mat bgr;  // the library's images are RGB; image files are written from BGR
        cv::cvtColor(chips[static_cast<std::size_t>(i)], bgr, cv::COLOR_RGB2BGR);
        if (!cv::imwrite(file.string(), bgr, parameters)) {
          throw FileError("cannot write the chip '" + file.string() + "'");
        }
        samples << index << '\t' << images_[index].parent_path().filename().string() << '\t' << images_[index].string()
                << '\n';
      }
    });
    if (!samples.flush() || !targets.flush()) throw FileError("cannot write the distillation samples in '" + folder.string() + "'");
    nlohmann::json facts = {{"images", images_.size()},
                            {"mirror", options_.mirror},
                            {"embedding_size", teacher_.embedding_size()},
                            {"side", backbone_->input_spec().width},
                            {"extension", extension},
                            {"teacher", teacher_.metadata().name}};
    siamese::detail::write_file_atomically(folder / "samples.json", facts.dump(2) + "\n", "distillation samples");
  }

 private:
  /// Calls consume(first image index, chips, teacher embeddings) for every chunk of up to 32
  /// images, in order: their aligned chips, then (with mirror) the chips' mirror images, and
  /// the teacher's embeddings of all of them, [chips, D] float32 on the CPU.
  template <class Consume>
  void for_each_chunk(const ProgressCallback& progress, Consume consume) {
    torch::NoGradGuard no_grad;
    ProgressCounter counter(progress, "distillation data", "images", images_.size());
    constexpr std::size_t chunk = 32;
    for (std::size_t first = 0; first < images_.size(); first += chunk) {
      const std::size_t last = std::min(images_.size(), first + chunk);
      std::vector<cv::Mat> photos;
      std::vector<std::string> names;
      for (std::size_t i = first; i < last; ++i) {
        photos.push_back(read_image(images_[i]));
        names.push_back(images_[i].string());
      }
      std::vector<cv::Mat> chips;
      if (pipeline_) {
        for (auto& face : pipeline_->align_batch(photos, names)) chips.push_back(face.chip);
      } else {
        chips = photos;
      }
      if (options_.mirror) {
        for (std::size_t i = 0, n = chips.size(); i < n; ++i) {
          cv::Mat flipped;
          cv::flip(chips[i], flipped, 1);
          chips.push_back(flipped);
        }
      }
      const auto targets = teacher_.embed(to_input_batch(chips, teacher_.input_spec())).to(torch::kCPU);
      consume(first, chips, targets);
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
    const auto input = torch::stack(inputs).to(torch::kFloat32);
    auto& module = backbone_->module();
    const auto output = (cache_stem_ ? module.get_method("from_stem")({input}) : module.forward({input})).toTensor();
    return optimise((output - torch::stack(targets)).pow(2).sum(1).mean());
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
