#include "fixtures.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <limits>
#include <thread>

using Approx = Catch::Detail::Approx;
using siamese::Gallery;

namespace {
torch::Tensor point(std::initializer_list<float> values) { return torch::tensor(std::vector<float>(values)); }
}  // namespace

TEST_CASE("Gallery identifies by the nearest enrolled embedding, top-k people", "[gallery]") {
  Gallery gallery("m", 2);
  gallery.set_person_distance(siamese::PersonDistance::nearest_photo);
  gallery.enroll("ann", torch::stack({point({0, 0}), point({10, 10})}));
  gallery.enroll("bob", point({3, 0}));
  gallery.enroll("cyd", point({0, 5}));
  CHECK(gallery.size() == 4);
  CHECK(gallery.people().size() == 3);
  const auto results = gallery.identify(torch::stack({point({1, 0}), point({9, 9}), point({50, 50})}), 2, 1.5);
  REQUIRE(results.size() == 3);
  REQUIRE(results[0].candidates.size() == 2);
  CHECK(results[0].candidates[0].person == "ann");
  CHECK(results[0].candidates[0].distance == Approx(1.0).epsilon(1e-3));
  CHECK(results[0].candidates[1].person == "bob");
  CHECK(results[0].known);
  CHECK(results[1].best() == "ann");  // through ann's second embedding
  CHECK_FALSE(results[2].known);
  CHECK_FALSE(results[2].best().has_value());
  // k larger than the gallery: every person once, and a k whose product with the rows per
  // person would overflow searches every row.
  CHECK(gallery.identify(point({0, 0}), 10, 1.0)[0].candidates.size() == 3);
  CHECK(gallery.identify(point({0, 0}), std::numeric_limits<std::size_t>::max(), 1.0)[0].candidates.size() == 3);
  CHECK(gallery.identify(point({0, 0}), std::size_t{1} << 62, 1.0)[0].candidates.size() == 3);  // 2^62 x 2 rows overflowed
}

TEST_CASE("By default a person is as far as their template, which follows every change", "[gallery]") {
  Gallery gallery("m", 2);
  CHECK(gallery.person_distance() == siamese::PersonDistance::template_mean);
  // ann: two photos at length 2 in directions 0 and 90 degrees; her template is their mean
  // direction (45 degrees) at length 2.
  gallery.enroll("ann", torch::stack({point({2, 0}), point({0, 2})}));
  gallery.enroll("bob", point({-3, 0}));
  const float r = std::sqrt(2.0F);
  const auto near_template = gallery.identify(point({r, r}), 2, 0.5)[0];
  CHECK(near_template.best() == "ann");
  CHECK(near_template.candidates[0].distance == Approx(0.0).margin(1e-3));
  CHECK(near_template.candidates[1].person == "bob");
  // A probe on ann's first photo is 1.53 from her template, not 0: the nearest-photo rule says 0.
  CHECK(gallery.identify(point({2, 0}), 1, 5.0)[0].candidates[0].distance == Approx(std::sqrt(8.0 - 4.0 * r)).epsilon(1e-3));
  Gallery copy(gallery);  // shares the templates until one side changes
  gallery.enroll("ann", point({2, 0}));  // two of three photos at 0 degrees: the template turns towards them
  const auto turned = gallery.identify(point({2, 0}), 1, 5.0)[0].candidates[0].distance;
  CHECK(turned < 1.0);
  CHECK(copy.identify(point({2, 0}), 1, 5.0)[0].candidates[0].distance == Approx(std::sqrt(8.0 - 4.0 * r)).epsilon(1e-3));
  // Renamed and removed people keep the others' templates straight.
  gallery.rename("ann", "anna");
  CHECK(gallery.identify(point({2, 0}), 1, 5.0)[0].candidates[0].person == "anna");
  CHECK(gallery.identify(point({2, 0}), 1, 5.0)[0].candidates[0].distance == Approx(turned));
  gallery.remove("bob");
  CHECK(gallery.identify(point({-3, 0}), 2, 5.0)[0].candidates.size() == 1);
  CHECK(gallery.identify(point({2, 0}), 1, 5.0)[0].candidates[0].distance == Approx(turned));
  gallery.set_person_distance(siamese::PersonDistance::nearest_photo);
  CHECK(gallery.identify(point({2, 0}), 1, 5.0)[0].candidates[0].distance == Approx(0.0).margin(1e-3));
}

