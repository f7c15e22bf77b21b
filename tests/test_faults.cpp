#include "fixtures.hpp"

#include <siamese/detail/files.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace {

// Forks a child that calls `write` forever, waits until the child has a temporary file open
// (a FILE.tmp.* exists), kills it `delay_us` later with SIGKILL, and says whether the temporary was
// still there, i.e. whether the kill came in mid-write. Waiting for the temporary, rather than
// killing at fixed times, makes the kills land in writes on machines of any speed: under a
// sanitizer, serialising a gallery takes far longer than writing it.
template <class Write>
bool kill_writer_while_writing(int delay_us, const std::filesystem::path& file, Write write) {
  for (const auto& left : fixtures::temporaries_beside(file)) std::filesystem::remove(left);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    try {
      for (;;) write();
    } catch (...) {
      _exit(3);
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  int status = 0;
  while (fixtures::temporaries_beside(file).empty() && std::chrono::steady_clock::now() < deadline &&
         waitpid(child, &status, WNOHANG) == 0) {
  }
  usleep(static_cast<useconds_t>(delay_us));
  kill(child, SIGKILL);
  waitpid(child, &status, 0);
  REQUIRE(WIFSIGNALED(status));  // killed, not failed
  return !fixtures::temporaries_beside(file).empty();
}

}  // namespace

TEST_CASE("Killing a process while it saves a gallery leaves a whole gallery", "[gallery][faults]") {
  fixtures::TempDir dir;
  const auto file = dir / "people.gallery";
  siamese::Gallery small("m", 256), big("m", 256);
  small.enroll("before", torch::zeros({256}));
  torch::manual_seed(3);
  big.enroll("after", torch::randn({40000, 256}));  // 41 MB: each save takes a while
  small.save(file);
  int mid_write = 0;
  for (int delay_us : {0, 0, 100, 1000, 5000, 20000}) {
    // The child alternates, so any whole file is one of the two galleries.
    mid_write += kill_writer_while_writing(delay_us, file, [&] {
      big.save(file);
      small.save(file);
    });
    const auto loaded = siamese::Gallery::load(file);
    CHECK((loaded.size() == 1 || loaded.size() == 40000));
  }
  CHECK(mid_write > 0);  // the kills did land inside writes
}

TEST_CASE("Killing a process while it writes a checkpoint leaves the previous one loadable", "[train][faults]") {
  fixtures::TempDir dir;
  const auto file = dir / "optimizer.pt";
  torch::manual_seed(5);
  const std::vector<torch::Tensor> first = {torch::zeros({4})};
  const std::vector<torch::Tensor> second = {torch::randn({3000, 3000})};  // 36 MB
  // Checkpoints go through replace_file, as FineTuner's do.
  auto save = [&](const std::vector<torch::Tensor>& state) {
    siamese::detail::replace_file(file, "checkpoint", [&](const std::string& temporary) { torch::save(state, temporary); });
  };
  save(first);
  int mid_write = 0;
  for (int delay_us : {0, 0, 100, 1000, 10000}) {
    mid_write += kill_writer_while_writing(delay_us, file, [&] {
      save(second);
      save(first);
    });
    std::vector<torch::Tensor> loaded;
    REQUIRE_NOTHROW(torch::load(loaded, file.string()));
    REQUIRE(loaded.size() == 1);
    CHECK((torch::equal(loaded[0], first[0]) || torch::equal(loaded[0], second[0])));
  }
  CHECK(mid_write > 0);
}

TEST_CASE("Writers of the same file never share a temporary: each write lands whole", "[files][faults]") {
  fixtures::TempDir dir;
  const auto file = dir / "shared.json";
  constexpr int writers = 4, writes = 150;
  // Each writer's bytes are one repeated letter, 256 KiB long: a mixed or cut file shows.
  std::vector<std::string> contents;
  for (int w = 0; w < writers; ++w) contents.emplace_back(256 * 1024, static_cast<char>('a' + w));
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < writes; ++i) {
        try {
          siamese::detail::write_file_atomically(file, contents[static_cast<std::size_t>(w)], "test file");
        } catch (const siamese::FileError&) {
          ++failures;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failures == 0);  // with one shared FILE.tmp, renames failed and bytes mixed
  const auto final_bytes = fixtures::read_file(file);
  CHECK(std::find(contents.begin(), contents.end(), final_bytes) != contents.end());
  CHECK(fixtures::temporaries_beside(file).empty());
}

TEST_CASE("A failed write removes its own temporary and leaves the file as it was", "[files][faults]") {
  fixtures::TempDir dir;
  const auto file = dir / "kept.txt";
  siamese::detail::write_file_atomically(file, "before", "test file");
  CHECK_THROWS_AS(siamese::detail::replace_file(file, "test file",
                                                [](const std::string&) { throw siamese::Error("writer failed"); }),
                  siamese::Error);
  CHECK(fixtures::read_file(file) == "before");
  CHECK(fixtures::temporaries_beside(file).empty());
}
