#pragma once

#include <siamese/align.hpp>
#include <siamese/detect.hpp>
#include <siamese/errors.hpp>
#include <siamese/landmarks.hpp>

#include <opencv2/core.hpp>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace siamese {

/// One face, ready for a backbone: the chip and how it was found.
struct AlignedFace {
  cv::Mat chip;                         ///< 8-bit RGB, the pipeline's chip size
  FaceDetection detection;              ///< in source-image pixels
  std::vector<cv::Point2f> landmarks;   ///< 68 points in source-image pixels; empty without a landmark model
  cv::Matx23d image_to_chip = cv::Matx23d::eye();
  bool center_fallback = false;         ///< no face was found; the chip is the image centre
};

/// How photos become face chips.
struct FacePipelineOptions {
  int chip_size = 150;          ///< the backbone's input side
  double chip_padding = 0.25;   ///< dlib template padding, used with landmarks
  /// Average the landmarks with those of the mirror image before aligning (one more landmark
  /// pass per face; LandmarkDetector68::mirror_averaged_landmarks).
  bool mirror_landmarks = false;
  CropOptions box_crop;         ///< used without a landmark model
  FacePolicy policy = FacePolicy::largest;
  /// With no face found: throw NoFaceFound (false, the default), or take the central
  /// `center_fraction` of the image as the face's box (true), aligned by its landmarks when a
  /// landmark model is there. Callers must ask for the fallback explicitly.
  bool center_fallback = false;
  double center_fraction = 0.6;
};

/// detect -> landmarks -> align: turns a photo into face chips for a backbone.
/// Without a landmark detector, chips are square crops around the detector's box. Holds
/// detectors with scratch state: use one pipeline per thread.
class FacePipeline {
 public:
  /// Requires: a detector; `landmarker` may be null.
  FacePipeline(std::unique_ptr<FaceDetector> detector, std::unique_ptr<LandmarkDetector68> landmarker,
               FacePipelineOptions options = {})
      : detector_(std::move(detector)),
        landmarker_(std::move(landmarker)),
        options_(options),
        template_(dlib_template(options.chip_size, options.chip_padding)) {
    if (!detector_) throw Error("FacePipeline needs a face detector");
  }

  /// The standard pipeline from a folder made by tools/setup-models.sh: the tiny face detector
  /// and the 68-point landmark net of face-api. Falls back to the Haar cascade when the
  /// detector model is absent; to box crops when the landmark model is.
  static FacePipeline from_models(const std::filesystem::path& dir, FacePipelineOptions options = {},
                                  Device device = Device::cpu()) {
    std::error_code ec;
    std::unique_ptr<FaceDetector> detector;
    if (std::filesystem::exists(dir / "faceapi_tiny_detector.pt", ec)) {
      TinyFaceDetectorOptions detector_options;
      detector_options.device = device;
      detector = std::make_unique<TinyFaceDetector>(dir / "faceapi_tiny_detector.pt", detector_options);
    } else {
      detector = std::make_unique<HaarFaceDetector>();
    }
    std::unique_ptr<LandmarkDetector68> landmarker;
    if (std::filesystem::exists(dir / "faceapi_landmarks68.pt", ec)) {
      landmarker = std::make_unique<LandmarkDetector68>(dir / "faceapi_landmarks68.pt", device);
    }
    return FacePipeline(std::move(detector), std::move(landmarker), options);
  }

  /// Every face the policy keeps, aligned. `name` labels errors.
  /// Throws NoFaceFound when there is none and center_fallback is off.
  std::vector<AlignedFace> align_all(const cv::Mat& rgb, const std::string& name) {
    return faces(rgb, name, options_.policy);
  }

  /// One face, aligned: the largest, or the most central under FacePolicy::central.
  /// Throws as align_all().
  AlignedFace align(const cv::Mat& rgb, const std::string& name) {
    return faces(rgb, name, options_.policy == FacePolicy::central ? FacePolicy::central : FacePolicy::largest).front();
  }

  /// One detection, aligned: with landmarks onto the dlib template, else a box crop.
  AlignedFace align_detection(const cv::Mat& rgb, const FaceDetection& detection) {
    AlignedFace face;
    face.detection = detection;
    const cv::Size size(options_.chip_size, options_.chip_size);
    if (landmarker_) {
      face.landmarks = options_.mirror_landmarks ? landmarker_->mirror_averaged_landmarks(rgb, detection.box)
                                                 : landmarker_->landmarks(rgb, detection.box);
      std::vector<cv::Point2f> from;
      for (int index : template_.landmark_indices) from.push_back(face.landmarks[index]);
      face.image_to_chip = similarity_transform(from, template_.points);
      face.chip = warp_face(rgb, face.image_to_chip, size);
    } else {
      const cv::Mat crop = crop_face(rgb, detection.box, options_.box_crop);
      cv::resize(crop, face.chip, size, 0, 0, crop.cols > size.width ? cv::INTER_AREA : cv::INTER_LINEAR);
    }
    return face;
  }

  const AlignmentTemplate& alignment_template() const { return template_; }
  bool uses_landmarks() const { return landmarker_ != nullptr; }
  const FacePipelineOptions& options() const { return options_; }

 private:
  std::vector<AlignedFace> faces(const cv::Mat& rgb, const std::string& name, FacePolicy policy) {
    detail::check_rgb(rgb, "FacePipeline");
    std::vector<AlignedFace> aligned;
    for (const auto& detection : select_faces(detector_->detect(rgb), policy, rgb.size())) {
      aligned.push_back(align_detection(rgb, detection));
    }
    if (aligned.empty()) {
      if (!options_.center_fallback) throw NoFaceFound("no face found in '" + name + "'");
      aligned.push_back(center_face(rgb));
    }
    return aligned;
  }

  AlignedFace center_face(const cv::Mat& rgb) {
    const float side = static_cast<float>(std::min(rgb.cols, rgb.rows) * options_.center_fraction);
    const FaceDetection centre{cv::Rect2f((rgb.cols - side) / 2, (rgb.rows - side) / 2, side, side), 0.0F};
    AlignedFace face = align_detection(rgb, centre);
    face.center_fallback = true;
    return face;
  }

  std::unique_ptr<FaceDetector> detector_;
  std::unique_ptr<LandmarkDetector68> landmarker_;
  FacePipelineOptions options_;
  AlignmentTemplate template_;
};

}  // namespace siamese
