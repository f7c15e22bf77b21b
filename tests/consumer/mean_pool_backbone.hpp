#pragma once

// The consumers' model, made with siamese::core alone: channel means of a 4x4 image.

#include <siamese/backbone.hpp>
#include <siamese/siamese_net.hpp>

#include <filesystem>

namespace consumer {

/// A backbone file `file` whose embedding is the mean of each channel; returns its metadata.
inline siamese::BackboneMetadata save_mean_pool_backbone(const std::filesystem::path& file) {
  torch::jit::Module module("Mean");
  module.define("def forward(self, x):\n    return x.mean([2, 3])\n");
  siamese::BackboneMetadata metadata;
  metadata.name = "mean-pool";
  metadata.input.height = metadata.input.width = 4;
  metadata.embedding_size = 3;
  siamese::save_backbone(module, file, metadata);
  return metadata;
}

/// Verifies zeros against ones with the backbone in `file` on the CPU: distance sqrt(3).
inline double zeros_against_ones(const std::filesystem::path& file) {
  siamese::BackboneOptions options;
  options.device = siamese::Device::parse("cpu");
  siamese::FaceVerifier net(siamese::TorchScriptBackbone(file, options));
  return net.verify(torch::zeros({3, 4, 4}), torch::ones({3, 4, 4})).distance;
}

}  // namespace consumer
