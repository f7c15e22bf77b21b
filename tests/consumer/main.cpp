// Builds a SiameseNet from the installed headers and runs it on a model it makes itself.
#include <siamese/siamese.hpp>

#include <filesystem>
#include <iostream>

int main() {
  torch::jit::Module module("Mean");
  module.define("def forward(self, x):\n    return x.mean([2, 3])\n");
  siamese::BackboneMetadata metadata;
  metadata.name = "mean-pool";
  metadata.input.height = metadata.input.width = 4;
  metadata.embedding_size = 3;
  const auto file = std::filesystem::temp_directory_path() / "siamese-consumer-mean.pt";
  siamese::save_backbone(module, file, metadata);

  siamese::BackboneOptions options;
  options.device = siamese::Device::cpu();
  siamese::FaceVerifier net(siamese::TorchScriptBackbone(file, options));
  const auto result = net.verify(torch::zeros({3, 4, 4}), torch::ones({3, 4, 4}));
  std::filesystem::remove(file);
  std::cout << "distance " << result.distance << '\n';
  // Means of 0 and 1 over 3 channels: sqrt(3).
  return std::abs(result.distance - std::sqrt(3.0)) < 1e-4 ? 0 : 1;
}
