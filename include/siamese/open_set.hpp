#pragma once

// Open-set identification (1:N): deciding whether a probe's nearest enrolled person is the
// probe's at all. A threshold chosen for one pair (1:1) lets strangers in as the gallery grows:
// a stranger meets every enrolled person, so the chance that one of them is close grows with N
// (FPIR ~ 1 - (1 - FAR)^N). The decision here follows the gallery: an OpenSetCalibration holds,
// for gallery sizes from 1 to thousands, the score a stranger's nearest person reaches at each
// false positive identification rate, measured on people outside the gallery; threshold_for()
// reads the threshold for this gallery's size and the FPIR the caller accepts.

#include <siamese/detail/files.hpp>
#include <siamese/detail/json.hpp>
#include <siamese/errors.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace siamese {

/// What an open-set decision compares with its threshold. Lower is more likely enrolled
/// (both are distances or ratios of distances, never similarities).
enum class OpenSetRule {
  /// The distance to the nearest person (the 1:1 rule, applied to the best candidate).
  nearest_distance,
  /// The distance to the nearest person over min(distance to the second-nearest person,
  /// the calibration's reference distance). A stranger tends to sit about as far from the two
  /// nearest people; an enrolled person much nearer to the first. Capping the second distance
  /// at the typical distance between strangers keeps a far second-nearest (small galleries)
  /// from making any nearest look close. On LFW, 1,000 people with one photo each, FNIR at
  /// FPIR 1% is 0.35 against 0.56 for nearest_distance (docs/accuracy.md).
  distance_ratio,
};

inline std::string to_string(OpenSetRule rule) {
  return rule == OpenSetRule::nearest_distance ? "nearest-distance" : "distance-ratio";
}

/// The score of `rule` for a probe whose nearest person is at `nearest` and second-nearest at
/// `second` (+infinity when the gallery holds one person). `reference` is the calibration's
/// reference distance (used by distance_ratio only). Requires: 0 <= nearest <= second, reference > 0.
inline double open_set_score(OpenSetRule rule, double nearest, double second, double reference) {
  if (rule == OpenSetRule::nearest_distance) return nearest;
  return nearest / std::min(second, reference);
}

/// The decision identify() applies: "known" when the rule's score is at or below `threshold`.
struct OpenSetDecision {
  OpenSetRule rule = OpenSetRule::nearest_distance;
  double threshold = 0.0;
  double reference_distance = 1.0;  ///< distance_ratio's cap on the second distance
  /// Where the threshold came from: the target FPIR and the gallery size it was read for
  /// (0 when the threshold was given), and whether that size lay past the calibration's.
  double target_fpir = 0.0;
  std::size_t gallery_people = 0;
  bool extrapolated = false;

  /// A fixed distance threshold on the nearest person: the 1:1 rule.
  static OpenSetDecision distance_at_most(double threshold) {
    OpenSetDecision decision;
    decision.threshold = threshold;
    return decision;
  }

  double score(double nearest, double second) const { return open_set_score(rule, nearest, second, reference_distance); }
  /// Whether a score() passes: at or below the threshold (scores are distances, lower is nearer).
  bool accepts(double score) const { return score <= threshold; }
};

/// An open-set calibration: how strangers' scores fall against galleries of each size, for one
/// model. Made by calibrate_open_set() (siamese/eval/open_set.hpp) from photos of people outside
/// any gallery it will serve; holds distance statistics only (no embeddings, no names).
struct OpenSetCalibration {
  static constexpr int current_format_version = 1;

  std::string model_name;            ///< the backbone's metadata name; checked at load
  double reference_distance = 0.0;   ///< median distance between photos of different people
  std::size_t people = 0;            ///< people the calibration was made from
  std::size_t photos = 0;
  std::size_t impostor_pairs = 0;    ///< photo pairs of different people behind far_distances
  std::size_t searches = 0;          ///< simulated stranger searches per gallery size and resampling
  std::size_t resamplings = 1;       ///< resamplings of the strangers the simulation ran on...
  double confidence = 0.5;           ///< ...and the share of them each threshold holds for
  std::vector<double> far_levels;    ///< ascending false accept rates of single pairs...
  std::vector<double> far_distances; ///< ...and the distance at which each is reached (1:1)
  std::vector<double> fpir_levels;   ///< ascending, in (0, 1)
  std::vector<std::size_t> gallery_sizes;  ///< ascending, from 1
  /// thresholds[rule][size][level]: the score at or below which a stranger's search against a
  /// gallery of gallery_sizes[size] people names someone with probability fpir_levels[level].
  std::vector<std::vector<double>> distance_thresholds, ratio_thresholds;
  std::string made_by;               ///< the command and data, in words

  const std::vector<std::vector<double>>& thresholds(OpenSetRule rule) const {
    return rule == OpenSetRule::nearest_distance ? distance_thresholds : ratio_thresholds;
  }
};

