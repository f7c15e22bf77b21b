#include "fixtures.hpp"

#include <siamese/detail/files.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <sys/wait.h>
#include <unistd.h>

namespace {

// Forks a child that calls `write` forever, waits until the child has a temporary file open
// (FILE.tmp exists), kills it `delay_us` later with SIGKILL, and says whether the temporary was
// still there, i.e. whether the kill came in mid-write. Waiting for the temporary, rather than
// killing at fixed times, makes the kills land in writes on machines of any speed: under a
// sanitizer, serialising a gallery takes far longer than writing it.
template <class Write>
bool kill_writer_while_writing(int delay_us, const std::filesystem::path& file, Write write) {
  const std::filesystem::path temporary = file.string() + ".tmp";
  std::filesystem::remove(temporary);
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
  while (!std::filesystem::exists(temporary) && std::chrono::steady_clock::now() < deadline &&
         waitpid(child, &status, WNOHANG) == 0) {
  }
  usleep(static_cast<useconds_t>(delay_us));
  kill(child, SIGKILL);
  waitpid(child, &status, 0);
  REQUIRE(WIFSIGNALED(status));  // killed, not failed
  return std::filesystem::exists(temporary);
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
