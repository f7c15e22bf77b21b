#include <siamese/progress.hpp>

#include <catch2/catch.hpp>

#include <sstream>

using siamese::ProgressPrinter;
using siamese::ProgressReport;

namespace {
ProgressReport report(std::size_t done, std::size_t total, double elapsed) {
  ProgressReport r;
  r.task = "embedding";
  r.unit = "images";
  r.done = done;
  r.total = total;
  r.elapsed_seconds = elapsed;
  return r;
}
}  // namespace

TEST_CASE("Progress lines say done/total, rate and time left", "[progress]") {
  CHECK(siamese::format_progress(report(120, 7701, 2.4)) ==
        "embedding: 120/7701 images (1%), 50.0 images/s, ETA 2 min 32 s");
  CHECK(siamese::format_progress(report(7701, 7701, 3725.0)) ==
        "embedding: 7701/7701 images (100%), 2.1 images/s, done in 1 h 02 min");
  auto open_ended = report(30, 0, 10.0);
  open_ended.note = "epoch 2, loss 0.125";
  CHECK(siamese::format_progress(open_ended) == "embedding: 30 images, 3.0 images/s; epoch 2, loss 0.125");
}

TEST_CASE("Off a terminal, progress is a plain line per 10 seconds or per step of percent", "[progress]") {
  std::ostringstream out;
  const ProgressPrinter print(out, /*terminal=*/false, /*every_seconds=*/10.0, /*every_percent=*/50, /*quiet_seconds=*/2.0);
  // 100 images at 4 a second: 25 s in all.
  for (std::size_t done = 1; done <= 100; ++done) print(report(done, 100, static_cast<double>(done) / 4.0));
  const std::string expected =
      "embedding: 8/100 images (8%), 4.0 images/s, ETA 23 s\n"    // the first line, once past 2 s
      "embedding: 48/100 images (48%), 4.0 images/s, ETA 13 s\n"  // 10 s later
      "embedding: 50/100 images (50%), 4.0 images/s, ETA 13 s\n"  // half done
      "embedding: 90/100 images (90%), 4.0 images/s, ETA 3 s\n"   // 10 s after the last line
      "embedding: 100/100 images (100%), 4.0 images/s, done in 25 s\n";
  CHECK(out.str() == expected);
  CHECK(out.str().find('\r') == std::string::npos);

  // A short task prints nothing; the next task of the same name starts afresh.
  std::ostringstream quiet;
  const ProgressPrinter quiet_print(quiet, false);
  for (std::size_t done = 1; done <= 4; ++done) quiet_print(report(done, 4, 0.25 * static_cast<double>(done)));
  CHECK(quiet.str().empty());
}

TEST_CASE("On a terminal, progress rewrites one line and ends it when done", "[progress]") {
  std::ostringstream out;
  const ProgressPrinter print(out, /*terminal=*/true);
  print(report(10, 20, 2.5));
  print(report(11, 20, 2.55));  // within a tenth of a second: skipped
  print(report(20, 20, 5.0));
  CHECK(out.str() ==
        "\rembedding: 10/20 images (50%), 4.0 images/s, ETA 3 s\033[K"
        "\rembedding: 20/20 images (100%), 4.0 images/s, done in 5 s\033[K\n");
}
