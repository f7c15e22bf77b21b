#pragma once

// Open-set identification measured as NIST's FRVT 1:N (FRTE) measures it: mated searches (the
// probe's person is enrolled) and non-mated searches (a stranger), FNIR at a fixed FPIR, DET
// curves and rank-k accuracy; and the calibration that lets a gallery choose its threshold.

#include <siamese/detail/files.hpp>
#include <siamese/detail/format.hpp>
#include <siamese/errors.hpp>
#include <siamese/open_set.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace siamese::eval {

/// The outcome of an open-set test: for each mated search the score of its top candidate and
/// the rank at which its mate was listed, for each non-mated search the score of its top
/// candidate. Scores follow OpenSetRule: lower is more likely enrolled.
struct OpenSetSearches {
  std::vector<double> mated_scores;
  std::vector<std::size_t> mate_ranks;  ///< 1 = the top candidate is the mate; 0 = not listed
  std::vector<double> nonmated_scores;
};

/// A decision threshold and the error rates it gives.
struct OpenSetPoint {
  double threshold = 0.0;
  double fpir = 0.0;  ///< non-mated searches whose top candidate scores within the threshold
  double fnir = 0.0;  ///< mated searches whose top candidate is not the mate within the threshold
};

namespace detail {

inline void check_searches(const OpenSetSearches& s) {
  if (s.mated_scores.size() != s.mate_ranks.size()) {
    throw ShapeError("open-set searches need one mate rank per mated score, got " + std::to_string(s.mated_scores.size()) +
                     " scores and " + std::to_string(s.mate_ranks.size()) + " ranks");
  }
  if (s.mated_scores.empty() || s.nonmated_scores.empty()) {
    throw Error("open-set metrics need mated and non-mated searches, got " + std::to_string(s.mated_scores.size()) + " and " +
                std::to_string(s.nonmated_scores.size()));
  }
  for (const auto* scores : {&s.mated_scores, &s.nonmated_scores}) {
    for (double v : *scores) {
      if (std::isnan(v)) throw NumericError("an open-set score is NaN");
    }
  }
}

inline double fnir_at(const OpenSetSearches& s, double threshold) {
  std::size_t found = 0;
  for (std::size_t i = 0; i < s.mated_scores.size(); ++i) found += s.mate_ranks[i] == 1 && s.mated_scores[i] <= threshold;
  return 1.0 - static_cast<double>(found) / static_cast<double>(s.mated_scores.size());
}

inline double fpir_at(const OpenSetSearches& s, double threshold) {
  const auto named = std::count_if(s.nonmated_scores.begin(), s.nonmated_scores.end(), [&](double v) { return v <= threshold; });
  return static_cast<double>(named) / static_cast<double>(s.nonmated_scores.size());
}

}  // namespace detail

/// The FNIR and FPIR at `threshold`. FNIR counts a mated search as found only when its top
/// candidate is the mate (rank 1) and scores within the threshold.
/// Throws ShapeError/Error/NumericError for malformed searches (see OpenSetSearches).
inline OpenSetPoint open_set_point(const OpenSetSearches& s, double threshold) {
  detail::check_searches(s);
  return {threshold, detail::fpir_at(s, threshold), detail::fnir_at(s, threshold)};
}

/// The loosest threshold whose measured FPIR is at most `target_fpir`, and the FNIR there.
/// Requires: 0 < target_fpir < 1. With n non-mated searches, FPIR below 1/n reads as 0.
inline OpenSetPoint fnir_at_fpir(const OpenSetSearches& s, double target_fpir) {
  detail::check_searches(s);
  if (!(target_fpir > 0 && target_fpir < 1)) throw Error("a target FPIR must lie in (0, 1), got " + std::to_string(target_fpir));
  auto sorted = s.nonmated_scores;
  std::sort(sorted.begin(), sorted.end());
  const auto allowed = static_cast<std::size_t>(std::floor(target_fpir * static_cast<double>(sorted.size())));
  const double threshold = allowed >= sorted.size() ? std::numeric_limits<double>::max()
                                                    : std::nextafter(sorted[allowed], -std::numeric_limits<double>::infinity());
  return open_set_point(s, threshold);
}

