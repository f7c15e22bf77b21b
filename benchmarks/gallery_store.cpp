// gallery_store: what a gallery database costs per change on each engine, beside the
// single-file format, and how soon another node sees a change.
//
// For each size (10k, 100k, 1M embeddings of 128 floats, 4 per person) and each engine (a
// SQLite file; a PostgreSQL database too when --url is given), in the same run:
//   - filling the database in one transaction;
//   - enrolling one more person into the open database (a transaction of its own, then the
//     in-memory index appended), the median of several;
//   - the single-file format's cost of the same change: the whole file written again
//     (Gallery::save), as every enrollment did before galleries lived in databases;
//   - opening the database and building its index; loading the single file;
//   - identifying one probe, database-backed (with its change check) and in memory;
//   - propagation: a second node (its own connection, on a thread) brings its index up to date
//     in a loop (Gallery::size, as before each identify) while the first enrolls a burst of
//     people; for each, the time from the end of its commit to the moment the second node
//     holds it (median and max). The commit's end is taken when the first node's
//     GalleryStore::enroll returns; the other node can hold the row a moment before its
//     writer hears back (0 is the floor).
//   - the database's size on disk (SQLite: the file and its WAL; PostgreSQL: the schema's
//     tables, indexes and TOAST).
// The PostgreSQL database's gallery schema is dropped before and after each size. SQLite files
// go to --dir (default: the system's temporary folder) and are removed afterwards.
//
// Usage: gallery_store [--sizes 10000,100000,1000000] [--dir DIR] [--url postgresql://...]
//                      [--burst 50]

#include <siamese/gallery.hpp>

#include "bench_common.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double seconds_of(const std::function<void()>& f) {
  const auto start = Clock::now();
  f();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> values) {
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2), values.end());
  return values[values.size() / 2];
}

void remove_database(const std::filesystem::path& file) {
  for (const auto* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(file.string() + suffix);
}

#ifdef SIAMESE_WITH_POSTGRES
void drop_schema(const std::string& url) {
  siamese::detail::postgres::Connection(url).execute("DROP SCHEMA IF EXISTS siamese_gallery CASCADE");
}
#endif

// Bytes the gallery takes on disk.
double megabytes_on_disk(const std::string& location) {
#ifdef SIAMESE_WITH_POSTGRES
  if (siamese::is_gallery_server(location)) {
    return static_cast<double>(siamese::detail::postgres::Connection(location)
                                   .run("SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON"
                                        " n.oid = c.relnamespace WHERE n.nspname = 'siamese_gallery' AND c.relkind = 'r'")
                                   .integer(0, 0)) / 1e6;
  }
#endif
  std::uintmax_t bytes = 0;
  for (const auto* suffix : {"", "-wal"}) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(location + suffix, ec);
    if (!ec) bytes += size;
  }
  return static_cast<double>(bytes) / 1e6;
}

// Propagation: `first` enrolls `burst` people one by one while a node on another connection
// asks for its size in a loop (which brings its index up to date: no search between); returns
// {median, max} seconds from each commit's end to the moment the second node holds the row.
std::pair<double, double> propagation(siamese::Gallery& first, const std::string& location, int burst) {
  auto second = siamese::Gallery::open(location);
  // One row first, so that the second node's first growth after opening (its matrix, names
  // and templates copied once into room to grow) is not counted as propagation.
  first.enroll("warm-up", torch::randn({128}));
  while (second.size() != first.size()) {
  }
  const auto before = second.size();
  std::vector<Clock::time_point> committed(static_cast<std::size_t>(burst)), held(static_cast<std::size_t>(burst));
  std::thread follower([&] {
    for (std::size_t seen = 0; seen < static_cast<std::size_t>(burst);) {
      const auto now = second.size() - before;
      const auto at = Clock::now();
      for (; seen < now; ++seen) held[seen] = at;
    }
  });
  for (int i = 0; i < burst; ++i) {
    // The store alone: its enroll() returns at the commit, before this node's own index is
    // brought up to date (which Gallery::enroll does next, and which would delay the mark).
    first.store()->enroll({{"burst" + std::to_string(i), torch::randn({1, 128}), {}}});
    committed[static_cast<std::size_t>(i)] = Clock::now();
  }
  follower.join();
  std::vector<double> delays;
  for (std::size_t i = 0; i < static_cast<std::size_t>(burst); ++i) {
    delays.push_back(std::max(0.0, std::chrono::duration<double>(held[i] - committed[i]).count()));
  }
  return {median(delays), *std::max_element(delays.begin(), delays.end())};
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::int64_t> sizes = {10000, 100000, 1000000};
  std::filesystem::path dir = std::filesystem::temp_directory_path();
  std::string url;
  int burst = 50;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--sizes") sizes = bench::parse_list(argv[i + 1]);
    else if (flag == "--dir") dir = argv[i + 1];
    else if (flag == "--url") url = argv[i + 1];
    else if (flag == "--burst") burst = std::stoi(argv[i + 1]);
    else {
      std::cerr << "usage: gallery_store [--sizes 10000,100000,1000000] [--dir DIR] [--url postgresql://...] [--burst 50]\n";
      return 2;
    }
  }
