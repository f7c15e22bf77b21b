#include "fixtures.hpp"

#include <siamese/eval/open_set.hpp>
#include <siamese/gallery.hpp>
#include <siamese/open_set.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <limits>

using Approx = Catch::Detail::Approx;
using siamese::OpenSetRule;
using siamese::eval::OpenSetSearches;

namespace {

// A calibration for model "m" with two sizes and three levels, thresholds chosen by hand.
siamese::OpenSetCalibration hand_calibration() {
  siamese::OpenSetCalibration c;
  c.model_name = "m";
  c.reference_distance = 1.0;
  c.confidence = 0.95;
  c.fpir_levels = {0.001, 0.01, 0.1};
  c.gallery_sizes = {10, 100};
  c.distance_thresholds = {{0.50, 0.60, 0.70}, {0.40, 0.50, 0.60}};
  c.ratio_thresholds = {{0.70, 0.80, 0.90}, {0.75, 0.85, 0.95}};
  return c;
}

// Gaussian embeddings of `people` people, `photos` photos each: a shared direction per person
// plus noise, the way a face model spreads people and their photos.
torch::Tensor synthetic_people(std::int64_t people, std::int64_t photos, std::int64_t dim, std::uint64_t seed,
                               std::vector<std::int64_t>& person_of_row) {
  torch::manual_seed(seed);
  const auto centres = torch::randn({people, dim}) * 0.3;
  std::vector<torch::Tensor> rows;
  person_of_row.clear();
  for (std::int64_t p = 0; p < people; ++p) {
    for (std::int64_t i = 0; i < photos; ++i) {
      rows.push_back(centres[p] + torch::randn({dim}) * 0.1);
      person_of_row.push_back(p);
    }
  }
  return torch::stack(rows);
}

}  // namespace

TEST_CASE("FNIR at FPIR, DET and rank accuracy count as FRVT defines them", "[open_set][eval]") {
  OpenSetSearches s;
  // Mated: 4 searches; the third's top candidate is someone else, the fourth's mate is not listed.
  s.mated_scores = {0.1, 0.3, 0.2, 0.9};
  s.mate_ranks = {1, 1, 2, 0};
  // Non-mated: 10 searches scoring 0.25, 0.35, ..., 1.15.
  for (int i = 0; i < 10; ++i) s.nonmated_scores.push_back(0.25 + 0.1 * i);
  // FPIR 0.1 allows 1 of 10: the threshold stays below the second-lowest stranger (0.35).
  const auto at_10 = siamese::eval::fnir_at_fpir(s, 0.1);
  CHECK(at_10.threshold < 0.35);
  CHECK(at_10.threshold >= 0.25);
  CHECK(at_10.fpir == Approx(0.1));
  CHECK(at_10.fnir == Approx(0.5));  // found: the first two; the third is rank 2, the fourth unlisted
  // Below every stranger: FPIR 0, and only the first mated search passes.
  const auto at_0 = siamese::eval::fnir_at_fpir(s, 0.05);
  CHECK(at_0.fpir == 0.0);
  CHECK(at_0.fnir == Approx(0.75));
  CHECK(siamese::eval::rank_accuracy(s, 1) == Approx(0.5));
  CHECK(siamese::eval::rank_accuracy(s, 5) == Approx(0.75));
  const auto det = siamese::eval::det_curve(s);
  REQUIRE(det.size() == 11);
  CHECK(det.front().fpir == 0.0);
  CHECK(det.back().fpir == 1.0);
  for (std::size_t i = 1; i < det.size(); ++i) {
    CHECK(det[i].fpir >= det[i - 1].fpir);
    CHECK(det[i].fnir <= det[i - 1].fnir);
  }
  CHECK_THROWS_AS(siamese::eval::fnir_at_fpir(s, 0.0), siamese::Error);
  CHECK_THROWS_AS(siamese::eval::fnir_at_fpir(s, 1.0), siamese::Error);
  s.mate_ranks.pop_back();
  CHECK_THROWS_AS(siamese::eval::rank_accuracy(s, 1), siamese::ShapeError);
}

