// Builds a SiameseNet from the installed headers and runs it on a model it makes itself, and
// enrolls into a gallery database.
#include <siamese/siamese.hpp>

#include "mean_pool_backbone.hpp"

#include <filesystem>
#include <iostream>

int main() {
  const auto file = std::filesystem::temp_directory_path() / "siamese-consumer-mean.pt";
  const auto metadata = consumer::save_mean_pool_backbone(file);
  const double distance = consumer::zeros_against_ones(file);
  std::filesystem::remove(file);
  std::cout << "distance " << distance << '\n';
  // A gallery database: SQLite comes through the package's dependencies.
  const auto db = std::filesystem::temp_directory_path() / "siamese-consumer.db";
  std::filesystem::remove(db);
  siamese::Gallery::open(db, metadata.name, metadata.embedding_size).enroll("someone", torch::zeros({3}));
  const auto enrolled = siamese::Gallery::open(db).size();
  for (const auto* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(db.string() + suffix);
  if (enrolled != 1) return 1;
  // Means of 0 and 1 over 3 channels: sqrt(3).
  return std::abs(distance - std::sqrt(3.0)) < 1e-4 ? 0 : 1;
}
