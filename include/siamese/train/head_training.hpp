#pragma once

#include <siamese/errors.hpp>
#include <siamese/head.hpp>
#include <siamese/train/losses.hpp>

#include <torch/torch.h>

#include <vector>

namespace siamese::train {

struct HeadTrainingOptions {
  int epochs = 300;
  double learning_rate = 0.05;
};

/// Trains a SigmoidHead on precomputed distances (the frozen-backbone regime: seconds, not
/// hours) with Adam on binary cross-entropy, starting from `head`'s parameters, on the device
/// the head lives on.
/// Requires: one 0/1 label per distance. Ensures: the head's parameters are updated in place;
/// returns the final training loss.
inline double train_head(SigmoidHead& head, const std::vector<double>& distances, const std::vector<int>& labels,
                         const HeadTrainingOptions& options = {}) {
  if (distances.size() != labels.size() || distances.empty()) {
    throw ShapeError("train_head needs one label per distance");
  }
  const auto on_head = torch::TensorOptions(torch::kFloat32).device(head->weight.device());
  const auto d = torch::tensor(std::vector<float>(distances.begin(), distances.end()), on_head).unsqueeze(1);
  const auto y = torch::tensor(std::vector<float>(labels.begin(), labels.end()), on_head).unsqueeze(1);
  torch::optim::Adam optimizer(head->parameters(), torch::optim::AdamOptions(options.learning_rate));
  double last = 0.0;
  for (int epoch = 0; epoch < options.epochs; ++epoch) {
    optimizer.zero_grad();
    auto loss = siamese::train::binary_cross_entropy(head->logits(d), y);
    loss.backward();
    optimizer.step();
    last = loss.item<double>();
  }
  return last;
}

}  // namespace siamese::train
