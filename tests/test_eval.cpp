#include "fixtures.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <sstream>

using Approx = Catch::Detail::Approx;
using siamese::CosineSimilarity;
using siamese::EuclideanDistance;
namespace eval = siamese::eval;

TEST_CASE("Perfect separation: AUC 1, EER 0, accuracy 1", "[eval]") {
  const std::vector<double> d = {0.1, 0.2, 0.3, 0.9, 1.0, 1.1};
  const std::vector<int> y = {1, 1, 1, 0, 0, 0};
  const auto r = eval::evaluate_scores<EuclideanDistance>(d, y);
  CHECK(r.auc == Approx(1.0));
  CHECK(r.eer == Approx(0.0).margin(1e-12));
  CHECK(r.best_accuracy == Approx(1.0));
  CHECK(r.best_threshold > 0.3);
  CHECK(r.best_threshold < 0.9);
  CHECK(r.tar_at_far_1e3 == Approx(1.0));
  CHECK(r.roc.front().far == 0.0);
  CHECK(r.roc.back().far == 1.0);
  CHECK(r.roc.back().tar == 1.0);
  // The same scores as a similarity, where larger means same: the metric's type flips it.
  const std::vector<double> s = {0.9, 0.8, 0.7, 0.1, 0.0, -0.1};
  CHECK(eval::evaluate_scores<CosineSimilarity>(s, y).auc == Approx(1.0));
  CHECK(eval::evaluate_scores<EuclideanDistance>(s, y).auc == Approx(0.0));
}

TEST_CASE("Total overlap and ties: AUC 0.5, EER 0.5", "[eval]") {
  const std::vector<double> d = {0.5, 0.5, 0.5, 0.5};
  const std::vector<int> y = {1, 0, 1, 0};
  const auto r = eval::evaluate_scores<EuclideanDistance>(d, y);
  CHECK(r.auc == Approx(0.5));
  CHECK(r.eer == Approx(0.5));
  CHECK(r.best_accuracy == Approx(0.5));
  REQUIRE(r.roc.size() == 2);  // all tied scores move together: one step from (0,0) to (1,1)
}

TEST_CASE("Hand-computed ROC with one mistake", "[eval]") {
  // Distances: same pairs 0.1 0.4 0.6; different pairs 0.3 0.8 0.9.
  const std::vector<double> d = {0.1, 0.4, 0.6, 0.3, 0.8, 0.9};
  const std::vector<int> y = {1, 1, 1, 0, 0, 0};
  const auto r = eval::evaluate_scores<EuclideanDistance>(d, y);
  // Ranked by distance: S(0.1) D(0.3) S(0.4) S(0.6) D(0.8) D(0.9). AUC is the share of
  // (same, different) pairs ranked right: 3 + 2 + 2 of 9.
  CHECK(r.auc == Approx(7.0 / 9.0));
  CHECK(r.best_accuracy == Approx(5.0 / 6.0));
  CHECK(r.tar_at_far_1e2 == Approx(1.0 / 3.0));
  const auto p = eval::point_at_far(r, 0.0);
  CHECK(p.far == 0.0);
  CHECK(p.tar == Approx(1.0 / 3.0));
  CHECK(r.eer == Approx(1.0 / 3.0));
}

TEST_CASE("K-fold accuracy chooses thresholds on the other folds", "[eval]") {
  // Folds 0 and 1 are separable anywhere in (0.3, 0.75); fold 2 only above 0.6, so the
  // threshold learnt on folds 0 and 1 (0.525) misjudges its same-person pair.
  const std::vector<double> d = {0.2, 0.75, 0.3, 0.8, 0.6, 0.9};
  const std::vector<int> y = {1, 0, 1, 0, 1, 0};
  const std::vector<int> folds = {0, 0, 1, 1, 2, 2};
  const auto k = eval::kfold_accuracy<EuclideanDistance>(d, y, folds);
  REQUIRE(k.accuracies.size() == 3);
  CHECK(k.accuracies[0] == Approx(1.0));
  CHECK(k.accuracies[1] == Approx(1.0));
  CHECK(k.accuracies[2] == Approx(0.5));
  CHECK(k.thresholds[2] == Approx(0.525));
  CHECK(k.mean == Approx(2.5 / 3));
  CHECK(k.stddev > 0.2);
  CHECK_THROWS_AS(eval::kfold_accuracy<EuclideanDistance>(d, y, {0, 0, 0, 0, 0, 0}), siamese::Error);
}

