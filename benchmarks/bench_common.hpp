// Helpers shared by the benchmarks.
#pragma once

#include <cstdint>
#include <fstream>
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

/// The CPU's model and the vector extensions that decide LibTorch's kernels, from
/// /proc/cpuinfo: "AMD EPYC 7B13: AVX2 FMA, no AVX-512, no AVX512-BF16, no AMX".
inline std::string cpu_features() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, model = "unknown CPU", flags;
  while (std::getline(in, line) && (flags.empty() || model == "unknown CPU")) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    if (line.rfind("model name", 0) == 0) model = line.substr(colon + 2);
    if (line.rfind("flags", 0) == 0) flags = " " + line.substr(colon + 1) + " ";
  }
  const auto has = [&](const char* flag) { return flags.find(" " + std::string(flag) + " ") != std::string::npos; };
  std::string text = model + ": ";
  text += has("avx2") ? "AVX2" : "no AVX2";
  text += has("fma") ? " FMA" : "";
  text += has("avx512f") ? ", AVX-512" : ", no AVX-512";
  text += has("avx512_bf16") ? ", AVX512-BF16" : ", no AVX512-BF16";
  text += has("amx_bf16") ? ", AMX-BF16" : ", no AMX";
  return text;
}

}  // namespace bench