namespace detail {

// Linear interpolation of y over x at `at`; x ascending; extrapolates beyond both ends.
inline double interpolate(const std::vector<double>& x, const std::vector<double>& y, double at) {
  std::size_t hi = 1;
  while (hi + 1 < x.size() && x[hi] < at) ++hi;
  const double span = x[hi] - x[hi - 1];
  const double t = span > 0 ? (at - x[hi - 1]) / span : 0.0;
  return y[hi - 1] + t * (y[hi] - y[hi - 1]);
}

inline std::vector<double> logs(const std::vector<double>& values) {
  std::vector<double> out;
  for (double v : values) out.push_back(std::log(v));
  return out;
}

/// Checks the invariants of a calibration; `where` names its source. Throws MetadataError.
inline void validate_open_set_calibration(const OpenSetCalibration& c, const std::string& where) {
  auto fail = [&](const std::string& what) { throw MetadataError(where + ": " + what); };
  if (c.model_name.empty()) fail("model_name is empty");
  if (!(c.reference_distance > 0) || !std::isfinite(c.reference_distance)) fail("reference_distance must be positive");
  if (!(c.confidence > 0 && c.confidence < 1)) fail("confidence must lie in (0, 1)");
  if (c.fpir_levels.size() < 2 || c.gallery_sizes.empty()) fail("needs at least 2 FPIR levels and 1 gallery size");
  for (std::size_t i = 0; i < c.fpir_levels.size(); ++i) {
    if (!(c.fpir_levels[i] > 0 && c.fpir_levels[i] < 1) || (i > 0 && !(c.fpir_levels[i] > c.fpir_levels[i - 1]))) {
      fail("fpir_levels must rise strictly inside (0, 1)");
    }
  }
  for (std::size_t i = 0; i < c.gallery_sizes.size(); ++i) {
    if (c.gallery_sizes[i] < 1 || (i > 0 && c.gallery_sizes[i] <= c.gallery_sizes[i - 1])) {
      fail("gallery_sizes must rise strictly from 1");
    }
  }
  if (c.far_levels.size() != c.far_distances.size()) fail("far_levels and far_distances differ in length");
  for (const auto* table : {&c.distance_thresholds, &c.ratio_thresholds}) {
    if (table->size() != c.gallery_sizes.size()) fail("a threshold table needs one row per gallery size");
    for (const auto& row : *table) {
      if (row.size() != c.fpir_levels.size()) fail("a threshold row needs one value per FPIR level");
      for (std::size_t i = 0; i < row.size(); ++i) {
        if (!std::isfinite(row[i]) || row[i] < 0 || (i > 0 && row[i] < row[i - 1])) {
          fail("thresholds must be finite, non-negative and rise with the FPIR");
        }
      }
    }
  }
}

}  // namespace detail

/// The decision of `rule` for a gallery of `gallery_people` people at `target_fpir`: the
/// threshold interpolated between the calibration's FPIR levels (in log FPIR) and gallery sizes
/// (in log size). A gallery larger than the calibration's largest is extrapolated along the
/// last two sizes, and the decision says so (`extrapolated`).
/// Requires: 0 < target_fpir < 1, inside the calibration's FPIR levels. Throws Error otherwise,
/// naming the range; GalleryError for an empty gallery.
inline OpenSetDecision threshold_for(const OpenSetCalibration& c, OpenSetRule rule, std::size_t gallery_people,
                                     double target_fpir) {
  if (!(target_fpir > 0 && target_fpir < 1)) {
    throw Error("a target FPIR must lie in (0, 1), got " + std::to_string(target_fpir));
  }
  if (target_fpir < c.fpir_levels.front() || target_fpir > c.fpir_levels.back()) {
    throw Error("the open-set calibration of '" + c.model_name + "' covers FPIR " + std::to_string(c.fpir_levels.front()) +
                ".." + std::to_string(c.fpir_levels.back()) + ", not " + std::to_string(target_fpir));
  }
  if (gallery_people == 0) throw GalleryError("an empty gallery has no open-set threshold: enroll someone first");
  const auto& table = c.thresholds(rule);
  const auto levels = detail::logs(c.fpir_levels);
  std::vector<double> per_size, sizes;
  for (std::size_t s = 0; s < c.gallery_sizes.size(); ++s) {
    per_size.push_back(detail::interpolate(levels, table[s], std::log(target_fpir)));
    sizes.push_back(std::log(static_cast<double>(c.gallery_sizes[s])));
  }
  OpenSetDecision decision;
  decision.rule = rule;
  decision.reference_distance = c.reference_distance;
  decision.target_fpir = target_fpir;
  decision.gallery_people = gallery_people;
  decision.extrapolated = gallery_people > c.gallery_sizes.back();
  const double at = std::log(static_cast<double>(gallery_people));
  decision.threshold = per_size.size() == 1 ? per_size.front() : std::max(0.0, detail::interpolate(sizes, per_size, at));
  return decision;
}

/// The file beside `model` that holds its open-set calibration: MODEL.open-set.json.
inline std::filesystem::path open_set_calibration_path_for(const std::filesystem::path& model) {
  return model.string() + ".open-set.json";
}

