// gallery_store: what a gallery database costs per change, beside the single-file format.
//
// For each size (10k, 100k, 1M embeddings of 128 floats, 4 per person): fills a gallery
// database in one transaction, then measures, on the same machine in the same run:
//   - enrolling one more person into the open database (a transaction of its own, then the
//     in-memory index appended), the median of several;
//   - the single-file format's cost of the same change: the whole file written again
//     (Gallery::save), as every enrollment did before galleries lived in databases;
//   - opening the database and building its index; loading the single file;
//   - identifying one probe, database-backed (with its change check) and in memory.
// Files go to --dir (default: the system's temporary folder) and are removed afterwards.
//
// Usage: gallery_store [--sizes 10000,100000,1000000] [--dir DIR]

#include <siamese/gallery.hpp>

#include "bench_common.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

namespace {

double seconds_of(const std::function<void()>& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double median(std::vector<double> values) {
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2), values.end());
  return values[values.size() / 2];
}

void remove_database(const std::filesystem::path& file) {
  for (const auto* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(file.string() + suffix);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::int64_t> sizes = {10000, 100000, 1000000};
  std::filesystem::path dir = std::filesystem::temp_directory_path();
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--sizes") sizes = bench::parse_list(argv[i + 1]);
    else if (flag == "--dir") dir = argv[i + 1];
    else {
      std::cerr << "usage: gallery_store [--sizes 10000,100000,1000000] [--dir DIR]\n";
      return 2;
    }
  }
  constexpr std::int64_t dim = 128, per_person = 4;
  torch::manual_seed(1);
  torch::NoGradGuard no_grad;
  std::printf("%9s  %10s %12s %12s %9s  %11s %11s  %11s %11s\n", "gallery", "fill s", "enroll ms", "file save ms",
              "save/enr", "open+idx s", "file load s", "identify ms", "in-mem ms");
  for (const auto size : sizes) {
    const auto db = dir / ("siamese-bench-" + std::to_string(size) + ".db");
    const auto single = dir / ("siamese-bench-" + std::to_string(size) + ".gallery");
    remove_database(db);
    const auto rows = torch::randn({size, dim});
    std::vector<siamese::Enrollment> batch;
    for (std::int64_t p = 0; p < size / per_person; ++p) {
      batch.push_back({"person" + std::to_string(p), rows.narrow(0, p * per_person, per_person), {}});
    }
    auto gallery = siamese::Gallery::open(db, "bench", dim);
    const double fill_s = seconds_of([&] { gallery.enroll(batch); });
    std::vector<double> enroll_s;
    for (int i = 0; i < 7; ++i) {
      const auto one = torch::randn({1, dim});
      enroll_s.push_back(seconds_of([&] { gallery.enroll("new" + std::to_string(i), one); }));
    }
    siamese::Gallery memory("bench", dim);
    memory.enroll(batch);
    std::vector<double> save_s;
    for (int i = 0; i < 3; ++i) save_s.push_back(seconds_of([&] { memory.save(single); }));
    const double load_s = seconds_of([&] { (void)siamese::Gallery::load(single); });
    const double open_s = seconds_of([&] { (void)siamese::Gallery::open(db); });
    const auto probe = rows[size / 2] + 0.01 * torch::randn({dim});
    std::vector<double> identify_s, memory_s;
    for (int i = 0; i < 21; ++i) {
      identify_s.push_back(seconds_of([&] { (void)gallery.identify(probe, 5, 1.0); }));
      memory_s.push_back(seconds_of([&] { (void)memory.identify(probe, 5, 1.0); }));
    }
    const double enroll = median(enroll_s), save = median(save_s);
    std::printf("%9lld  %10.2f %12.2f %12.1f %8.0fx  %11.2f %11.2f  %11.3f %11.3f\n", static_cast<long long>(size), fill_s,
                enroll * 1e3, save * 1e3, save / enroll, open_s, load_s, median(identify_s) * 1e3, median(memory_s) * 1e3);
    std::fflush(stdout);
    remove_database(db);
    std::filesystem::remove(single);
  }
  return 0;
}
