#include <siamese/faiss_index.hpp>
#include <siamese/gallery.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <limits>
#include <type_traits>
#include <thread>

using siamese::FaissIndex;
using siamese::FaissKind;
using siamese::Gallery;

namespace {

// A test set shaped like identification: 400 people with 3 embeddings each on the unit
// sphere, probes that are noisy copies of one enrolled embedding. A person's three rows are
// unrelated directions, so people are told apart by their nearest photo (their templates mean
// nothing here): the test is of the index finding the nearest rows.
struct TestSet {
  Gallery exact{"m", 64};
  torch::Tensor probes;
  TestSet() {
    exact.set_person_distance(siamese::PersonDistance::nearest_photo);
    torch::manual_seed(21);
    const auto rows = torch::nn::functional::normalize(torch::randn({1200, 64}),
                                                       torch::nn::functional::NormalizeFuncOptions().dim(1));
    for (int person = 0; person < 400; ++person) exact.enroll("p" + std::to_string(person), rows.narrow(0, 3 * person, 3));
    probes = rows.index_select(0, torch::arange(0, 1200, 7)) + 0.05 * torch::randn({172, 64});
  }
};

std::vector<std::string> top1(const Gallery& gallery, const torch::Tensor& probes) {
  std::vector<std::string> names;
  for (const auto& id : gallery.identify(probes, 1, 10.0)) names.push_back(id.candidates.front().person);
  return names;
}

}  // namespace

TEST_CASE("FAISS indexes answer the same top-1 as exact search", "[gallery][faiss]") {
  TestSet set;
  const auto expected = top1(set.exact, set.probes);
  for (const auto kind : {FaissKind::flat, FaissKind::ivf, FaissKind::hnsw}) {
    Gallery gallery(set.exact);
    siamese::FaissIndexOptions options;
    options.kind = kind;
    gallery.set_index(std::make_unique<FaissIndex>(options));
    INFO(gallery.index_description());
    CHECK(top1(gallery, set.probes) == expected);
    // Distances are exact Euclidean distances, whatever finds the rows.
    const auto a = gallery.identify(set.probes[0], 3, 10.0)[0];
    const auto b = set.exact.identify(set.probes[0], 3, 10.0)[0];
    REQUIRE(a.candidates.size() == 3);
    CHECK(a.candidates[0].distance == Catch::Detail::Approx(b.candidates[0].distance).epsilon(1e-4));
  }
}

TEST_CASE("A FAISS gallery follows enrollments, removals and concurrent readers", "[gallery][faiss][concurrency]") {
  Gallery gallery("m", 8);
  siamese::FaissIndexOptions options;
  options.kind = FaissKind::ivf;
  gallery.set_index(std::make_unique<FaissIndex>(options));  // empty: trained on first enrollments
  gallery.enroll("seed", torch::zeros({8}));
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::thread reader([&] {
    while (!done) {
      if (gallery.identify(torch::zeros({8}), 1, 0.5)[0].best() != "seed") ++bad;
    }
  });
  for (int i = 0; i < 300; ++i) gallery.enroll("p" + std::to_string(i), torch::full({8}, 1.0F + static_cast<float>(i)));
  done = true;
  reader.join();
  CHECK(bad == 0);
  CHECK(gallery.size() == 301);
  CHECK(gallery.identify(torch::full({8}, 101.0F), 1, 0.5)[0].best() == "p100");
  CHECK(gallery.remove("p100"));
  CHECK_FALSE(gallery.identify(torch::full({8}, 101.0F), 1, 0.5)[0].known);
  CHECK(gallery.identify(torch::full({8}, 101.2F), 1, 10.0)[0].best() != "p100");
}

TEST_CASE("A FAISS index searched before it holds rows says so", "[gallery][faiss][errors]") {
  const FaissIndex index;
  CHECK_THROWS_WITH(index.search(torch::zeros({1, 4}), 1), Catch::Contains("before reset()"));
}

TEST_CASE("IVF searches a sixteenth of its cells unless told, and takes no fewer than one", "[gallery][faiss][errors]") {
  FaissIndex index;  // defaults: 4 sqrt(M) cells, never more than M / 39
  index.reset(torch::randn({40000, 8}));
  CHECK(index.description() == "faiss IVF800,Flat nprobe 50");
  index.set_probe_cells(8);
  CHECK(index.description() == "faiss IVF800,Flat nprobe 8");
  index.set_probe_cells(5000);  // more than there are: all of them
  CHECK(index.description() == "faiss IVF800,Flat nprobe 800");
  CHECK_THROWS_WITH(index.set_probe_cells(0), Catch::Contains("at least 1 cell, got 0"));
  siamese::FaissIndexOptions negative;
  negative.probe_cells = -1;
  CHECK_THROWS_WITH(FaissIndex(negative), Catch::Contains("FaissIndexOptions out of range"));
}

namespace {
struct IndexOfFaiss173 {  // faiss::Index as Debian 12's FAISS 1.7.3 declares its row numbers
  using idx_t = std::int64_t;
};
struct IndexOfFaiss174 {};  // from 1.7.4 on the nested name is gone (faiss::idx_t instead)
struct IndexWithOtherRowNumbers {
  using idx_t = long long;
};
}  // namespace

TEST_CASE("FAISS's row-number type is found with the nested idx_t and without it", "[faiss]") {
  using siamese::detail::faiss_row_number;
  STATIC_REQUIRE(std::is_same_v<faiss_row_number<IndexOfFaiss173>::type, std::int64_t>);
  STATIC_REQUIRE(std::is_same_v<faiss_row_number<IndexOfFaiss174>::type, std::int64_t>);
  STATIC_REQUIRE(std::is_same_v<faiss_row_number<IndexWithOtherRowNumbers>::type, long long>);
  STATIC_REQUIRE(sizeof(siamese::detail::faiss_row_number_t) == 8);
}

TEST_CASE("A huge k searches every row of a FAISS-backed gallery", "[faiss]") {
  Gallery gallery("m", 4);
  gallery.set_index(std::make_unique<FaissIndex>(siamese::FaissIndexOptions{FaissKind::flat}));
  gallery.enroll("ann", torch::zeros({3, 4}));
  gallery.enroll("bob", torch::ones({4}));
  const auto found = gallery.identify(torch::zeros({4}), std::numeric_limits<std::size_t>::max(), 0.5)[0];
  REQUIRE(found.candidates.size() == 2);
  CHECK(found.best() == "ann");
}
