// Builds a SiameseNet from the installed headers and runs it on a model it makes itself, and
// enrolls into a gallery database.
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
  // A gallery database: SQLite comes through the package's dependencies.
  const auto db = std::filesystem::temp_directory_path() / "siamese-consumer.db";
  std::filesystem::remove(db);
  siamese::Gallery::open(db, metadata.name, metadata.embedding_size).enroll("someone", torch::zeros({3}));
  const auto enrolled = siamese::Gallery::open(db).size();
  for (const auto* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(db.string() + suffix);
  if (enrolled != 1) return 1;
  // Means of 0 and 1 over 3 channels: sqrt(3).
  return std::abs(result.distance - std::sqrt(3.0)) < 1e-4 ? 0 : 1;
}