TEST_CASE("A person named \"unknown\" is told apart from nobody known", "[gallery]") {
  Gallery gallery("m", 2);
  gallery.enroll("unknown", point({0, 0}));
  const auto near = gallery.identify(point({0, 0.1F}), 1, 1.0)[0];
  CHECK(near.known);
  CHECK(near.best() == "unknown");
  const auto far = gallery.identify(point({9, 9}), 1, 1.0)[0];
  CHECK_FALSE(far.known);
  CHECK_FALSE(far.best().has_value());
  REQUIRE(far.candidates.size() == 1);
  CHECK(far.candidates[0].person == "unknown");  // the nearest, named, but not the answer
}

TEST_CASE("Galleries move and assign: the moved-to one holds everything, the source is left empty", "[gallery]") {
  Gallery source("m", 2);
  source.enroll("ann", point({0, 0}));
  source.enroll("bob", point({5, 5}));
  Gallery moved(std::move(source));
  CHECK(moved.size() == 2);
  CHECK(moved.identify(point({5, 5}), 1, 1.0)[0].best() == "bob");
  // NOLINTNEXTLINE(bugprone-use-after-move): the documented moved-from state, an empty gallery
  CHECK(source.size() == 0);
  CHECK(source.identify(point({5, 5}), 1, 1.0)[0].candidates.empty());
  source.enroll("dan", point({1, 1}));
  CHECK(source.people().size() == 1);
  Gallery assigned("other", 2);
  assigned = std::move(moved);
  CHECK(assigned.model_name() == "m");
  CHECK(assigned.people().size() == 2);
  Gallery copy("other", 2);
  copy = assigned;
  copy.enroll("cyd", point({9, 0}));
  CHECK(copy.people().size() == 3);
  CHECK(assigned.people().size() == 2);  // copies grow apart
  // parse() returns a gallery built without a lock on it: loading and moving never deadlock.
  fixtures::TempDir dir;
  assigned.save(dir / "g");
  Gallery loaded = Gallery::load(dir / "g");
  CHECK(loaded.people() == assigned.people());
}

TEST_CASE("Gallery refuses the wrong model, shapes, values and names", "[gallery][errors]") {
  Gallery gallery("face-128", 3);
  CHECK_THROWS_WITH(gallery.check_model("inception-2048", 2048),
                    Catch::Contains("face-128") && Catch::Contains("inception-2048"));
  CHECK_NOTHROW(gallery.check_model("face-128", 3));
  CHECK_THROWS_AS(gallery.enroll("x", torch::zeros({2, 4})), siamese::ShapeError);
  CHECK_THROWS_AS(gallery.enroll("x", torch::full({3}, NAN)), siamese::NumericError);
  CHECK_THROWS_AS(gallery.enroll("", torch::zeros({3})), siamese::Error);
  CHECK_THROWS_AS(gallery.enroll("bad\nname", torch::zeros({3})), siamese::Error);
  CHECK_THROWS_AS(gallery.identify(torch::zeros({1, 4}), 1, 1.0), siamese::ShapeError);
  CHECK(gallery.identify(torch::zeros({3}), 1, 1.0)[0].candidates.empty());
}

