#pragma once

#include <siamese/distance.hpp>
#include <siamese/errors.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

/// Verification metrics on scored pairs. Scores are a metric's values (distances or
/// similarities); the metric's type says which way is "same", so no caller negates anything.
/// Label convention: 1 = same person, 0 = different people.
namespace siamese::eval {

/// One operating point: "same" when is_match<Metric>(score, threshold).
struct RocPoint {
  double threshold = 0.0;
  double far = 0.0;  ///< false accept rate: different-person pairs called same
  double tar = 0.0;  ///< true accept rate: same-person pairs called same
};

/// Everything a verification benchmark reports.
struct VerificationReport {
  std::vector<RocPoint> roc;  ///< from (FAR 0, TAR 0) to (1, 1), thresholds loosening
  double auc = 0.0;
  double eer = 0.0;            ///< where FAR = 1 - TAR, interpolated
  double eer_threshold = 0.0;
  double best_accuracy = 0.0;
  double best_threshold = 0.0;
  double tar_at_far_1e2 = 0.0;  ///< best TAR with FAR <= 1e-2
  double tar_at_far_1e3 = 0.0;  ///< best TAR with FAR <= 1e-3
  std::size_t same_pairs = 0;
  std::size_t different_pairs = 0;
};

namespace detail {

inline void check_scores(const std::vector<double>& scores, const std::vector<int>& labels) {
  if (scores.size() != labels.size()) {
    throw ShapeError("metrics need one label per score, got " + std::to_string(scores.size()) +
                     " scores and " + std::to_string(labels.size()) + " labels");
  }
  std::size_t same = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] != 0 && labels[i] != 1) {
      throw Error("labels must be 0 or 1, got " + std::to_string(labels[i]) + " at " + std::to_string(i));
    }
    if (!std::isfinite(scores[i])) throw NumericError("score " + std::to_string(i) + " is not finite");
    same += labels[i];
  }
  if (same == 0 || same == labels.size()) {
    throw Error("metrics need both same-person and different-person pairs, got " +
                std::to_string(same) + " same of " + std::to_string(labels.size()));
  }
}

/// Scores as similarities (larger = more alike), so one code path serves both directions.
inline std::vector<double> as_similarity(const std::vector<double>& scores, Direction direction) {
  std::vector<double> s(scores);
  if (direction == Direction::smaller_is_closer) {
    for (auto& v : s) v = -v;
  }
  return s;
}

inline double from_similarity(double threshold, Direction direction) {
  return direction == Direction::smaller_is_closer ? -threshold : threshold;
}

/// Candidate thresholds in similarity units: above all scores, midpoints between distinct
/// consecutive scores, below all scores (descending).
inline std::vector<double> candidate_thresholds(std::vector<double> similarity) {
  std::sort(similarity.begin(), similarity.end(), std::greater<>());
  similarity.erase(std::unique(similarity.begin(), similarity.end()), similarity.end());
  std::vector<double> t;
  t.reserve(similarity.size() + 1);
  t.push_back(similarity.front() + 1.0);
  for (std::size_t i = 0; i + 1 < similarity.size(); ++i) t.push_back((similarity[i] + similarity[i + 1]) / 2);
  t.push_back(similarity.back() - 1.0);
  return t;
}

inline double accuracy_at(const std::vector<double>& similarity, const std::vector<int>& labels,
                          const std::vector<std::size_t>& subset, double threshold) {
  std::size_t correct = 0;
  for (std::size_t i : subset) correct += (similarity[i] >= threshold) == (labels[i] == 1);
  return static_cast<double>(correct) / static_cast<double>(subset.size());
}

/// The threshold with the best accuracy on `subset`, among candidate_thresholds(); ties go to
/// the middle one. O(N log N) for N = subset.size(): one sort, then one sweep from the strictest
/// candidate to the loosest, in which the scores a candidate accepts (similarity >= threshold,
/// as accuracy_at counts them) only grow.
inline double best_threshold(const std::vector<double>& similarity, const std::vector<int>& labels,
                             const std::vector<std::size_t>& subset) {
  std::vector<std::pair<double, int>> scored;
  scored.reserve(subset.size());
  for (std::size_t i : subset) scored.emplace_back(similarity[i], labels[i]);
  std::sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<double> values(scored.size());
  std::transform(scored.begin(), scored.end(), values.begin(), [](const auto& s) { return s.first; });
  const auto candidates = candidate_thresholds(std::move(values));
  std::size_t negatives = 0;
  for (const auto& s : scored) negatives += s.second == 0;
  std::size_t accepted = 0, accepted_positives = 0;
  double best = -1.0;
  std::vector<double> best_ones;
  for (double t : candidates) {
    for (; accepted < scored.size() && scored[accepted].first >= t; ++accepted) accepted_positives += scored[accepted].second;
    const std::size_t correct = accepted_positives + negatives - (accepted - accepted_positives);
    const double a = static_cast<double>(correct) / static_cast<double>(scored.size());
    if (a > best + 1e-12) {
      best = a;
      best_ones = {t};
    } else if (std::abs(a - best) <= 1e-12) {
      best_ones.push_back(t);
    }
  }
  return best_ones[best_ones.size() / 2];
}

}  // namespace detail