namespace {

// The threshold choice as it was first written: every candidate counted over the whole subset,
// O(N^2). The sweep must choose exactly what this chooses.
double best_threshold_by_counting(const std::vector<double>& similarity, const std::vector<int>& labels,
                                  const std::vector<std::size_t>& subset) {
  std::vector<double> values;
  for (std::size_t i : subset) values.push_back(similarity[i]);
  double best = -1.0;
  std::vector<double> best_ones;
  for (double t : eval::detail::candidate_thresholds(values)) {
    const double a = eval::detail::accuracy_at(similarity, labels, subset, t);
    if (a > best + 1e-12) {
      best = a;
      best_ones = {t};
    } else if (std::abs(a - best) <= 1e-12) {
      best_ones.push_back(t);
    }
  }
  return best_ones[best_ones.size() / 2];
}

}  // namespace

TEST_CASE("The best threshold from one sorted sweep is the one counting every candidate finds", "[eval]") {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    const std::size_t n = 2 + rng() % 300;
    // Coarse scores (many ties), fine scores, and scores on adjacent doubles.
    const int kind = trial % 3;
    std::vector<double> similarity(n);
    std::vector<int> labels(n);
    for (std::size_t i = 0; i < n; ++i) {
      labels[i] = static_cast<int>(rng() % 2);
      const double u = std::uniform_real_distribution<double>(0, 1)(rng) + 0.3 * labels[i];
      similarity[i] = kind == 0 ? std::round(u * 8) / 8 : kind == 1 ? u : std::nextafter(1.0, 2.0 * (rng() % 3));
    }
    std::vector<std::size_t> subset;
    for (std::size_t i = 0; i < n; ++i) {
      if (rng() % 4 != 0) subset.push_back(i);
    }
    if (subset.empty()) subset.push_back(0);
    INFO("trial " << trial << ", " << subset.size() << " scores");
    CHECK(eval::detail::best_threshold(similarity, labels, subset) == best_threshold_by_counting(similarity, labels, subset));
  }
}

TEST_CASE("A million scored pairs evaluate, ten folds and all, in one sort each", "[eval]") {
  // Distances of same-person pairs in [0, 1), of different-person pairs in [0.8, 1.8): exactly
  // the pairs in the overlap [0.8, 1) can be wrong, and the best threshold lies inside it.
  constexpr std::size_t n = 1'000'000;
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> unit(0, 1);
  std::vector<double> d(n);
  std::vector<int> y(n), folds(n);
  for (std::size_t i = 0; i < n; ++i) {
    y[i] = static_cast<int>(i % 2);
    d[i] = y[i] ? unit(rng) : 0.8 + unit(rng);
    folds[i] = static_cast<int>(i / 2 % 10);  // both labels in every fold
  }
  const auto report = eval::evaluate_scores<EuclideanDistance>(d, y);
  CHECK(report.best_threshold > 0.8);
  CHECK(report.best_threshold < 1.0);
  CHECK(report.best_accuracy > 0.89);  // at most the 20% + 20% in the overlap, half of them wrong
  const auto kfold = eval::kfold_accuracy<EuclideanDistance>(d, y, folds);
  CHECK(kfold.accuracies.size() == 10);
  CHECK(kfold.mean == Approx(report.best_accuracy).margin(0.01));
}

TEST_CASE("Metrics reject bad input", "[eval][errors]") {
  CHECK_THROWS_AS(eval::evaluate_scores<EuclideanDistance>({0.1, 0.2}, {1}), siamese::ShapeError);
  CHECK_THROWS_AS(eval::evaluate_scores<EuclideanDistance>({0.1, 0.2}, {1, 1}), siamese::Error);
  CHECK_THROWS_AS(eval::evaluate_scores<EuclideanDistance>({0.1, 0.2}, {1, 2}), siamese::Error);
  CHECK_THROWS_AS(eval::evaluate_scores<EuclideanDistance>({0.1, NAN}, {1, 0}), siamese::NumericError);
}