TEST_CASE("Remove and rename people", "[gallery]") {
  Gallery gallery("m", 1);
  gallery.enroll("Zoë", torch::tensor({1.0F}));
  gallery.enroll("Yann", torch::tensor({5.0F}));
  CHECK(gallery.rename("Zoë", "Zoé"));
  CHECK_FALSE(gallery.rename("nobody", "x"));
  CHECK_THROWS_AS(gallery.rename("Zoé", "Yann"), siamese::Error);
  CHECK(gallery.remove("Yann"));
  CHECK_FALSE(gallery.remove("Yann"));
  REQUIRE(gallery.people().size() == 1);
  CHECK(gallery.people()[0].first == "Zoé");
  CHECK(gallery.identify(torch::tensor({4.0F}), 1, 10.0)[0].best() == "Zoé");
}

TEST_CASE("Gallery files round-trip; damaged files are refused and the old one survives", "[gallery][errors]") {
  fixtures::TempDir dir;
  Gallery gallery("face-128", 4);
  torch::manual_seed(4);
  gallery.enroll("ann", torch::randn({2, 4}));
  gallery.enroll("Björk", torch::randn({1, 4}));
  const auto file = dir / "people.gallery";
  gallery.save(file);
  const auto loaded = Gallery::load(file);
  CHECK(loaded.model_name() == "face-128");
  CHECK(loaded.people() == gallery.people());
  const auto probe = torch::randn({4});
  CHECK(loaded.identify(probe, 2, 9.0)[0].candidates[0].distance ==
        Approx(gallery.identify(probe, 2, 9.0)[0].candidates[0].distance));
  CHECK(fixtures::temporaries_beside(file).empty());

  const auto bytes = fixtures::read_file(file);
  fixtures::write_file(dir / "cut.gallery", bytes.substr(0, bytes.size() - 7));
  CHECK_THROWS_WITH(Gallery::load(dir / "cut.gallery"), Catch::Contains("cut.gallery") && Catch::Contains("damaged"));
  for (std::size_t at : {std::size_t{9}, bytes.size() / 2, bytes.size() - 1}) {
    auto flipped = bytes;
    flipped[at] = static_cast<char>(flipped[at] ^ 0x10);
    fixtures::write_file(dir / "flipped.gallery", flipped);
    CHECK_THROWS_AS(Gallery::load(dir / "flipped.gallery"), siamese::GalleryError);
  }
  fixtures::write_file(dir / "junk.gallery", "hello");
  CHECK_THROWS_AS(Gallery::load(dir / "junk.gallery"), siamese::GalleryError);
  CHECK_THROWS_AS(Gallery::load(dir / "missing.gallery"), siamese::FileError);
  CHECK_THROWS_WITH(Gallery::load(file, 10), Catch::Contains("limit"));
  // The good file is untouched by all of this.
  CHECK(Gallery::load(file).size() == 3);
}

namespace {

// The bytes of a one-person gallery file of model "m" after `edit`, with the checksum re-sealed
// so that only the edit is hostile. Layout: magic (8), version (4), name length (4), model
// name "m" (1), dim (8), count (8), then per entry: name length (4), name, D floats.
template <class Edit>
std::string resealed_gallery(const fixtures::TempDir& dir, const std::string& person, std::int64_t dim, Edit edit) {
  Gallery gallery("m", dim);
  gallery.enroll(person, torch::zeros({dim}));
  gallery.save(dir / "original");
  auto bytes = fixtures::read_file(dir / "original");
  edit(bytes);
  const std::uint64_t h = siamese::detail::fnv1a(bytes.data(), bytes.size() - 8);
  std::memcpy(bytes.data() + bytes.size() - 8, &h, 8);
  return bytes;
}

}  // namespace

TEST_CASE("A file claiming 10^12 entries is refused without allocating them", "[gallery][errors]") {
  fixtures::TempDir dir;
  const auto bytes = resealed_gallery(dir, "a", 4, [](std::string& b) {
    const std::uint64_t huge = 1'000'000'000'000ULL;
    std::memcpy(b.data() + 25, &huge, 8);  // the count
  });
  fixtures::write_file(dir / "huge", bytes);
  CHECK_THROWS_WITH(Gallery::load(dir / "huge"), Catch::Contains("1000000000000 entries"));
}

