// embed_throughput: images per second through the library's backbone, against the same
// TorchScript model run from Python, and against what this CPU can do at most.
//
// For each model and batch size: the library as users get it (frozen and optimised at load),
// the library with optimisation off (the module as saved), and the optimised module fed
// channels_last input; on a CPU with AVX512-BF16 or AMX (or with --bf16), the module with
// bfloat16 weights and input, and how far its embeddings fall from fp32's (elsewhere it prints
// that it skipped bf16 and why). Achieved GFLOP/s come from the multiply-adds stored in the model's
// metadata (counted by forward hooks at export). The CPU's peak is stated from a measured
// clock and the FMA width; a large SGEMM gives the practical ceiling. With --python, the
// results of benchmarks/python_baseline.py (run just before, same threads) are read and the
// ratios library/Python printed. Last, the ceiling of this CPU's convolution kernels: the
// heaviest convolution shapes of InceptionV3 at batch 8, each alone, in the faster of NCHW and
// channels_last, against the same peak: no whole network runs faster than its layers do.
//
// Models needed: any siamese TorchScript backbone; tools/run-benchmarks.sh exports
// InceptionV3 at 299 and 224 and uses the face model from tools/setup-models.sh.
//
// Usage: embed_throughput --model FILE [--model FILE ...] [--batches 1,8,32] [--seconds 4]
//                         [--threads N] [--python RESULTS.tsv] [--bf16 auto|on]

#include <siamese/backbone.hpp>
#include <siamese/detail/torchscript.hpp>

#include "bench_common.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// Seconds per call of `f`, after a warm-up, over at least `budget` seconds and 3 calls.
double seconds_per_call(const std::function<void()>& f, double budget) {
  f();
  int calls = 0;
  const auto start = Clock::now();
  double elapsed = 0;
  while (calls < 3 || elapsed < budget) {
    f();
    ++calls;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  }
  return elapsed / calls;
}

// The core clock in GHz, from a chain of dependent integer adds (one per cycle).
double measured_clock_ghz() {
  std::uint64_t x = 0, n = 100'000'000;
  const auto start = Clock::now();
  asm volatile(
      "1:\n\t"
      "add $1, %[x]\n\tadd $1, %[x]\n\tadd $1, %[x]\n\tadd $1, %[x]\n\tadd $1, %[x]\n\t"
      "add $1, %[x]\n\tadd $1, %[x]\n\tadd $1, %[x]\n\tadd $1, %[x]\n\tadd $1, %[x]\n\t"
      "sub $1, %[n]\n\tjnz 1b\n\t"
      : [x] "+r"(x), [n] "+r"(n));
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return 1e9 / seconds / 1e9;
}

// One convolution shape of InceptionV3 at 299: channels, kernel, output size (stride 1).
struct ConvShape {
  const char* name;
  std::int64_t in, out, kernel_h, kernel_w, height, width;
};

// The stem's three heaviest convolutions (1.29 of the 5.71 GMAC) and shapes from each kind of
// Mixed block.
constexpr ConvShape inception_convs[] = {
    {"Conv2d_2a 32->32 3x3 @147", 32, 32, 3, 3, 147, 147},
    {"Conv2d_2b 32->64 3x3 @147", 32, 64, 3, 3, 147, 147},
    {"Conv2d_4a 80->192 3x3 @71", 80, 192, 3, 3, 71, 71},
    {"Mixed_5 64->96 3x3 @35", 64, 96, 3, 3, 35, 35},
    {"Mixed_5 48->64 5x5 @35", 48, 64, 5, 5, 35, 35},
    {"Mixed_6 768->192 1x1 @17", 768, 192, 1, 1, 17, 17},
    {"Mixed_6 192->192 1x7 @17", 192, 192, 1, 7, 17, 17},
    {"Mixed_7 448->384 3x3 @8", 448, 384, 3, 3, 8, 8},
    {"Mixed_7 1280->320 1x1 @8", 1280, 320, 1, 1, 8, 8},
};