TEST_CASE("The open-set threshold follows the gallery's size and the target FPIR", "[open_set]") {
  const auto c = hand_calibration();
  // On the grid.
  CHECK(threshold_for(c, OpenSetRule::nearest_distance, 10, 0.01).threshold == Approx(0.60));
  CHECK(threshold_for(c, OpenSetRule::distance_ratio, 100, 0.1).threshold == Approx(0.95));
  // Between sizes, in log size: 31.6 people is halfway from 10 to 100.
  CHECK(threshold_for(c, OpenSetRule::nearest_distance, 32, 0.01).threshold == Approx(0.55).margin(0.002));
  // Between levels, in log FPIR.
  CHECK(threshold_for(c, OpenSetRule::nearest_distance, 10, std::sqrt(0.001 * 0.01)).threshold == Approx(0.55));
  // Past the largest size: extrapolated along the last two, and said so.
  const auto big = threshold_for(c, OpenSetRule::nearest_distance, 1000, 0.01);
  CHECK(big.extrapolated);
  CHECK(big.threshold == Approx(0.40));
  CHECK_FALSE(threshold_for(c, OpenSetRule::nearest_distance, 100, 0.01).extrapolated);
  const auto decision = threshold_for(c, OpenSetRule::distance_ratio, 50, 0.01);
  CHECK(decision.rule == OpenSetRule::distance_ratio);
  CHECK(decision.target_fpir == 0.01);
  CHECK(decision.gallery_people == 50);
  CHECK(decision.reference_distance == 1.0);
  CHECK_THROWS_WITH(threshold_for(c, OpenSetRule::distance_ratio, 50, 1.5), Catch::Contains("must lie in (0, 1)"));
  CHECK_THROWS_WITH(threshold_for(c, OpenSetRule::distance_ratio, 50, 0.5), Catch::Contains("covers FPIR"));
  CHECK_THROWS_AS(threshold_for(c, OpenSetRule::distance_ratio, 0, 0.01), siamese::GalleryError);
}

TEST_CASE("Open-set calibration files round-trip and refuse what breaks their invariants", "[open_set][metadata]") {
  const auto c = hand_calibration();
  const auto back = siamese::parse_open_set_calibration(siamese::to_json_string(c), "x");
  CHECK(back.model_name == "m");
  CHECK(back.ratio_thresholds == c.ratio_thresholds);
  CHECK(back.gallery_sizes == c.gallery_sizes);
  const auto broken = [&](auto change) {
    auto j = nlohmann::json::parse(siamese::to_json_string(c));
    change(j);
    return j.dump();
  };
  using siamese::MetadataError;
  CHECK_THROWS_AS(siamese::parse_open_set_calibration("{", "x"), MetadataError);
  CHECK_THROWS_WITH(siamese::parse_open_set_calibration(broken([](auto& j) { j["format_version"] = 2; }), "x"),
                    Catch::Contains("format_version 2"));
  CHECK_THROWS_WITH(siamese::parse_open_set_calibration(broken([](auto& j) { j["ratio_thresholds"][0][1] = 0.1; }), "x"),
                    Catch::Contains("rise with the FPIR"));
  CHECK_THROWS_WITH(siamese::parse_open_set_calibration(broken([](auto& j) { j["gallery_sizes"] = {100, 10}; }), "x"),
                    Catch::Contains("gallery_sizes must rise"));
  CHECK_THROWS_WITH(siamese::parse_open_set_calibration(broken([](auto& j) { j["distance_thresholds"].erase(1); }), "x"),
                    Catch::Contains("one row per gallery size"));
  CHECK_THROWS_WITH(siamese::parse_open_set_calibration(broken([](auto& j) { j["fpir_levels"][2] = 1.5; }), "x"),
                    Catch::Contains("inside (0, 1)"));
  CHECK_THROWS_WITH(siamese::parse_open_set_calibration(broken([](auto& j) { j["people"] = 1e300; }), "x"),
                    Catch::Contains("people must be an integer"));
  CHECK_THROWS_WITH(siamese::parse_open_set_calibration(broken([](auto& j) { j["reference_distance"] = "1"; }), "x"),
                    Catch::Contains("reference_distance"));
  CHECK_THROWS_AS(siamese::parse_open_set_calibration(broken([](auto& j) { j.erase("model_name"); }), "x"), MetadataError);

  // Beside a model: refused for another model, naming both.
  const fixtures::TempDir dir;
  const auto model = dir / "net.pt";
  CHECK_FALSE(siamese::load_open_set_calibration_for(model, "m").has_value());
  siamese::save_open_set_calibration(c, siamese::open_set_calibration_path_for(model));
  CHECK(siamese::load_open_set_calibration_for(model, "m")->model_name == "m");
  CHECK_THROWS_WITH(siamese::load_open_set_calibration_for(model, "other"),
                    Catch::Contains("made for model 'm', not 'other'"));
  // A gallery of another model refuses it too.
  siamese::Gallery gallery("other", 2);
  gallery.enroll("ann", torch::tensor({0.0F, 0.0F}));
  CHECK_THROWS_WITH(gallery.identify(torch::tensor({0.0F, 0.0F}), 1, c), Catch::Contains("of 'm' cannot serve a gallery of 'other'"));
}

