// gallery_search: how fast a gallery finds the nearest people, and how often the approximate
// FAISS indexes agree with exact search.
//
// For each size (10k, 100k, 1M) and embedding size (128, 2048): random unit vectors as the
// gallery; probes are noisy copies of random gallery rows (as when a person enrolled comes
// back). Prints build time, latency for 1 probe and for 1,000 probes, and recall@1 against
// exact search, for the exact index and, when built with FAISS, flat, IVF and HNSW indexes,
// and IVF as FaissIndexOptions{} builds it (the library's own cells and cells searched).
// Also measures the memory bandwidth (one read of the gallery) so that the exact search of
// one probe can be put against the time it takes just to read the gallery.
//
// --probe-cells lists the IVF cells searched per probe, each measured on the same built index.
//
// Usage: gallery_search [--sizes 10000,100000,1000000] [--dims 128,2048] [--probes 1000]
//                       [--exact-only 1] [--probe-cells 16,64,128]

#include <siamese/index.hpp>
#ifdef SIAMESE_HAS_FAISS
#include <siamese/faiss_index.hpp>
#endif

#include <algorithm>
#include "bench_common.hpp"

#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace {

double seconds_of(const std::function<void()>& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The median of `repeats` timings, after one warm-up.
double median_seconds(const std::function<void()>& f, int repeats) {
  f();
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) times.push_back(seconds_of(f));
  std::nth_element(times.begin(), times.begin() + repeats / 2, times.end());
  return times[repeats / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::int64_t> sizes = {10000, 100000, 1000000}, dims = {128, 2048};
  std::int64_t probe_count = 1000;
  bool exact_only = false;
  std::vector<std::int64_t> probe_cells = {16};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--sizes") sizes = bench::parse_list(argv[i + 1]);
    else if (flag == "--dims") dims = bench::parse_list(argv[i + 1]);
    else if (flag == "--probes") probe_count = std::stoll(argv[i + 1]);
    else if (flag == "--exact-only") exact_only = std::string(argv[i + 1]) == "1";
    else if (flag == "--probe-cells") probe_cells = bench::parse_list(argv[i + 1]);
    else {
      std::cerr << "usage: gallery_search [--sizes 10000,100000,1000000] [--dims 128,2048] [--probes 1000]\n"
                   "                      [--exact-only 1] [--probe-cells 16,64,128]\n";
      return 2;
    }
  }
  torch::manual_seed(1);
  torch::NoGradGuard no_grad;
  std::printf("%9s %5s  %-30s %9s %11s %11s %9s %9s\n", "gallery", "dim", "index", "build s", "1 probe ms",
              "1000 pr. ms", "recall@1", "vs read");
  for (const auto dim : dims) {
    for (const auto size : sizes) {
      const auto gallery = torch::nn::functional::normalize(torch::randn({size, dim}),
                                                            torch::nn::functional::NormalizeFuncOptions().dim(1));
      const auto sources = torch::randint(size, {probe_count}, torch::kInt64);
      const auto probes = (gallery.index_select(0, sources) + 0.5 / std::sqrt(static_cast<double>(dim)) * torch::randn({probe_count, dim})).contiguous();
      const auto one = probes.narrow(0, 0, 1).contiguous();
      // Memory bandwidth: the time to read the gallery once, the floor for exact search of one probe.
      const double read_s = median_seconds([&] { (void)gallery.sum().item<float>(); }, 5);

      std::vector<std::pair<std::string, std::unique_ptr<siamese::VectorIndex>>> indexes;
      indexes.emplace_back("exact", std::make_unique<siamese::ExactIndex>());
#ifdef SIAMESE_HAS_FAISS
      // Skipped where they cost too much here: a second 8 GB copy (flat at 1M x 2048) and
      // HNSW building (142 s at 100k x 128 on 2 cores, growing with size and dimension).
      const bool huge = size * dim > 300'000'000;
      const bool hnsw_too_slow = size * dim > 25'000'000;
      for (const auto kind : {siamese::FaissKind::flat, siamese::FaissKind::ivf, siamese::FaissKind::hnsw}) {
        if (exact_only || (huge && kind == siamese::FaissKind::flat) || (hnsw_too_slow && kind == siamese::FaissKind::hnsw)) continue;
        siamese::FaissIndexOptions options;
        options.kind = kind;
        options.cells = std::min<std::int64_t>(1024, static_cast<std::int64_t>(4 * std::sqrt(static_cast<double>(size))));
        indexes.emplace_back(kind == siamese::FaissKind::ivf ? "swept" : "", std::make_unique<siamese::FaissIndex>(options));
      }
      // IVF as a gallery gets it without options: the library's cells and cells searched.
      if (!exact_only && !huge) indexes.emplace_back("default", std::make_unique<siamese::FaissIndex>());
#endif
      torch::Tensor truth;
      for (auto& [name, index] : indexes) {
        const double build_s = seconds_of([&] { index->reset(gallery); });
        // An IVF index is measured at each --probe-cells on the one build; the others once.
        // The IVF index with the benchmark's cells is swept; the library's default is measured as it is.
        const bool ivf = name == "swept";
        for (const auto cells : ivf ? probe_cells : std::vector<std::int64_t>{0}) {
#ifdef SIAMESE_HAS_FAISS
          if (ivf) dynamic_cast<siamese::FaissIndex&>(*index).set_probe_cells(cells);
#endif
          const int repeats = size >= 1000000 ? 5 : 21;
          const double one_s = median_seconds([&] { (void)index->search(one, 1); }, repeats);
          siamese::Neighbours found;
          const double many_s = seconds_of([&] { found = index->search(probes, 1); });
          const auto rows = found.rows.select(1, 0);
          if (!truth.defined()) truth = rows;
          const double recall = rows.eq(truth).to(torch::kFloat64).mean().item<double>();
          std::printf("%9lld %5lld  %-30s %9.2f %11.3f %11.1f %9.4f %8.2fx\n", static_cast<long long>(size),
                      static_cast<long long>(dim), (index->description() + (name == "default" ? " (default)" : "")).c_str(), build_s, one_s * 1e3, many_s * 1e3,
                      recall, one_s / read_s);
          std::fflush(stdout);
        }
        index.reset();  // free before the next one
      }
      std::printf("%9s %5s  memory read of the gallery: %.3f ms (%.1f GB/s)\n", "", "", read_s * 1e3,
                  static_cast<double>(size * dim * 4) / read_s / 1e9);
    }
  }
  return 0;
}