TEST_CASE("A gallery file whose person names break the rules is refused", "[gallery][errors]") {
  fixtures::TempDir dir;
  const auto bytes = resealed_gallery(dir, "ab", 2, [](std::string& b) { b[37] = '\n'; });  // the first name's first byte
  CHECK_THROWS_WITH(Gallery::parse(bytes, "g"), Catch::Contains("invalid person name at entry 0"));
  const auto with_delete = resealed_gallery(dir, "ab", 2, [](std::string& b) { b[37] = '\x7f'; });  // DEL is a control byte
  CHECK_THROWS_WITH(Gallery::parse(with_delete, "g"), Catch::Contains("invalid person name at entry 0"));
  const auto bad_model = resealed_gallery(dir, "ab", 2, [](std::string& b) { b[16] = '\x1b'; });  // the model name's byte
  CHECK_THROWS_WITH(Gallery::parse(bad_model, "g"), Catch::Contains("names its model with an invalid name"));
  Gallery gallery("m", 2);
  CHECK_THROWS_WITH(gallery.enroll(std::string("a\x7f" "b"), torch::zeros({2})), Catch::Contains("'a\\x7fb'"));
}

TEST_CASE("A gallery file with bytes after its last entry is refused", "[gallery][errors]") {
  fixtures::TempDir dir;
  const auto bytes = resealed_gallery(dir, "a", 2, [](std::string& b) { b.insert(b.size() - 8, "xyz"); });
  CHECK_THROWS_WITH(Gallery::parse(bytes, "g"), Catch::Contains("3 unexpected bytes"));
}

TEST_CASE("Concurrent identify while enrolling keeps every enrollment", "[gallery][concurrency]") {
  Gallery gallery("m", 8);
  gallery.enroll("seed", torch::zeros({8}));
  std::atomic<bool> done{false};
  std::atomic<int> searches{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&] {
      while (!done) {
        const auto r = gallery.identify(torch::zeros({2, 8}), 3, 0.5);
        if (r.size() != 2 || r[0].candidates.front().person != "seed") throw std::runtime_error("inconsistent read");
        ++searches;
      }
    });
  }
  std::thread writer([&] {
    for (int i = 0; i < 200; ++i) gallery.enroll("p" + std::to_string(i), torch::full({8}, 1.0F + static_cast<float>(i)));
    done = true;
  });
  writer.join();
  for (auto& r : readers) r.join();
  CHECK(gallery.size() == 201);
  CHECK(gallery.people().size() == 201);
  CHECK(searches > 0);
}

TEST_CASE("A gallery that cannot be written leaves nothing behind", "[gallery][errors]") {
  fixtures::TempDir dir;
  Gallery gallery("m", 2);
  gallery.enroll("a", torch::zeros({2}));
  const auto file = dir / "no-such-folder" / "g";
  CHECK_THROWS_WITH(gallery.save(file), Catch::Contains("cannot write gallery") && Catch::Contains("unchanged"));
  CHECK(fixtures::temporaries_beside(file).empty());
}

TEST_CASE("Copies of a gallery grow apart: appends never land in each other's rows", "[gallery]") {
  Gallery original("m", 2);
  original.enroll("crowd", torch::arange(32, torch::kFloat32).view({16, 2}) + 100);  // leaves spare rows behind
  Gallery copy(original);
  original.enroll("cyd", point({0, 5}));
  copy.enroll("dan", point({0, 5.5}));
  const auto in_original = original.identify(point({0, 5.5}), 1, 10.0)[0];
  const auto in_copy = copy.identify(point({0, 5}), 1, 10.0)[0];
  CHECK(in_original.best() == "cyd");
  CHECK(in_original.candidates[0].distance == Approx(0.5).epsilon(1e-3));
  CHECK(in_copy.best() == "dan");
  CHECK(in_copy.candidates[0].distance == Approx(0.5).epsilon(1e-3));
  CHECK(original.enrollments().back().person == "cyd");
  CHECK(torch::equal(copy.enrollments().back().embeddings, point({0, 5.5}).unsqueeze(0)));
}