TEST_CASE("The distance-ratio rule weighs the nearest person against the second-nearest", "[open_set][gallery]") {
  siamese::Gallery gallery("m", 2);
  gallery.enroll("ann", torch::tensor({0.0F, 0.0F}));
  gallery.enroll("bob", torch::tensor({4.0F, 0.0F}));
  siamese::OpenSetDecision ratio;
  ratio.rule = OpenSetRule::distance_ratio;
  ratio.threshold = 0.5;
  ratio.reference_distance = 10.0;
  // Near ann (1 of 3): known, even with k = 1 (the rule still looks at the second person).
  const auto near = gallery.identify(torch::tensor({1.0F, 0.0F}), 1, ratio)[0];
  CHECK(near.candidates.size() == 1);
  CHECK(near.score == Approx(1.0 / 3.0));
  CHECK(near.known);
  CHECK(near.best() == "ann");
  // Between them (2 of 2): not known, although as close to ann as the first probe is.
  const auto between = gallery.identify(torch::tensor({2.0F, 0.0F}), 1, ratio)[0];
  CHECK(between.score == Approx(1.0));
  CHECK_FALSE(between.known);
  // The second distance is capped at the reference: far from both, d1 / reference decides.
  ratio.reference_distance = 2.0;
  const auto far = gallery.identify(torch::tensor({0.0F, 1.5F}), 1, ratio)[0];
  CHECK(far.score == Approx(1.5 / 2.0));
  // One person: the second distance is infinite, so the reference stands in.
  siamese::Gallery one("m", 2);
  one.enroll("ann", torch::tensor({0.0F, 0.0F}));
  CHECK(one.identify(torch::tensor({1.0F, 0.0F}), 1, ratio)[0].score == Approx(0.5));
  // The decision each answer carries is the one applied.
  CHECK(near.decision.rule == OpenSetRule::distance_ratio);
  CHECK(gallery.identify(torch::tensor({1.0F, 0.0F}), 1, 0.5)[0].decision.rule == OpenSetRule::nearest_distance);
}

TEST_CASE("A calibration made from strangers predicts the FPIR of galleries of other people", "[open_set][eval]") {
  constexpr std::int64_t dim = 16;
  std::vector<std::int64_t> calibration_people, test_people;
  const auto calibration_rows = synthetic_people(400, 2, dim, 1, calibration_people);
  siamese::eval::OpenSetCalibrationOptions options;
  options.searches = 20000;
  options.resamplings = 10;
  const auto c = siamese::eval::calibrate_open_set(calibration_rows, calibration_people, "m", options);
  CHECK(c.people == 400);
  CHECK(c.photos == 800);
  CHECK(c.gallery_sizes.front() == 1);
  CHECK(c.gallery_sizes.back() == 399);
  CHECK(c.reference_distance > 0);
  REQUIRE_FALSE(c.far_levels.empty());
  // The nearest of more people is nearer: distance thresholds fall as the gallery grows.
  CHECK(c.distance_thresholds.back()[6] < c.distance_thresholds.front()[6]);

  // Other people: 200 enrolled with their first photo, 2,000 strangers.
  const auto test_rows = synthetic_people(2200, 1, dim, 2, test_people);
  siamese::Gallery gallery("m", dim);
  std::vector<siamese::Enrollment> batch;
  for (std::int64_t p = 0; p < 200; ++p) batch.push_back({"p" + std::to_string(p), test_rows[p], {}});
  gallery.enroll(batch);
  const auto strangers = test_rows.narrow(0, 200, 2000);
  for (const auto rule : {OpenSetRule::nearest_distance, OpenSetRule::distance_ratio}) {
    const auto found = gallery.identify(strangers, 1, c, 0.05, rule);
    std::size_t named = 0;
    for (const auto& f : found) named += f.known;
    const double fpir = static_cast<double>(named) / 2000.0;
    INFO(to_string(rule) << ": measured FPIR " << fpir << " at target 0.05, threshold " << found[0].decision.threshold);
    CHECK(found[0].decision.gallery_people == 200);
    CHECK(fpir > 0.05 / 2.5);
    CHECK(fpir < 0.05 * 2.0);
  }
  CHECK_THROWS_AS(siamese::eval::calibrate_open_set(calibration_rows.narrow(0, 0, 4), {0, 0, 1, 1}, "m"), siamese::Error);
  CHECK_THROWS_AS(siamese::eval::calibrate_open_set(calibration_rows, {0, 1}, "m"), siamese::ShapeError);
}