/// ROC, AUC, EER, best accuracy and TAR at fixed FAR for scores of metric `Metric`.
/// Requires: one label (0 or 1) per finite score, both labels present.
template <class Metric>
VerificationReport evaluate_scores(const std::vector<double>& scores, const std::vector<int>& labels) {
  detail::check_scores(scores, labels);
  constexpr Direction direction = Metric::direction;
  const auto similarity = detail::as_similarity(scores, direction);
  VerificationReport r;
  r.same_pairs = static_cast<std::size_t>(std::count(labels.begin(), labels.end(), 1));
  r.different_pairs = labels.size() - r.same_pairs;
  std::vector<std::size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](auto a, auto b) { return similarity[a] > similarity[b]; });

  // Sweep thresholds from strict to loose; tied scores move together.
  r.roc.push_back({detail::from_similarity(similarity[order[0]] + 1.0, direction), 0.0, 0.0});
  std::size_t tp = 0, fp = 0;
  for (std::size_t i = 0; i < order.size();) {
    const double value = similarity[order[i]];
    for (; i < order.size() && similarity[order[i]] == value; ++i) (labels[order[i]] ? tp : fp) += 1;
    r.roc.push_back({detail::from_similarity(value, direction),
                     static_cast<double>(fp) / r.different_pairs, static_cast<double>(tp) / r.same_pairs});
  }
  bool eer_found = false;
  for (std::size_t i = 1; i < r.roc.size(); ++i) {
    const auto& p = r.roc[i - 1];
    const auto& q = r.roc[i];
    r.auc += (q.far - p.far) * (p.tar + q.tar) / 2;
    const double frr_p = 1.0 - p.tar, frr_q = 1.0 - q.tar;
    if (!eer_found && p.far <= frr_p && q.far >= frr_q) {
      eer_found = true;
      // FAR - FRR changes sign between p and q: interpolate where they meet.
      const double gp = p.far - frr_p, gq = q.far - frr_q;
      const double t = gq == gp ? 0.0 : -gp / (gq - gp);
      r.eer = p.far + t * (q.far - p.far);
      r.eer_threshold = p.threshold + t * (q.threshold - p.threshold);
    }
  }
  for (const auto& p : r.roc) {
    if (p.far <= 1e-2) r.tar_at_far_1e2 = std::max(r.tar_at_far_1e2, p.tar);
    if (p.far <= 1e-3) r.tar_at_far_1e3 = std::max(r.tar_at_far_1e3, p.tar);
  }
  std::vector<std::size_t> all(scores.size());
  std::iota(all.begin(), all.end(), 0);
  const double best = detail::best_threshold(similarity, labels, all);
  r.best_accuracy = detail::accuracy_at(similarity, labels, all, best);
  r.best_threshold = detail::from_similarity(best, direction);
  return r;
}

/// The loosest threshold whose FAR stays at or below `target_far`.
inline RocPoint point_at_far(const VerificationReport& report, double target_far) {
  RocPoint best = report.roc.front();
  for (const auto& p : report.roc) {
    if (p.far <= target_far) best = p;
  }
  return best;
}

/// The LFW protocol's result: mean and standard deviation of per-fold accuracy.
struct KFoldResult {
  double mean = 0.0;
  double stddev = 0.0;
  std::vector<double> accuracies;
  std::vector<double> thresholds;  ///< chosen on the other folds, in metric units
};

/// K-fold cross-validated accuracy: for each fold, the threshold with the best accuracy on the
/// other folds is applied to it. `folds[i]` is pair i's fold, 0..K-1 with K >= 2.
template <class Metric>
KFoldResult kfold_accuracy(const std::vector<double>& scores, const std::vector<int>& labels,
                           const std::vector<int>& folds) {
  detail::check_scores(scores, labels);
  if (folds.size() != scores.size()) throw ShapeError("kfold_accuracy needs one fold per score");
  const int k = *std::max_element(folds.begin(), folds.end()) + 1;
  if (k < 2 || *std::min_element(folds.begin(), folds.end()) < 0) {
    throw Error("kfold_accuracy needs fold numbers 0..K-1 with K >= 2");
  }
  const auto similarity = detail::as_similarity(scores, Metric::direction);
  KFoldResult result;
  for (int fold = 0; fold < k; ++fold) {
    std::vector<std::size_t> train, test;
    for (std::size_t i = 0; i < folds.size(); ++i) (folds[i] == fold ? test : train).push_back(i);
    if (test.empty()) throw Error("fold " + std::to_string(fold) + " has no pairs");
    const double t = detail::best_threshold(similarity, labels, train);
    result.accuracies.push_back(detail::accuracy_at(similarity, labels, test, t));
    result.thresholds.push_back(detail::from_similarity(t, Metric::direction));
  }
  result.mean = std::accumulate(result.accuracies.begin(), result.accuracies.end(), 0.0) / k;
  double var = 0.0;
  for (double a : result.accuracies) var += (a - result.mean) * (a - result.mean);
  result.stddev = std::sqrt(var / k);
  return result;
}

}  // namespace siamese::eval