/// The DET curve: (FPIR, FNIR) at every threshold where the FPIR changes, from FPIR 0 up.
inline std::vector<OpenSetPoint> det_curve(const OpenSetSearches& s) {
  detail::check_searches(s);
  auto thresholds = s.nonmated_scores;
  std::sort(thresholds.begin(), thresholds.end());
  thresholds.erase(std::unique(thresholds.begin(), thresholds.end()), thresholds.end());
  std::vector<OpenSetPoint> curve{open_set_point(s, std::nextafter(thresholds.front(), -std::numeric_limits<double>::infinity()))};
  for (double t : thresholds) curve.push_back(open_set_point(s, t));
  return curve;
}

/// Closed-set rank-k accuracy (one point of the CMC curve): the share of mated searches whose
/// mate is among the top `rank` candidates, whatever the threshold.
inline double rank_accuracy(const OpenSetSearches& s, std::size_t rank) {
  detail::check_searches(s);
  const auto hits = std::count_if(s.mate_ranks.begin(), s.mate_ranks.end(), [&](std::size_t r) { return r >= 1 && r <= rank; });
  return static_cast<double>(hits) / static_cast<double>(s.mate_ranks.size());
}

/// Whether `person` belongs to the calibration side of a split of people: a seeded hash of the
/// name below `share`. The same name, share and seed always land on the same side, so an
/// open-set calibration and a test made with the same split never share a person.
inline bool is_calibration_person(const std::string& person, double share, std::uint64_t seed) {
  const std::string key = std::to_string(seed) + '\x1f' + person;
  const auto h = siamese::detail::fnv1a(key.data(), key.size());
  // The top 53 bits as a uniform number in [0, 1).
  return static_cast<double>(h >> 11) * 0x1.0p-53 < share;
}

/// How calibrate_open_set() works.
struct OpenSetCalibrationOptions {
  std::uint64_t seed = 1;
  std::size_t searches = 100000;      ///< simulated stranger searches per gallery size and resampling
  std::size_t max_probes = 2000;      ///< people whose photo plays the stranger
  std::size_t max_pair_photos = 6000; ///< photos behind the 1:1 impostor curve (all pairs of them)
  /// The thresholds hold with this confidence over the choice of strangers: the simulation is
  /// repeated on `resamplings` resamplings of the probe people (with replacement), and each
  /// threshold is the (1 - confidence) quantile of theirs. A calibration of about a thousand
  /// people otherwise reads a threshold that other people's galleries exceed half the time
  /// (on LFW, calibrations from four disjoint sets of people put the threshold for 1,000 people
  /// anywhere in 0.8425..0.8599, and FPIR moves by half its value across that range).
  double confidence = 0.99;
  std::size_t resamplings = 100;
  std::vector<double> fpir_levels{1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5};
  std::string made_by;
};

