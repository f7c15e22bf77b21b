#pragma once

// The library's version, kept in step with project(VERSION) in CMakeLists.txt.
#define SIAMESE_VERSION_MAJOR 0
#define SIAMESE_VERSION_MINOR 1
#define SIAMESE_VERSION_PATCH 0

namespace siamese {

inline constexpr const char* version_string = "0.1.0";

}  // namespace siamese
