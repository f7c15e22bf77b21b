#include <siamese/distance.hpp>

#include <catch2/catch.hpp>

#include <cmath>

using Approx = Catch::Detail::Approx;
using siamese::CosineDistance;
using siamese::CosineSimilarity;
using siamese::EuclideanDistance;
using siamese::SquaredEuclideanDistance;

namespace {
torch::Tensor rows(std::initializer_list<std::initializer_list<float>> values) {
  std::vector<torch::Tensor> r;
  for (auto row : values) r.push_back(torch::tensor(std::vector<float>(row)));
  return torch::stack(r);
}
}  // namespace

TEST_CASE("Euclidean distance matches hand-computed values", "[distance]") {
  const auto a = rows({{0, 0, 0}, {1, 2, 3}});
  const auto b = rows({{3, 4, 0}, {1, 2, 4}});
  const auto d = EuclideanDistance{}(a, b);
  REQUIRE(d.sizes() == torch::IntArrayRef({2, 1}));
  CHECK(d[0][0].item<double>() == Approx(5.0));
  CHECK(d[1][0].item<double>() == Approx(1.0));
}

TEST_CASE("Euclidean distance clamps at eps for identical embeddings", "[distance]") {
  const auto a = rows({{0.5f, -1.f, 2.f}});
  CHECK(EuclideanDistance{}(a, a).item<double>() == Approx(std::sqrt(1e-7)).epsilon(1e-5));
  CHECK(EuclideanDistance{1e-4}(a, a).item<double>() == Approx(0.01).epsilon(1e-5));
  CHECK(EuclideanDistance{0.0}(a, a).item<double>() == 0.0);
  // Above the clamp, eps changes nothing.
  const auto b = rows({{0.5f, -1.f, 3.f}});
  CHECK(EuclideanDistance{1e-4}(a, b).item<double>() == Approx(1.0));
  CHECK_THROWS_AS(EuclideanDistance{-1.0}, siamese::Error);
}

TEST_CASE("Euclidean gradient stays finite at identical inputs thanks to eps", "[distance]") {
  auto a = rows({{1.f, 2.f}}).requires_grad_(true);
  auto b = rows({{1.f, 2.f}});
  EuclideanDistance{}(a, b).sum().backward();
  CHECK(torch::isfinite(a.grad()).all().item<bool>());
}

TEST_CASE("Squared Euclidean and cosine distances", "[distance]") {
  const auto a = rows({{1, 0}, {1, 1}, {2, 0}});
  const auto b = rows({{0, 1}, {1, 1}, {-1, 0}});
  const auto sq = SquaredEuclideanDistance{}(a, b);
  CHECK(sq[0][0].item<double>() == Approx(2.0));
  CHECK(sq[1][0].item<double>() == Approx(0.0));
  CHECK(sq[2][0].item<double>() == Approx(9.0));
  const auto cos = CosineDistance{}(a, b);
  CHECK(cos[0][0].item<double>() == Approx(1.0));
  CHECK(cos[1][0].item<double>() == Approx(0.0).margin(1e-6));
  CHECK(cos[2][0].item<double>() == Approx(2.0));
  CHECK(CosineSimilarity{}(a, b)[2][0].item<double>() == Approx(-1.0));
}

TEST_CASE("Pairwise forms agree with the row-wise forms", "[distance]") {
  torch::manual_seed(3);
  const auto a = torch::randn({5, 16});
  const auto b = torch::randn({7, 16});
  auto check = [&](auto metric) {
    const auto all = metric.pairwise(a, b);
    REQUIRE(all.sizes() == torch::IntArrayRef({5, 7}));
    for (int i = 0; i < 5; ++i) {
      for (int j = 0; j < 7; ++j) {
        const double row = metric(a[i].unsqueeze(0), b[j].unsqueeze(0)).item().toDouble();
        CHECK(all[i][j].item().toDouble() == Approx(row).epsilon(1e-4).margin(1e-5));
      }
    }
  };
  check(EuclideanDistance{});
  check(SquaredEuclideanDistance{});
  check(CosineDistance{});
  check(CosineSimilarity{});
}

TEST_CASE("Distances reject mismatched shapes with the shapes in the message", "[distance][errors]") {
  const auto a = torch::zeros({2, 3});
  CHECK_THROWS_WITH(EuclideanDistance{}(a, torch::zeros({2, 4})),
                    Catch::Contains("[2, 3]") && Catch::Contains("[2, 4]"));
  CHECK_THROWS_AS(EuclideanDistance{}(a, torch::zeros({3, 3})), siamese::ShapeError);
  CHECK_THROWS_AS(EuclideanDistance{}(torch::zeros({3}), torch::zeros({3})), siamese::ShapeError);
  CHECK_THROWS_AS(CosineDistance{}.pairwise(a, torch::zeros({5, 2})), siamese::ShapeError);
  CHECK_THROWS_AS(SquaredEuclideanDistance{}(a.to(torch::kInt64), a.to(torch::kInt64)),
                  siamese::ShapeError);
  CHECK_NOTHROW(EuclideanDistance{}.pairwise(a, torch::zeros({5, 3})));
}

TEST_CASE("The type of a metric says its direction", "[distance]") {
  static_assert(EuclideanDistance::direction == siamese::Direction::smaller_is_closer);
  static_assert(CosineSimilarity::direction == siamese::Direction::larger_is_closer);
  CHECK(siamese::is_match<EuclideanDistance>(0.3, 0.6));
  CHECK_FALSE(siamese::is_match<EuclideanDistance>(0.7, 0.6));
  CHECK(siamese::is_match<CosineSimilarity>(0.7, 0.6));
  CHECK_FALSE(siamese::is_match<CosineSimilarity>(0.3, 0.6));
  CHECK(siamese::is_closer<CosineDistance>(0.1, 0.2));
  CHECK(siamese::is_closer<CosineSimilarity>(0.2, 0.1));
}