// Prints each shape's GFLOP/s at batch 8 (best of NCHW and channels_last) and the ceiling of
// the set: its multiply-adds over the sum of its best times.
void print_convolution_ceiling(double peak, double budget) {
  std::printf("\nconvolution kernels alone (InceptionV3's heaviest shapes, batch 8, best of NCHW / channels_last):\n");
  double total_flop = 0, total_seconds = 0;
  torch::InferenceMode guard;
  for (const auto& c : inception_convs) {
    const auto input = torch::rand({8, c.in, c.height + c.kernel_h - 1, c.width + c.kernel_w - 1});
    const auto weight = torch::rand({c.out, c.in, c.kernel_h, c.kernel_w});
    const auto bias = torch::rand({c.out});
    double best = 1e30;
    for (const auto format : {torch::MemoryFormat::Contiguous, torch::MemoryFormat::ChannelsLast}) {
      const auto x = input.contiguous(format);
      const auto w = weight.contiguous(format);
      best = std::min(best, seconds_per_call([&] { (void)torch::conv2d(x, w, bias); }, budget / 4));
    }
    const double flop = 2.0 * 8 * c.out * c.in * c.kernel_h * c.kernel_w * c.height * c.width;
    total_flop += flop;
    total_seconds += best;
    std::printf("  %-28s %7.1f GFLOP/s %5.0f%% of peak\n", c.name, flop / best / 1e9, 100 * flop / best / 1e9 / peak);
  }
  std::printf("  all of the above, in sequence: %.1f GFLOP/s, %.0f%% of peak\n", total_flop / total_seconds / 1e9,
              100 * total_flop / total_seconds / 1e9 / peak);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> models;
  std::vector<std::int64_t> batches = {1, 8, 32};
  double budget = 4.0;
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  std::string python_results;
  bool bf16 = bench::cpu_has_bf16();
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--model") models.push_back(argv[i + 1]);
    else if (flag == "--batches") batches = bench::parse_list(argv[i + 1]);
    else if (flag == "--seconds") budget = std::stod(argv[i + 1]);
    else if (flag == "--threads") threads = std::stoi(argv[i + 1]);
    else if (flag == "--python") python_results = argv[i + 1];
    else if (flag == "--bf16") bf16 = std::string(argv[i + 1]) == "on" || bench::cpu_has_bf16();
    else models.clear(), i = argc;
  }
  if (models.empty()) {
    std::cerr << "usage: embed_throughput --model FILE [--model FILE ...] [--batches 1,8,32] [--seconds 4]\n"
                 "                        [--threads N] [--python RESULTS.tsv] [--bf16 auto|on]\n";
    return 2;
  }
  siamese::set_num_threads(threads);

  // The CPU's peak: cores x 2 FMA pipes x 8 fp32 lanes (AVX2) x 2 flops x clock.
  const double ghz = measured_clock_ghz();
  const double peak = threads * 2 * 8 * 2 * ghz;
  const auto a = torch::randn({2048, 2048}), b = torch::randn({2048, 2048});
  const double sgemm = 2.0 * 2048 * 2048 * 2048 / seconds_per_call([&] { (void)torch::mm(a, b); }, 1.0) / 1e9;
  std::printf("threads %d, clock %.2f GHz (measured), fp32 peak %.0f GFLOP/s (%d cores x 2 FMA x 8 lanes x 2 x clock), "
              "SGEMM 2048 %.0f GFLOP/s (%.0f%% of peak)\n",
              threads, ghz, peak, threads, sgemm, 100 * sgemm / peak);
  std::printf("%s\n", bench::cpu_features().c_str());
  if (!bf16) {
    std::printf("bf16: skipped, this CPU has neither AVX512-BF16 nor AMX-BF16: LibTorch would emulate bfloat16, "
                "slower than fp32 (--bf16 on runs it anyway)\n");
  }
  std::printf("\n");

  // python_baseline.py rows: model, side, batch, variant, images/s.
  std::map<std::tuple<std::string, std::int64_t, std::int64_t>, std::map<std::string, double>> python;
  if (!python_results.empty()) {
    std::ifstream in(python_results);
    std::string model, variant;
    std::int64_t side = 0, batch = 0;
    double rate = 0;
    while (in >> model >> side >> batch >> variant >> rate) python[{model, side, batch}][variant] = rate;
  }

  std::printf("%-34s %5s %5s  %-26s %8s %9s %8s %6s\n", "model", "side", "batch", "variant", "img/s", "ms/batch", "GFLOP/s",
              "%peak");
  std::vector<std::string> ratios;
  for (const auto& file : models) {
    siamese::BackboneOptions plain_options, library_options;
    plain_options.device = library_options.device = siamese::Device::cpu();
    plain_options.optimize = false;
    const siamese::TorchScriptBackbone library(file, library_options), plain(file, plain_options);
    const auto& metadata = library.metadata();
    const auto side = metadata.input.height;
    const double gflop_per_image = 2.0 * metadata.multiply_adds.value_or(0.0) / 1e9;
    auto module = library.module();
    torch::jit::Module bf16_module;
    if (bf16) {
      bf16_module = torch::jit::load(file);
      bf16_module.eval();
      bf16_module.to(torch::kBFloat16);
      bf16_module = torch::jit::freeze(bf16_module);
    }
    for (const auto batch : batches) {
      const auto images = torch::rand({batch, 3, side, metadata.input.width});
      const auto channels_last = images.contiguous(torch::MemoryFormat::ChannelsLast);
      std::map<std::string, double> rates;
      std::vector<std::pair<std::string, std::function<void()>>> variants = {
          {"library (frozen+optimised)", [&] { (void)library.embed(images); }},
          {"library, optimisation off", [&] { (void)plain.embed(images); }},
          {"optimised, channels_last in", [&] {
             torch::InferenceMode guard;
             (void)module.forward({channels_last});
           }},
      };
      const auto bf16_images = images.to(torch::kBFloat16);
      if (bf16) {
        variants.emplace_back("bf16 weights and input", [&] {
          torch::InferenceMode guard;
          (void)bf16_module.forward({bf16_images});
        });
        torch::InferenceMode guard;
        const auto reference = library.embed(images);
        const auto rounded = bf16_module.forward({bf16_images}).toTensor().to(torch::kFloat32);
        std::printf("bf16 embeddings vs fp32, batch %lld: max abs diff %.3g, largest fp32 value %.3g\n",
                    static_cast<long long>(batch), (rounded - reference).abs().max().item<double>(),
                    reference.abs().max().item<double>());
      }
      for (const auto& [variant, run] : variants) {
        const double seconds = seconds_per_call(run, budget);
        const double rate = static_cast<double>(batch) / seconds;
        rates[variant] = rate;
        std::printf("%-34s %5lld %5lld  %-26s %8.1f %9.1f %8.1f %5.0f%%\n", metadata.name.substr(0, 34).c_str(),
                    static_cast<long long>(side), static_cast<long long>(batch), variant.c_str(), rate, seconds * 1e3,
                    rate * gflop_per_image, 100 * rate * gflop_per_image / peak);
        std::fflush(stdout);
      }
      const auto found = python.find({metadata.name, side, batch});
      if (found != python.end()) {
        for (const auto& [variant, rate] : found->second) {
          std::printf("%-34s %5lld %5lld  %-26s %8.1f %9.1f %8.1f %5.0f%%\n", metadata.name.substr(0, 34).c_str(),
                      static_cast<long long>(side), static_cast<long long>(batch), ("python " + variant).c_str(), rate,
                      1e3 * static_cast<double>(batch) / rate, rate * gflop_per_image, 100 * rate * gflop_per_image / peak);
        }
        double best_python = 0;
        for (const auto& [variant, rate] : found->second) {
          if (variant != "eager") best_python = std::max(best_python, rate);
        }
        const double ours = rates["library (frozen+optimised)"];
        char line[256];
        std::snprintf(line, sizeof line, "%-34s %5lld %5lld  library/python-eager %5s  library/best-python-TorchScript %5.2fx",
                      metadata.name.substr(0, 34).c_str(), static_cast<long long>(side), static_cast<long long>(batch),
                      found->second.count("eager") ? (std::to_string(ours / found->second.at("eager")).substr(0, 4) + "x").c_str() : "-",
                      ours / best_python);
        ratios.emplace_back(line);
      }
    }
  }
  if (!ratios.empty()) {
    std::printf("\nratios, measured side by side in this run:\n");
    for (const auto& line : ratios) std::printf("%s\n", line.c_str());
  }
  print_convolution_ceiling(peak, budget);
  return 0;
}