/// The text of an open-set calibration file: what parse_open_set_calibration() reads back.
inline std::string to_json_string(const OpenSetCalibration& c) {
  nlohmann::json j = {{"format_version", OpenSetCalibration::current_format_version},
                      {"model_name", c.model_name},
                      {"reference_distance", c.reference_distance},
                      {"people", c.people},
                      {"photos", c.photos},
                      {"impostor_pairs", c.impostor_pairs},
                      {"searches", c.searches},
                      {"resamplings", c.resamplings},
                      {"confidence", c.confidence},
                      {"far_levels", c.far_levels},
                      {"far_distances", c.far_distances},
                      {"fpir_levels", c.fpir_levels},
                      {"gallery_sizes", c.gallery_sizes},
                      {"distance_thresholds", c.distance_thresholds},
                      {"ratio_thresholds", c.ratio_thresholds},
                      {"made_by", c.made_by}};
  return j.dump(1) + "\n";
}

/// An open-set calibration from the text of its file; `source` names it in errors.
/// Throws MetadataError when the text is not JSON, lacks a field, holds a value of the wrong
/// type or range, or breaks an invariant (tables of the wrong shape, thresholds that fall as
/// the FPIR rises, non-finite values).
inline OpenSetCalibration parse_open_set_calibration(const std::string& text, const std::string& source) {
  const std::string where = "open-set calibration '" + source + "'";
  const auto j = detail::parse_json_object(text, where);
  OpenSetCalibration c;
  try {
    const auto version = detail::json_integer(j.at("format_version"), where + ": format_version", 1, 1000);
    if (version != OpenSetCalibration::current_format_version) {
      throw MetadataError(where + " has format_version " + std::to_string(version) + "; this library reads " +
                          std::to_string(OpenSetCalibration::current_format_version));
    }
    constexpr std::int64_t max_count = std::int64_t{1} << 53;
    const auto count = [&](const char* key) {
      return static_cast<std::size_t>(detail::json_integer(j.at(key), where + ": " + key, 0, max_count));
    };
    const auto numbers = [&](const nlohmann::json& array, const std::string& what) {
      if (!array.is_array() || array.size() > 100000) throw MetadataError(where + ": " + what + " must be an array");
      std::vector<double> out;
      for (const auto& v : array) out.push_back(detail::json_number(v, where + ": " + what));
      return out;
    };
    const auto table = [&](const char* key) {
      const auto& rows = j.at(key);
      if (!rows.is_array() || rows.size() > 10000) throw MetadataError(where + ": " + key + " must be an array of rows");
      std::vector<std::vector<double>> out;
      for (const auto& row : rows) out.push_back(numbers(row, key));
      return out;
    };
    c.model_name = j.at("model_name").get<std::string>();
    c.reference_distance = detail::json_number(j.at("reference_distance"), where + ": reference_distance");
    c.people = count("people");
    c.photos = count("photos");
    c.impostor_pairs = count("impostor_pairs");
    c.searches = count("searches");
    c.resamplings = count("resamplings");
    c.confidence = detail::json_number(j.at("confidence"), where + ": confidence");
    c.far_levels = numbers(j.at("far_levels"), "far_levels");
    c.far_distances = numbers(j.at("far_distances"), "far_distances");
    c.fpir_levels = numbers(j.at("fpir_levels"), "fpir_levels");
    const auto& sizes = j.at("gallery_sizes");
    if (!sizes.is_array() || sizes.size() > 10000) throw MetadataError(where + ": gallery_sizes must be an array");
    for (const auto& v : sizes) {
      c.gallery_sizes.push_back(static_cast<std::size_t>(detail::json_integer(v, where + ": gallery_sizes", 1, max_count)));
    }
    c.distance_thresholds = table("distance_thresholds");
    c.ratio_thresholds = table("ratio_thresholds");
    c.made_by = j.value("made_by", std::string{});
  } catch (const nlohmann::json::exception& e) {
    throw MetadataError(where + " has a missing or mistyped field: " + e.what());
  }
  detail::validate_open_set_calibration(c, where);
  return c;
}

/// Writes `c` to `file` atomically. Throws MetadataError when `c` breaks an invariant.
inline void save_open_set_calibration(const OpenSetCalibration& c, const std::filesystem::path& file) {
  detail::validate_open_set_calibration(c, "open-set calibration for '" + file.string() + "'");
  detail::write_file_atomically(file, to_json_string(c), "open-set calibration");
}

/// Reads an open-set calibration file (at most 16 MiB). Throws FileError when it is missing or
/// unreadable, MetadataError when malformed.
inline OpenSetCalibration load_open_set_calibration(const std::filesystem::path& file) {
  return parse_open_set_calibration(detail::read_text_file(file, "open-set calibration '" + file.string() + "'"), file.string());
}

/// The open-set calibration beside `model` (open_set_calibration_path_for), if there is one.
/// Throws as load_open_set_calibration, and MetadataError naming both models when it was made
/// for a model other than `model_name`.
inline std::optional<OpenSetCalibration> load_open_set_calibration_for(const std::filesystem::path& model,
                                                                       const std::string& model_name) {
  return detail::load_beside_model(open_set_calibration_path_for(model), model_name, "open-set calibration",
                                   load_open_set_calibration);
}

}  // namespace siamese
