// Uses siamese::core alone: its headers must compile with no OpenCV on the include path
// (Debian keeps OpenCV's headers in /usr/include/opencv4, off the default path).
#if __has_include(<opencv2/core.hpp>)
#error "OpenCV's headers are on the include path of a siamese::core consumer"
#endif

#include <siamese/core.hpp>

#include "mean_pool_backbone.hpp"

#include <cmath>

#include <filesystem>
#include <iostream>

int main() {
  const auto file = std::filesystem::temp_directory_path() / "siamese-core-consumer-mean.pt";
  consumer::save_mean_pool_backbone(file);
  const double distance = consumer::zeros_against_ones(file);
  std::filesystem::remove(file);
  std::cout << "core: distance " << distance << '\n';
  // Means of 0 and 1 over 3 channels: sqrt(3).
  return std::abs(distance - std::sqrt(3.0)) < 1e-4 ? 0 : 1;
}