#ifndef SIAMESE_WITH_POSTGRES
  if (!url.empty()) {
    std::cerr << "gallery_store: built without PostgreSQL support (libpq-dev): --url cannot be used\n";
    return 2;
  }
#endif
  constexpr std::int64_t dim = 128, per_person = 4;
  torch::manual_seed(1);
  torch::NoGradGuard no_grad;
  std::printf("%s\n", bench::cpu_features().c_str());
  std::printf("%9s %-10s %8s %10s %12s %9s %11s %11s %11s %10s %11s %11s %8s\n", "gallery", "engine", "fill s", "enroll ms",
              "file save ms", "save/enr", "open+idx s", "file load s", "identify ms", "in-mem ms", "seen med ms", "seen max ms",
              "disk MB");
  for (const auto size : sizes) {
    const auto single = dir / ("siamese-bench-" + std::to_string(size) + ".gallery");
    const auto rows = torch::randn({size, dim});
    std::vector<siamese::Enrollment> batch;
    for (std::int64_t p = 0; p < size / per_person; ++p) {
      batch.push_back({"person" + std::to_string(p), rows.narrow(0, p * per_person, per_person), {}});
    }
    siamese::Gallery memory("bench", dim);
    memory.enroll(batch);
    std::vector<double> save_s;
    for (int i = 0; i < 3; ++i) save_s.push_back(seconds_of([&] { memory.save(single); }));
    const double load_s = seconds_of([&] { (void)siamese::Gallery::load(single); });
    std::vector<std::pair<std::string, std::string>> engines = {{"sqlite", (dir / ("siamese-bench-" + std::to_string(size) + ".db")).string()}};
    if (!url.empty()) engines.emplace_back("postgresql", url);
    for (const auto& [engine, location] : engines) {
      const bool server = siamese::is_gallery_server(location);
#ifdef SIAMESE_WITH_POSTGRES
      if (server) drop_schema(location);
#endif
      if (!server) remove_database(location);
      auto gallery = siamese::Gallery::open(location, "bench", dim);
      const double fill_s = seconds_of([&] { gallery.enroll(batch); });
      std::vector<double> enroll_s;
      for (int i = 0; i < 7; ++i) {
        const auto one = torch::randn({1, dim});
        enroll_s.push_back(seconds_of([&] { gallery.enroll("new" + std::to_string(i), one); }));
      }
      const double open_s = seconds_of([&] { (void)siamese::Gallery::open(location); });
      const auto probe = rows[size / 2] + 0.01 * torch::randn({dim});
      std::vector<double> identify_s, memory_s;
      for (int i = 0; i < 21; ++i) {
        identify_s.push_back(seconds_of([&] { (void)gallery.identify(probe, 5, 1.0); }));
        memory_s.push_back(seconds_of([&] { (void)memory.identify(probe, 5, 1.0); }));
      }
      const auto [seen_median, seen_max] = propagation(gallery, location, burst);
      const double enroll = median(enroll_s), save = median(save_s);
      std::printf("%9lld %-10s %8.2f %10.2f %12.1f %8.0fx %11.2f %11.2f %11.3f %10.3f %11.2f %11.2f %8.0f\n", static_cast<long long>(size),
                  engine.c_str(), fill_s, enroll * 1e3, save * 1e3, save / enroll, open_s, load_s, median(identify_s) * 1e3,
                  median(memory_s) * 1e3, seen_median * 1e3, seen_max * 1e3, megabytes_on_disk(location));
      std::fflush(stdout);
#ifdef SIAMESE_WITH_POSTGRES
      if (server) drop_schema(location);
#endif
      if (!server) remove_database(location);
    }
    std::filesystem::remove(single);
  }
  return 0;
}