namespace detail {

// The position (0-based) of the nearest of `n` people drawn at random, without replacement,
// from `m` sorted by distance: P(position >= i) = C(m - i, n) / C(m, n); inverted for `u`.
// `log_factorial[i]` = log(i!) for i up to m.
inline std::size_t nearest_drawn_position(std::size_t m, std::size_t n, double u, const std::vector<double>& log_factorial) {
  const auto log_choose = [&](std::size_t a, std::size_t b) { return log_factorial[a] - log_factorial[b] - log_factorial[a - b]; };
  const double log_u = std::log(u);
  const double all = log_choose(m, n);
  std::size_t lo = 0, hi = m - n;  // the largest i with P(position >= i) >= u
  while (lo < hi) {
    const std::size_t mid = (lo + hi + 1) / 2;
    if (log_choose(m - mid, n) - all >= log_u) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

// The score at or below which a share `level` of `sorted` lies (at most that share).
inline double threshold_at_level(const std::vector<double>& sorted, double level) {
  const auto allowed = static_cast<std::size_t>(std::floor(level * static_cast<double>(sorted.size())));
  if (allowed == 0) return std::max(0.0, std::nextafter(sorted.front(), 0.0));
  if (allowed >= sorted.size()) return sorted.back();
  return 0.5 * (sorted[allowed - 1] + sorted[allowed]);
}

}  // namespace detail

/// An open-set calibration from `embeddings` [R, D] (float, CPU) of photos of people who will
/// never be enrolled in the galleries it serves, `person_of_row[r]` naming row r's person by
/// any integer. Each person's first photo stands for them in simulated galleries; strangers
/// (up to max_probes people) search galleries of every size from 1 to all other people, the
/// gallery's people drawn at random for each search (`searches` per size, on each of
/// `resamplings` resamplings of the strangers; see `confidence`). The 1:1 impostor
/// curve comes from all pairs of up to max_pair_photos photos of different people.
/// Requires: at least 3 people, 0 < confidence < 1. Throws ShapeError for mismatched inputs, NumericError for
/// non-finite embeddings, Error for too few people.
inline OpenSetCalibration calibrate_open_set(const torch::Tensor& embeddings, const std::vector<std::int64_t>& person_of_row,
                                             const std::string& model_name, const OpenSetCalibrationOptions& options = {}) {
  torch::NoGradGuard no_grad;
  if (!embeddings.defined() || embeddings.dim() != 2 || static_cast<std::size_t>(embeddings.size(0)) != person_of_row.size()) {
    throw ShapeError("calibrate_open_set needs [R, D] embeddings with one person per row, got " +
                     siamese::detail::shape_string(embeddings) + " and " + std::to_string(person_of_row.size()) + " people");
  }
  const auto rows = embeddings.to(torch::kCPU, torch::kFloat64).contiguous();
  if (!torch::isfinite(rows).all().item<bool>()) throw NumericError("calibrate_open_set: embeddings are not finite");
  std::map<std::int64_t, std::int64_t> first_row;
  for (std::size_t r = 0; r < person_of_row.size(); ++r) first_row.emplace(person_of_row[r], static_cast<std::int64_t>(r));
  if (!(options.confidence > 0 && options.confidence < 1)) {
    throw Error("calibrate_open_set: confidence must lie in (0, 1), got " + std::to_string(options.confidence));
  }
  if (first_row.size() < 3) {
    throw Error("an open-set calibration needs photos of at least 3 people, got " + std::to_string(first_row.size()));
  }
  std::mt19937_64 rng(options.seed);
  OpenSetCalibration c;
  c.people = first_row.size();
  c.photos = person_of_row.size();
  c.searches = options.searches;
  c.confidence = options.confidence;
  c.resamplings = std::max<std::size_t>(options.resamplings, 1);
  c.made_by = options.made_by;
  c.model_name = model_name;
  c.fpir_levels = options.fpir_levels;

  // 1:1: every pair of different people's photos among up to max_pair_photos photos.
  std::vector<std::int64_t> photo_ids(person_of_row.size());
  std::iota(photo_ids.begin(), photo_ids.end(), 0);
  std::shuffle(photo_ids.begin(), photo_ids.end(), rng);
  photo_ids.resize(std::min(photo_ids.size(), options.max_pair_photos));
  const auto photos = rows.index_select(0, torch::tensor(photo_ids));
  std::vector<std::int64_t> photo_owners;
  for (const auto r : photo_ids) photo_owners.push_back(person_of_row[static_cast<std::size_t>(r)]);
  const auto owners = torch::tensor(photo_owners);
  const auto pair_distances = torch::cdist(photos, photos);
  const auto different = owners.unsqueeze(1).ne(owners.unsqueeze(0)).triu(1);
  auto impostors = pair_distances.masked_select(different);
  impostors = std::get<0>(impostors.sort());
  c.impostor_pairs = static_cast<std::size_t>(impostors.numel());
  if (c.impostor_pairs == 0) throw Error("an open-set calibration needs photos of different people");
  const auto* imp = impostors.data_ptr<double>();
  c.reference_distance = imp[c.impostor_pairs / 2];
  for (double far = 1e-7; far < 0.75; far *= std::sqrt(10.0)) {
    if (far * static_cast<double>(c.impostor_pairs) < 1.0) continue;
    c.far_levels.push_back(far);
    c.far_distances.push_back(imp[static_cast<std::size_t>(far * static_cast<double>(c.impostor_pairs)) - 1]);
  }

  // 1:N: each probe's distances to every other person, sorted; galleries drawn from them.
  std::vector<std::int64_t> people_rows;
  for (const auto& [person, row] : first_row) people_rows.push_back(row);
  const auto people = rows.index_select(0, torch::tensor(people_rows));
  std::vector<std::size_t> probe_people(people_rows.size());
  std::iota(probe_people.begin(), probe_people.end(), 0);
  std::shuffle(probe_people.begin(), probe_people.end(), rng);
  probe_people.resize(std::min(probe_people.size(), options.max_probes));
  const std::size_t others = people_rows.size() - 1;
  std::vector<std::vector<double>> sorted_distances;
  for (const auto p : probe_people) {
    const auto d = torch::cdist(people[static_cast<std::int64_t>(p)].unsqueeze(0), people).squeeze(0);
    std::vector<double> v(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
    v.erase(v.begin() + static_cast<std::ptrdiff_t>(p));  // not the probe's own person
    std::sort(v.begin(), v.end());
    sorted_distances.push_back(std::move(v));
  }
  // Sizes a factor 1.5 apart at least, so that the last two (which extrapolation follows) are.
  for (std::size_t n : {1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000}) {
    if (static_cast<double>(n) * 1.5 <= static_cast<double>(others)) c.gallery_sizes.push_back(n);
  }
  c.gallery_sizes.push_back(others);
  std::vector<double> log_factorial(others + 1, 0.0);
  for (std::size_t i = 1; i <= others; ++i) log_factorial[i] = log_factorial[i - 1] + std::log(static_cast<double>(i));
  std::uniform_real_distribution<double> uniform(std::numeric_limits<double>::min(), 1.0);
  std::uniform_int_distribution<std::size_t> any_probe(0, sorted_distances.size() - 1);
  const std::size_t resamplings = c.resamplings;
  const auto pick = std::min(resamplings - 1, static_cast<std::size_t>((1.0 - options.confidence) * static_cast<double>(resamplings)));
  for (const auto n : c.gallery_sizes) {
    // per_level[level][resampling]: the threshold each resampling reads.
    std::vector<std::vector<double>> distance_levels(c.fpir_levels.size()), ratio_levels(c.fpir_levels.size());
    for (std::size_t r = 0; r < resamplings; ++r) {
      std::vector<std::size_t> probes(sorted_distances.size());
      for (std::size_t i = 0; i < probes.size(); ++i) probes[i] = resamplings == 1 ? i : any_probe(rng);
      std::vector<double> distance_scores, ratio_scores;
      for (std::size_t s = 0; s < options.searches; ++s) {
        const auto& d = sorted_distances[probes[s % probes.size()]];
        const auto first = detail::nearest_drawn_position(others, n, uniform(rng), log_factorial);
        const double nearest = d[first];
        double second = std::numeric_limits<double>::infinity();
        if (n >= 2) second = d[first + 1 + detail::nearest_drawn_position(others - first - 1, n - 1, uniform(rng), log_factorial)];
        distance_scores.push_back(nearest);
        ratio_scores.push_back(open_set_score(OpenSetRule::distance_ratio, nearest, second, c.reference_distance));
      }
      std::sort(distance_scores.begin(), distance_scores.end());
      std::sort(ratio_scores.begin(), ratio_scores.end());
      for (std::size_t level = 0; level < c.fpir_levels.size(); ++level) {
        distance_levels[level].push_back(detail::threshold_at_level(distance_scores, c.fpir_levels[level]));
        ratio_levels[level].push_back(detail::threshold_at_level(ratio_scores, c.fpir_levels[level]));
      }
    }
    std::vector<double> distance_row, ratio_row;
    for (std::size_t level = 0; level < c.fpir_levels.size(); ++level) {
      for (auto* values : {&distance_levels[level], &ratio_levels[level]}) {
        std::nth_element(values->begin(), values->begin() + static_cast<std::ptrdiff_t>(pick), values->end());
      }
      distance_row.push_back(distance_levels[level][pick]);
      ratio_row.push_back(ratio_levels[level][pick]);
    }
    // Quantiles taken level by level may cross by a hair: keep each row rising.
    for (auto* row : {&distance_row, &ratio_row}) {
      for (std::size_t level = 1; level < row->size(); ++level) (*row)[level] = std::max((*row)[level], (*row)[level - 1]);
    }
    c.distance_thresholds.push_back(std::move(distance_row));
    c.ratio_thresholds.push_back(std::move(ratio_row));
  }
  siamese::detail::validate_open_set_calibration(c, "calibrate_open_set");
  return c;
}

}  // namespace siamese::eval
