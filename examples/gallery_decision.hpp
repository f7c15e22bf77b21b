#pragma once

// How the examples that identify (gallery, watch) open their gallery and decide whether a face
// is someone enrolled:
// --threshold, else the model's open-set calibration at --fpir for the gallery's size, else
// (warned) the model's 1:1 threshold. A model with none of them cannot say who is who.

#include <siamese/siamese.hpp>

#include <algorithm>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>

namespace example {

/// The gallery at `db` for identifying with `backbone`: checked against its model, and refused
/// (GalleryError naming the database, its password masked) when nobody is enrolled.
inline siamese::Gallery open_gallery_to_identify(const std::string& db, const siamese::TorchScriptBackbone& backbone) {
  auto gallery = siamese::Gallery::open(db);
  gallery.check_model(backbone.metadata().name, backbone.metadata().embedding_size);
  if (gallery.size() == 0) {
    throw siamese::GalleryError("gallery '" + siamese::displayed_location(db) + "' is empty: enroll someone first");
  }
  return gallery;
}

/// The decision for `gallery` under `model` (a backbone file): `threshold` when positive, else
/// the open-set calibration beside the model at `fpir`, else its 1:1 threshold with a warning
/// on standard error from `program`. `source` says which. Throws UncalibratedModelError when
/// the model has neither calibration nor threshold.
inline siamese::OpenSetDecision gallery_decision(const std::string& program, const std::string& model, double threshold,
                                                 double fpir, const siamese::TorchScriptBackbone& backbone,
                                                 const siamese::Gallery& gallery, std::string& source) {
  if (threshold > 0) {
    source = "--threshold";
    return siamese::OpenSetDecision::distance_at_most(threshold);
  }
  if (const auto calibration = siamese::load_open_set_calibration_for(model, backbone.metadata().name)) {
    source = siamese::open_set_calibration_path_for(model).string();
    const auto people = std::max<std::size_t>(gallery.people().size(), 1);
    const auto decision = threshold_for(*calibration, siamese::OpenSetRule::distance_ratio, people, fpir);
    if (decision.extrapolated) {
      std::cerr << program << ": warning: " << people << " people is more than the open-set calibration covers ("
                << calibration->gallery_sizes.back() << "): its threshold is extrapolated\n";
    }
    return decision;
  }
  if (const auto fitted = siamese::fitted_decision(model, backbone.metadata())) {
    source = fitted->source + ", the 1:1 threshold";
    std::cerr << program << ": warning: no open-set calibration for '" << model << "' ("
              << siamese::open_set_calibration_path_for(model).filename().string()
              << "): using the 1:1 threshold " << fitted->distance_threshold
              << ", which names more strangers as someone the larger the gallery; make one with `open_set calibrate`\n";
    return siamese::OpenSetDecision::distance_at_most(fitted->distance_threshold);
  }
  throw siamese::UncalibratedModelError(siamese::uncalibrated_message(model, backbone.metadata()) + "; or give --threshold");
}

/// "distance-ratio <= 0.7000 (FPIR 0.0100 for 2 people, SOURCE)": a decision in words.
inline std::string describe(const siamese::OpenSetDecision& d, const std::string& source) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(4) << to_string(d.rule) << " <= " << d.threshold;
  if (d.target_fpir > 0) out << " (FPIR " << d.target_fpir << " for " << d.gallery_people << " people, " << source << ")";
  else out << " (" << source << ")";
  return out.str();
}

}  // namespace example
