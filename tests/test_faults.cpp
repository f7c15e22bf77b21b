#include "fixtures.hpp"

#include <siamese/detail/files.hpp>

#include <catch2/catch.hpp>

#include <csignal>
#include <sys/wait.h>
#include <unistd.h>

namespace {

// Forks a child that calls `write` forever, kills it after `delay_us` with SIGKILL, and says
// whether a temporary file was left behind, i.e. whether the kill came in mid-write.
template <class Write>
bool kill_writer_after(int delay_us, const std::filesystem::path& file, Write write) {
  std::filesystem::remove(file.string() + ".tmp");
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    try {
      for (;;) write();
    } catch (...) {
      _exit(3);
    }
  }
  usleep(static_cast<useconds_t>(delay_us));
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  REQUIRE(WIFSIGNALED(status));  // killed, not failed
  return std::filesystem::exists(file.string() + ".tmp");
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
  for (int delay_us : {1000, 5000, 20000, 50000, 100000, 200000}) {
    // The child alternates, so any whole file is one of the two galleries.
    mid_write += kill_writer_after(delay_us, file, [&] {
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
  for (int delay_us : {1000, 10000, 40000, 100000, 200000}) {
    mid_write += kill_writer_after(delay_us, file, [&] {
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
