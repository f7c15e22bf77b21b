#pragma once

#include <siamese/distance.hpp>
#include <siamese/errors.hpp>
#include <siamese/train/chips.hpp>
#include <siamese/train/data.hpp>
#include <siamese/train/epoch_trainer.hpp>
#include <siamese/train/losses.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace siamese::train {

/// How fine-tuning runs: the schedule (with `trainable` naming e.g. "blocks.13" for the last
/// block of the face model) and how each step's triplets are made.
struct FineTuneOptions : TrainingSchedule {
  int steps_per_epoch = 10;
  int people_per_batch = 8;        ///< each gives one anchor-positive pair; negatives mined in the batch
  double margin = 0.2;             ///< triplet margin, on raw distances
  Mining mining = Mining::semi_hard;
};

/// Triplet fine-tuning of the last blocks of a TorchScript backbone, with checkpoints that can
/// be resumed and early stopping on validation pairs (see detail::EpochTrainer for the
/// checkpoint files). Each step takes one anchor-positive pair from each of
/// options.people_per_batch people and mines their negatives in the batch.
class FineTuner : public detail::EpochTrainer<FineTuneOptions> {
 public:
  /// Requires: `people` has at least 2 people with 2+ images; options.trainable names at
  /// least one parameter of `model`; `chips` gives every image's input (photo_chips() reads
  /// and aligns photos).
  FineTuner(const std::filesystem::path& model, ChipSource chips, IdentityFolder people,
            std::vector<eval::ImagePair> validation, FineTuneOptions options)
      : EpochTrainer("fine-tuning", std::move(chips), std::move(validation), std::move(options)),
        people_(std::move(people)) {
    if (options_.people_per_batch < 2) throw Error("FineTuner needs at least 2 people per batch");
    for (std::size_t i = 0; i < people_.people().size(); ++i) {
      if (people_.people()[i].images.size() >= 2) with_two_.push_back(i);
    }
    if (with_two_.size() < 2) throw Error("FineTuner needs at least 2 people with 2+ images");
    start(model);
  }

 private:
  int steps_per_epoch() const override { return options_.steps_per_epoch; }

  double train_step() override {
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
    const auto embeddings = backbone_->module().forward({on_device(torch::stack(chips))}).toTensor();
    const auto negatives = select_negatives(embeddings, labels, anchors, positives, options_.mining, rng_);
    const auto on_embeddings = torch::TensorOptions(torch::kLong).device(embeddings.device());
    auto rows = [&](const std::vector<std::int64_t>& index) {
      return embeddings.index_select(0, torch::tensor(index, on_embeddings));
    };
    const EuclideanDistance distance;
    const auto a = rows(anchors);
    return optimise(triplet_loss(distance(a, rows(positives)), distance(a, rows(negatives)), options_.margin));
  }

  IdentityFolder people_;
  std::vector<std::size_t> with_two_;
};

}  // namespace siamese::train