TEST_CASE("LFW pair files parse, with folds", "[eval][pairs]") {
  fixtures::TempDir dir;
  fixtures::write_file(dir / "pairs.txt",
                       "2\t1\nAlice\t1\t2\nAlice\t1\tBob\t3\nCarol\t2\t4\nBob\t1\tCarol\t1\r\n");
  const auto list = eval::parse_lfw_pairs(dir / "pairs.txt", "/data");
  CHECK(list.folds == 2);
  REQUIRE(list.pairs.size() == 4);
  CHECK(list.pairs[0].a == std::filesystem::path("/data/Alice/Alice_0001.jpg"));
  CHECK(list.pairs[0].b == std::filesystem::path("/data/Alice/Alice_0002.jpg"));
  CHECK(list.pairs[0].label == 1);
  CHECK(list.pairs[1].b == std::filesystem::path("/data/Bob/Bob_0003.jpg"));
  CHECK(list.pairs[1].label == 0);
  CHECK(list.pairs[2].fold == 1);
  CHECK(list.pairs[3].fold == 1);
  CHECK(eval::distinct_images(list).size() == 7);

  fixtures::write_file(dir / "dev.txt", "1\nAlice\t1\t2\nAlice\t1\tBob\t3\n");
  CHECK(eval::parse_lfw_pairs(dir / "dev.txt", "/d").folds == 1);
}

TEST_CASE("Malformed pair files raise errors naming the line", "[eval][pairs][errors]") {
  fixtures::TempDir dir;
  auto parse = [&](const std::string& text) {
    fixtures::write_file(dir / "p.txt", text);
    return eval::parse_lfw_pairs(dir / "p.txt", "/d");
  };
  CHECK_THROWS_WITH(parse("1\nAlice\t1\t2\nAlice\tx\tBob\t3\n"), Catch::Contains("p.txt:3") && Catch::Contains("'x'"));
  CHECK_THROWS_WITH(parse("1\nAlice\t1\t2\t3\t4\t5\n"), Catch::Contains("p.txt:2"));
  CHECK_THROWS_WITH(parse("1\nAlice\t1\tBob\t2\nAlice\t1\t2\n"), Catch::Contains("p.txt:2") && Catch::Contains("same-person pairs"));
  CHECK_THROWS_WITH(parse("2\nA\t1\t2\nA\t1\t3\nA\t1\tB\t3\n"), Catch::Contains("announces 4 pairs, file has 3"));
  CHECK_THROWS_WITH(parse("1\nA\t1\t2\nA\t1\tB\t2\nA\t1\t2\n"), Catch::Contains("p.txt:4") && Catch::Contains("more pairs"));
  CHECK_THROWS_AS(parse(""), eval::PairListError);
  CHECK_THROWS_AS(parse("abc\n"), eval::PairListError);
  CHECK_THROWS_AS(parse("1\t2\t3\n"), eval::PairListError);
  CHECK_THROWS_WITH(parse("100\t1000000\n"), Catch::Contains("over the limit"));
  CHECK_THROWS_AS(eval::parse_lfw_pairs(dir / "missing.txt", "/d"), siamese::FileError);

  fixtures::write_file(dir / "p.csv", "path_a,path_b,label\na.jpg,b.jpg,1\nc.jpg,d.jpg,0\n");
  const auto csv = eval::parse_pairs(dir / "p.csv", "/r");
  REQUIRE(csv.pairs.size() == 2);
  CHECK(csv.pairs[0].a == std::filesystem::path("/r/a.jpg"));
  CHECK(csv.pairs[1].label == 0);
  fixtures::write_file(dir / "bad.csv", "a.jpg,b.jpg,1\na.jpg,b.jpg,yes\n");
  CHECK_THROWS_WITH(eval::parse_pairs(dir / "bad.csv", "/r"), Catch::Contains("bad.csv:2"));
}

