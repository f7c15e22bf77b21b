#pragma once

#include <siamese/detail/files.hpp>
#include <siamese/detail/json.hpp>
#include <siamese/errors.hpp>
#include <siamese/head.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <optional>
#include <string>
#include <vector>

namespace siamese::eval {

/// One bin of a reliability table: predicted probability against observed frequency.
struct ReliabilityBin {
  double low = 0.0, high = 0.0;
  double mean_probability = 0.0;
  double observed_rate = 0.0;  ///< share of same-person pairs in the bin
  std::size_t count = 0;
};

/// Mean squared error of probabilities against 0/1 labels (0 is perfect, 0.25 a coin).
inline double brier_score(const std::vector<double>& probabilities, const std::vector<int>& labels) {
  if (probabilities.size() != labels.size() || probabilities.empty()) {
    throw ShapeError("brier_score needs one label per probability");
  }
  double sum = 0.0;
  for (std::size_t i = 0; i < labels.size(); ++i) sum += std::pow(probabilities[i] - labels[i], 2);
  return sum / static_cast<double>(labels.size());
}

inline std::vector<ReliabilityBin> reliability_table(const std::vector<double>& probabilities,
                                                     const std::vector<int>& labels, int bins = 10) {
  std::vector<ReliabilityBin> table(static_cast<std::size_t>(bins));
  for (int b = 0; b < bins; ++b) {
    table[b].low = static_cast<double>(b) / bins;
    table[b].high = static_cast<double>(b + 1) / bins;
  }
  for (std::size_t i = 0; i < probabilities.size(); ++i) {
    const int b = std::min(bins - 1, static_cast<int>(probabilities[i] * bins));
    auto& bin = table[static_cast<std::size_t>(std::max(0, b))];
    bin.mean_probability += probabilities[i];
    bin.observed_rate += labels[i];
    ++bin.count;
  }
  for (auto& bin : table) {
    if (bin.count > 0) {
      bin.mean_probability /= static_cast<double>(bin.count);
      bin.observed_rate /= static_cast<double>(bin.count);
    }
  }
  return table;
}

/// Fits the head `p = sigmoid(w*d + b)` to labelled distances by logistic regression (Newton's
/// method, with a small L2 penalty so that perfectly separated data stays finite).
/// Ensures: the maximum-likelihood (w, b) up to the penalty.
inline SigmoidHeadOptions fit_sigmoid_head(const std::vector<double>& distances, const std::vector<int>& labels,
                                           double l2 = 1e-3) {
  if (distances.size() != labels.size() || distances.size() < 2) {
    throw ShapeError("fit_sigmoid_head needs at least 2 distances with one label each");
  }
  double w = -1.0, b = 0.0;
  for (int iteration = 0; iteration < 100; ++iteration) {
    double gw = l2 * w, gb = 0.0, hww = l2, hwb = 0.0, hbb = 1e-9;
    for (std::size_t i = 0; i < distances.size(); ++i) {
      const double d = distances[i];
      const double p = 1.0 / (1.0 + std::exp(-(w * d + b)));
      const double r = p - labels[i];
      const double s = p * (1.0 - p);
      gw += r * d;
      gb += r;
      hww += s * d * d;
      hwb += s * d;
      hbb += s;
    }
    const double det = hww * hbb - hwb * hwb;
    if (!(std::abs(det) > 1e-300)) break;
    const double step_w = (hbb * gw - hwb * gb) / det;
    const double step_b = (hww * gb - hwb * gw) / det;
    w -= step_w;
    b -= step_b;
    if (std::abs(step_w) + std::abs(step_b) < 1e-10) break;
  }
  if (!std::isfinite(w) || !std::isfinite(b)) throw NumericError("fit_sigmoid_head did not converge");
  return {w, b};
}

/// What calibration decided, stored beside a model as MODEL.calibration.json so that
/// load_face_verifier() uses it.
struct Calibration {
  std::string model_name;         ///< the backbone's metadata name; checked at load
  double weight = 0.0;            ///< fitted head
  double bias = 0.0;
  double distance_threshold = 0.0;  ///< "same" at or below this distance
  std::string criterion;          ///< e.g. "far<=0.001" or "best-accuracy"
  double far = 0.0;               ///< FAR at the threshold on the calibration set
  double tar = 0.0;               ///< TAR at the threshold on the calibration set
  double brier = 0.0;             ///< Brier score of the fitted head on the calibration set
  std::size_t pairs = 0;          ///< size of the calibration set
};

inline std::filesystem::path calibration_path_for(const std::filesystem::path& model) {
  return model.string() + ".calibration.json";
}

/// The text of a calibration file: what parse_calibration() reads back.
inline std::string to_json_string(const Calibration& c) {
  const nlohmann::json j = {{"format_version", 1},       {"model_name", c.model_name},
                            {"weight", c.weight},         {"bias", c.bias},
                            {"distance_threshold", c.distance_threshold},
                            {"criterion", c.criterion},   {"far", c.far},
                            {"tar", c.tar},               {"brier", c.brier},
                            {"pairs", c.pairs}};
  return j.dump(2) + "\n";
}

/// Writes `c` to `file` atomically (a synced temporary file, then a rename).
inline void save_calibration(const Calibration& c, const std::filesystem::path& file) {
  siamese::detail::write_file_atomically(file, to_json_string(c), "calibration");
}

/// A calibration from the text of a calibration file; `source` names it in errors.
/// Ensures: a finite, non-zero head weight, a finite bias and threshold, 0 <= far, tar <= 1.
/// Throws MetadataError when the text is not JSON, lacks a field, or holds a value of the wrong
/// type or range (a count such as `pairs` must be a JSON integer: 1e300 is refused).
inline Calibration parse_calibration(const std::string& text, const std::string& source) {
  const std::string where = "calibration '" + source + "'";
  const auto j = siamese::detail::parse_json_object(text, where);
  Calibration c;
  try {
    const auto optional_number = [&](const char* key) {
      return j.contains(key) ? siamese::detail::json_number(j[key], where + ": " + key) : 0.0;
    };
    c.model_name = j.at("model_name").get<std::string>();
    c.weight = siamese::detail::json_number(j.at("weight"), where + ": weight");
    c.bias = siamese::detail::json_number(j.at("bias"), where + ": bias");
    c.distance_threshold = siamese::detail::json_number(j.at("distance_threshold"), where + ": distance_threshold");
    c.criterion = j.value("criterion", std::string{});
    c.far = optional_number("far");
    c.tar = optional_number("tar");
    c.brier = optional_number("brier");
    if (j.contains("pairs")) {
      c.pairs = static_cast<std::size_t>(siamese::detail::json_integer(j["pairs"], where + ": pairs", 0, std::int64_t{1} << 53));
    }
  } catch (const nlohmann::json::exception& e) {
    throw MetadataError(where + " has a missing or mistyped field: " + e.what());
  }
  if (c.weight == 0.0) throw MetadataError(where + ": the head's weight is 0, so it cannot separate distances");
  if (c.far < 0 || c.far > 1 || c.tar < 0 || c.tar > 1) {
    throw MetadataError(where + ": far and tar must lie in 0..1, got " + std::to_string(c.far) + " and " + std::to_string(c.tar));
  }
  return c;
}

/// Reads a calibration file. Throws FileError when missing, MetadataError when malformed
/// (parse_calibration()).
inline Calibration load_calibration(const std::filesystem::path& file) {
  return parse_calibration(siamese::detail::read_text_file(file, "calibration '" + file.string() + "'"), file.string());
}

/// The calibration beside `model` (calibration_path_for), if there is one.
/// Throws as load_calibration, and MetadataError when it was made for a model other than
/// `model_name` (a threshold fitted to one model's distances means nothing for another's).
inline std::optional<Calibration> load_calibration_for(const std::filesystem::path& model,
                                                       const std::string& model_name) {
  return siamese::detail::load_beside_model(calibration_path_for(model), model_name, "calibration", load_calibration);
}

}  // namespace siamese::eval