TEST_CASE("The calibration/test split is a fixed function of the name, share and seed", "[open_set][eval]") {
  std::size_t calibration = 0;
  for (int i = 0; i < 10000; ++i) calibration += siamese::eval::is_calibration_person("person " + std::to_string(i), 0.2, 1);
  CHECK(calibration > 1800);
  CHECK(calibration < 2200);
  CHECK(siamese::eval::is_calibration_person("Ann", 0.2, 1) == siamese::eval::is_calibration_person("Ann", 0.2, 1));
  CHECK_FALSE(siamese::eval::is_calibration_person("Ann", 0.0, 1));
  CHECK(siamese::eval::is_calibration_person("Ann", 1.0, 1));
}

TEST_CASE("A gallery database keeps one row per photo and person, and names who holds a photo", "[gallery][open_set]") {
  const fixtures::TempDir dir;
  auto gallery = siamese::Gallery::open(dir / "g.db", "m", 2);
  CHECK(gallery.enroll("ann", torch::tensor({0.0F, 0.0F}), {{"a.jpg", 7}}) == 1);
  CHECK(gallery.enroll("ann", torch::tensor({0.0F, 0.0F}), {{"a-again.jpg", 7}}) == 0);  // same content
  // Twice in one batch: once.
  CHECK(gallery.enroll("ann", torch::stack({torch::tensor({1.0F, 0.0F}), torch::tensor({1.0F, 0.0F})}), {{"b.jpg", 8}, {"b.jpg", 8}}) == 1);
  // Another person may hold the same photo (a group photo); rows without a hash are all kept.
  CHECK(gallery.enroll("bob", torch::tensor({0.0F, 0.0F}), {{"a.jpg", 7}}) == 1);
  CHECK(gallery.enroll("bob", torch::stack({torch::tensor({5.0F, 0.0F}), torch::tensor({5.0F, 0.0F})})) == 2);
  CHECK(gallery.size() == 5);
  CHECK(gallery.store()->people_with_photo(7) == std::vector<std::string>{"ann", "bob"});
  CHECK(gallery.store()->people_with_photo(9).empty());
}

TEST_CASE("An enrollment the gallery would confuse with someone else is found, naming them", "[gallery][open_set]") {
  siamese::Gallery gallery("m", 2);
  gallery.enroll("ann", torch::tensor({0.0F, 0.0F}));
  gallery.enroll("bob", torch::tensor({10.0F, 0.0F}));
  const auto decision = siamese::OpenSetDecision::distance_at_most(1.0);
  const auto conflict = gallery.conflicting_person("cyd", torch::stack({torch::tensor({5.0F, 5.0F}), torch::tensor({9.5F, 0.0F})}), decision);
  REQUIRE(conflict.has_value());
  CHECK(conflict->person == "bob");
  CHECK(conflict->distance == Approx(0.5));
  CHECK_FALSE(gallery.conflicting_person("bob", torch::tensor({9.5F, 0.0F}), decision).has_value());  // more of bob
  CHECK_FALSE(gallery.conflicting_person("cyd", torch::tensor({5.0F, 5.0F}), decision).has_value());  // nobody near
}

TEST_CASE("A person's template is the mean direction of their photos at their mean length", "[gallery]") {
  const auto t = siamese::person_template(torch::stack({torch::tensor({2.0F, 0.0F}), torch::tensor({0.0F, 4.0F})}));
  REQUIRE(t.sizes() == torch::IntArrayRef({1, 2}));
  CHECK(t[0][0].item<float>() == Approx(3.0 / std::sqrt(2.0)));
  CHECK(t[0][1].item<float>() == Approx(3.0 / std::sqrt(2.0)));
  CHECK_THROWS_AS(siamese::person_template(torch::zeros({0, 2})), siamese::ShapeError);
}
