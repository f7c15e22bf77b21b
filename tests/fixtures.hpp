#pragma once

// Tiny TorchScript models and temporary folders made by the tests themselves.

#include <siamese/siamese.hpp>

#include <torch/script.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace fixtures {

/// A fresh folder under the system temp dir, removed when the object goes.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("siamese-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline constexpr int input_side = 8;
inline constexpr std::int64_t embedding_size = 4;

/// A small conv net: conv3x3(3->6) + ReLU + global mean + linear(6->D).
inline torch::jit::Module tiny_embedder(std::int64_t dim = embedding_size, std::uint64_t seed = 7) {
  torch::manual_seed(seed);
  torch::jit::Module module("TinyEmbedder");
  module.register_parameter("conv_weight", torch::randn({6, 3, 3, 3}) * 0.3, false);
  module.register_parameter("conv_bias", torch::randn({6}) * 0.1, false);
  module.register_parameter("fc_weight", torch::randn({dim, 6}), false);
  module.define(R"JIT(
    def forward(self, x):
        y = torch.conv2d(x, self.conv_weight, self.conv_bias, [1, 1], [1, 1])
        y = torch.relu(y).mean([2, 3])
        return torch.mm(y, self.fc_weight.t())
  )JIT");
  return module;
}

/// A module whose forward body is `body` (TorchScript source of one expression of x).
inline torch::jit::Module module_returning(const std::string& body) {
  torch::jit::Module module("Odd");
  module.define("def forward(self, x):\n    return " + body + "\n");
  return module;
}

inline siamese::BackboneMetadata tiny_metadata(std::int64_t dim = embedding_size) {
  siamese::BackboneMetadata m;
  m.name = "tiny-embedder";
  m.architecture = "test-conv";
  m.input.height = input_side;
  m.input.width = input_side;
  m.input.scale = 1.0 / 255.0;
  m.input.mean = {0.5, 0.5, 0.5};
  m.input.std = {0.25, 0.25, 0.25};
  m.embedding_size = dim;
  m.pretrained = true;  // not really; keeps the untrained-weights warning out of test logs
  m.distance_threshold = 0.6;  // as the face model publishes: load_face_verifier gives verdicts
  m.weights = "random, made by the test";
  m.license = "MIT";
  return m;
}

/// Saves the tiny embedder with metadata and returns its path.
inline std::filesystem::path save_tiny_backbone(const TempDir& dir,
                                                const std::string& name = "tiny.pt") {
  const auto file = dir / name;
  siamese::save_backbone(tiny_embedder(), file, tiny_metadata());
  return file;
}

inline siamese::BackboneOptions cpu_options(bool optimize = false) {
  siamese::BackboneOptions options;
  options.device = siamese::Device::cpu();
  options.optimize = optimize;
  return options;
}

inline torch::Tensor random_images(std::int64_t n, std::uint64_t seed = 1) {
  torch::manual_seed(seed);
  return torch::randn({n, 3, input_side, input_side});
}

inline void write_file(const std::filesystem::path& file, const std::string& bytes) {
  std::ofstream out(file, std::ios::binary);
  out << bytes;
}

inline std::string read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// The temporary files replace_file() left beside `file` (FILE.tmp.*).
inline std::vector<std::filesystem::path> temporaries_beside(const std::filesystem::path& file) {
  std::vector<std::filesystem::path> found;
  const auto folder = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(folder, ec)) {
    if (entry.path().filename().string().rfind(file.filename().string() + ".tmp.", 0) == 0) found.push_back(entry.path());
  }
  return found;
}

}  // namespace fixtures