TEST_CASE("A pair list past a million pairs is refused at the line that crosses the limit", "[eval][pairs][errors]") {
  std::string text;
  text.reserve(7'000'010);
  for (int i = 0; i < 1'000'001; ++i) text += "a,b,1\n";
  std::istringstream in(text);
  CHECK_THROWS_WITH(eval::parse_csv_pairs(in, "huge.csv", "/r"),
                    Catch::Contains("huge.csv:1000001") && Catch::Contains("more than 1000000 pairs"));
  std::istringstream long_line(std::string(10'000, 'x'));
  CHECK_THROWS_WITH(eval::parse_csv_pairs(long_line, "wide.csv", "/r"), Catch::Contains("wide.csv:1") && Catch::Contains("longer than"));
}

TEST_CASE("Calibration: a fitted head, the Brier score, save and load", "[eval][calibration]") {
  // Distances drawn from p(same | d) = sigmoid(-8 d + 4): the fit must recover roughly that.
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::vector<double> d;
  std::vector<int> y;
  for (int i = 0; i < 4000; ++i) {
    const double distance = uniform(rng) * 1.2;
    d.push_back(distance);
    y.push_back(uniform(rng) < 1.0 / (1.0 + std::exp(8 * distance - 4)) ? 1 : 0);
  }
  const auto head = eval::fit_sigmoid_head(d, y);
  CHECK(head.weight == Approx(-8.0).epsilon(0.15));
  CHECK(head.bias == Approx(4.0).epsilon(0.15));
  std::vector<double> p;
  for (double v : d) p.push_back(1.0 / (1.0 + std::exp(-(head.weight * v + head.bias))));
  const double fitted = eval::brier_score(p, y);
  CHECK(fitted < eval::brier_score(std::vector<double>(d.size(), 0.5), y));
  for (const auto& bin : eval::reliability_table(p, y)) {
    if (bin.count > 200) CHECK(std::abs(bin.mean_probability - bin.observed_rate) < 0.08);
  }
  CHECK(eval::brier_score({1.0, 0.0}, {1, 0}) == 0.0);

  fixtures::TempDir dir;
  eval::Calibration c{"tiny-embedder", -8.0, 4.0, 0.45, "far<=0.001", 0.001, 0.9, 0.1, 4000};
  eval::save_calibration(c, dir / "m.calibration.json");
  const auto back = eval::load_calibration(dir / "m.calibration.json");
  CHECK(back.model_name == "tiny-embedder");
  CHECK(back.distance_threshold == 0.45);
  fixtures::write_file(dir / "bad.json", "{\"model_name\": 1}");
  CHECK_THROWS_AS(eval::load_calibration(dir / "bad.json"), siamese::MetadataError);
}

TEST_CASE("A calibration file with a count that is no integer, or a value out of range, is refused by name", "[eval][calibration][errors]") {
  const auto with = [](const std::string& field, const std::string& value) {
    nlohmann::json j = nlohmann::json::parse(eval::to_json_string({"m", -10.0, 6.0, 0.6, "far<=0.001", 0.001, 0.9, 0.05, 600}));
    j[field] = nlohmann::json::parse(value);
    return j.dump();
  };
  const auto good = eval::parse_calibration(with("pairs", "600"), "c.json");
  CHECK(good.pairs == 600);
  CHECK(good.distance_threshold == 0.6);
  // 1e300 as a size_t was undefined behaviour; now each bad value is named.
  for (const auto& [field, value] : std::vector<std::pair<std::string, std::string>>{
           {"pairs", "1e300"}, {"pairs", "-1"}, {"pairs", "2.5"}, {"pairs", "\"600\""}, {"weight", "0"},
           {"weight", "\"w\""}, {"far", "2"}, {"tar", "-0.5"}, {"distance_threshold", "null"}}) {
    INFO(field << " = " << value);
    CHECK_THROWS_AS(eval::parse_calibration(with(field, value), "c.json"), siamese::MetadataError);
    CHECK_THROWS_WITH(eval::parse_calibration(with(field, value), "c.json"), Catch::Contains("calibration 'c.json'") && Catch::Contains(field));
  }
  CHECK_THROWS_AS(eval::parse_calibration("[1, 2]", "c.json"), siamese::MetadataError);
  CHECK_THROWS_AS(eval::parse_calibration("{", "c.json"), siamese::MetadataError);
}

TEST_CASE("load_face_verifier uses a calibration beside the model", "[eval][calibration][net]") {
  fixtures::TempDir dir;
  const auto model = fixtures::save_tiny_backbone(dir);
  eval::Calibration c{"tiny-embedder", -4.0, 1.0, 0.7, "best-accuracy", 0, 0, 0, 10};
  eval::save_calibration(c, eval::calibration_path_for(model));
  auto net = siamese::load_face_verifier(model, fixtures::cpu_options());
  CHECK(net.head()->weight.item<double>() == Approx(-4.0));
  CHECK(net.head()->distance_at(net.decision_threshold()) == Approx(0.7).epsilon(1e-4));
  c.model_name = "another-model";
  eval::save_calibration(c, eval::calibration_path_for(model));
  CHECK_THROWS_WITH(siamese::load_face_verifier(model, fixtures::cpu_options()),
                    Catch::Contains("another-model") && Catch::Contains("tiny-embedder"));
}
