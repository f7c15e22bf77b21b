#pragma once

// Scenarios every gallery database engine must pass alike (SQLite: test_gallery_store.cpp,
// PostgreSQL: test_gallery_postgres.cpp): distinct embeddings per writer, and a writer killed
// while it enrolls.

#include "fixtures.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace scenarios {

inline constexpr std::int64_t dim = 8;

/// A distinct embedding per (writer, index): far from every other, so identify finds it.
inline torch::Tensor embedding_of(int writer, int index) {
  auto row = torch::zeros({dim});
  row[writer % dim] = 10.0f * static_cast<float>(index + 1);
  row[(writer + 1) % dim] = static_cast<float>(writer + 1);
  return row;
}

inline std::string person(int writer, int index) { return "writer" + std::to_string(writer) + "-" + std::to_string(index); }

/// Waits for a forked child; true when it exited with status 0.
inline bool exited_cleanly(pid_t child) {
  int status = 0;
  waitpid(child, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/// A child runs `begin_half_enrollment` (another program's raw statements: a transaction
/// opened, the gallery's write lock taken, a person "half" written) and is killed (SIGKILL)
/// before it commits.
template <class Body>
void kill_inside_transaction(Body begin_half_enrollment) {
  int ready[2];
  REQUIRE(pipe(ready) == 0);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    begin_half_enrollment();
    const char byte = 1;
    (void)!write(ready[1], &byte, 1);
    for (;;) pause();
  }
  char byte = 0;
  REQUIRE(read(ready[0], &byte, 1) == 1);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  close(ready[0]);
  close(ready[1]);
}

/// A child enrolls as fast as it can into the gallery at `location` and is killed (SIGKILL)
/// after 20 commits: every enrollment it reported committed must be there.
inline void kill_while_enrolling(const std::string& location) {
  int done[2];
  REQUIRE(pipe(done) == 0);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    auto gallery = siamese::Gallery::open(location, "face", dim);
    for (int i = 0;; ++i) {
      gallery.enroll(person(1, i), embedding_of(1, i));
      (void)!write(done[1], &i, sizeof i);  // reported only once committed
    }
  }
  int last = -1;
  for (int i = 0; i < 20; ++i) REQUIRE(read(done[0], &last, sizeof last) == sizeof last);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  close(done[1]);
  while (read(done[0], &last, sizeof last) == sizeof last) {
  }
  close(done[0]);
  auto gallery = siamese::Gallery::open(location);
  for (int i = 0; i <= last; ++i) CHECK(gallery.identify(embedding_of(1, i), 1, 1.0)[0].best() == person(1, i));
}

/// After a writer died: the database is sound, "before" (enrolled first) is there, the half
/// enrollment "half" is not, and the next writer gets the lock.
inline void check_after_killed_writer(const std::string& location) {
  auto gallery = siamese::Gallery::open(location);
  CHECK(gallery.store()->integrity_check() == "ok");
  CHECK(gallery.identify(embedding_of(0, 0), 1, 1.0)[0].best() == "before");
  for (const auto& [name, rows] : gallery.people()) CHECK(name != "half");
  gallery.enroll("after", embedding_of(2, 0));
  CHECK(gallery.identify(embedding_of(2, 0), 1, 1.0)[0].best() == "after");
}

}  // namespace scenarios
