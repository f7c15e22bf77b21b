// Helpers shared by the benchmarks.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace bench {

/// "1,8,32" -> {1, 8, 32}, for list flags.
inline std::vector<std::int64_t> parse_list(const std::string& text) {
  std::vector<std::int64_t> values;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) values.push_back(std::stoll(item));
  return values;
}

}  // namespace bench
