#pragma once

#include <siamese/errors.hpp>
#include <siamese/eval/calibration.hpp>
#include <siamese/head.hpp>
#include <siamese/metadata.hpp>

#include <cmath>
#include <filesystem>
#include <optional>
#include <string>

namespace siamese {

/// What a same/different verdict rests on: a head and the distance at which it says "same",
/// fitted to ONE backbone's distances. A threshold fitted to one network's distances means
/// nothing for another's: a backbone without one (a pretrained InceptionV3 never trained on
/// faces, a fresh fine-tune) gives distances, not verdicts.
struct FittedDecision {
  SigmoidHeadOptions head;          ///< p = sigmoid(weight * d + bias)
  double distance_threshold = 0.0;  ///< "same" at or below this Euclidean distance
  std::string source;               ///< where it came from, for messages: "calibration 'F'", "metadata of 'F'", "head 'F'"
};

/// The decision fitted to the backbone file `model` whose metadata is `metadata`: its
/// calibration (MODEL.calibration.json, from `evaluate --calibrate`) when there is one, else
/// the same-person threshold its source published (metadata distance_threshold, with a head
/// centred there), else std::nullopt.
/// Throws as eval::load_calibration_for (a calibration made for another model is refused).
inline std::optional<FittedDecision> fitted_decision(const std::filesystem::path& model, const BackboneMetadata& metadata) {
  if (const auto calibration = eval::load_calibration_for(model, metadata.name)) {
    return FittedDecision{{calibration->weight, calibration->bias},
                          calibration->distance_threshold,
                          "calibration '" + eval::calibration_path_for(model).string() + "'"};
  }
  if (metadata.distance_threshold) {
    return FittedDecision{SigmoidHeadOptions::centered_at(*metadata.distance_threshold), *metadata.distance_threshold,
                          "metadata of '" + model.string() + "'"};
  }
  return std::nullopt;
}

/// The decision of a head trained by train_head (saved by save_head()): "same" where p >= 0.5.
/// Requires: a head with a non-zero weight (load_head() ensures it).
inline FittedDecision decision_from_head(const SigmoidHead& head, const std::filesystem::path& file) {
  return {{head->weight.item<double>(), head->bias.item<double>()}, head->distance_at(0.5),
          "head '" + file.string() + "'"};
}

/// The message of the UncalibratedModelError for `model`: what is missing and what to run.
inline std::string uncalibrated_message(const std::filesystem::path& model, const BackboneMetadata& metadata) {
  return "'" + model.string() + "' (" + metadata.name + ") has no head or threshold fitted to its distances (no " +
         eval::calibration_path_for(model).filename().string() +
         " beside it, no distance_threshold in its metadata), so it cannot say same or different: fit one on "
         "labelled pairs with `evaluate --model " + model.string() + " --pairs PAIRS --root DIR --calibrate far=0.001`, "
         "train a head with `train_head` (then `verify_pair --head`), or teach it faces with `distill`";
}

}  // namespace siamese
