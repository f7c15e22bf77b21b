#pragma once

#include <siamese/align.hpp>
#include <siamese/detect.hpp>
#include <siamese/errors.hpp>
#include <siamese/landmarks.hpp>
#include <siamese/orientation.hpp>

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
  /// The face's in-plane angle in the photo, degrees (face_roll_degrees(): 0 upright, 180
  /// upside down); 0 without a landmark model.
  double roll_degrees = 0.0;
  /// How far the photo was turned (counter-clockwise, degrees) for the face to be found upright:
  /// 0 as it was; see RotationSearch.
  int turned_degrees = 0;
  /// mirror_disagreement() of its landmarks where the rotation search measured it, else 0.
  double landmark_disagreement = 0.0;
};

/// The face chosen in a photo, before alignment.
struct FoundFace {
  FaceDetection detection;              ///< in source-image pixels
  bool center_fallback = false;         ///< no face was found; the box is the image centre
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
  /// from_models() runs its tiny detector coarse to fine (TinyFaceDetectorOptions::coarse_to_fine)
  /// unless the policy keeps every face. On LFW View 2 with mirror averaging: 1.12x the
  /// photos/s end to end of every input size merged, 10-fold accuracy 99.15% +- 0.29 against
  /// 99.12% +- 0.21, but AUC 0.9986 against 0.9990 and EER 0.93% against 0.80%: the coarse
  /// pass places boxes less precisely, and the landmarks follow the box. Off for the most
  /// precise alignment.
  bool coarse_to_fine_detection = true;
  /// Faces not upright (a phone photo without EXIF orientation, a camera mounted sideways, a
  /// face upside down). when_needed checks a face found as the photo is only when its
  /// landmarks misfit the template (a second landmark pass, on the mirror image), and detects
  /// on turned copies only where no face passes. Without a landmark model the photo is taken
  /// as it is.
  RotationSearch rotation_search = RotationSearch::when_needed;
  /// Faces found as the photo is whose template_misfit() exceeds this get the upright check.
  double upright_check_misfit = 0.03;
  /// The largest mirror_disagreement() of a face taken as upright.
  double upright_disagreement = 0.1;
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
  /// (coarse to fine as options.coarse_to_fine_detection says) and the 68-point landmark net
  /// of face-api. Falls back to the Haar cascade when the detector model is absent; to box
  /// crops when the landmark model is.
  static FacePipeline from_models(const std::filesystem::path& dir, FacePipelineOptions options = {},
                                  Device device = Device::automatic()) {
    std::error_code ec;
    std::unique_ptr<FaceDetector> detector;
    if (std::filesystem::exists(dir / "faceapi_tiny_detector.pt", ec)) {
      TinyFaceDetectorOptions detector_options;
      detector_options.device = device;
      detector_options.coarse_to_fine = options.coarse_to_fine_detection && options.policy != FacePolicy::all;
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

  /// Every face the policy keeps, aligned. `name` labels errors. With a rotation search, the
  /// faces detail::TurnSearch::resolve() keeps (see RotationSearch).
  /// Throws NoFaceFound when there is none and center_fallback is off.
  std::vector<AlignedFace> align_all(const cv::Mat& rgb, const std::string& name) {
    detail::check_rgb(rgb, "FacePipeline");
    auto search = turn_search();
    std::vector<FaceDetection> found;
    if (search) {
      auto faces = search->faces_at(rgb, 0, options_.policy);
      faces = search->resolve(rgb, std::move(faces), options_.policy);
      std::vector<AlignedFace> aligned;
      for (const auto& face : faces) aligned.push_back(aligned_turned_face(rgb, face));
      if (!aligned.empty()) return aligned;
    } else {
      found = detector_->detect(rgb);
    }
    const auto chosen = chosen_faces(found, rgb, name, options_.policy);
    auto faces = align_detections(std::vector<cv::Mat>(chosen.detections.size(), rgb), chosen.detections);
    faces.front().center_fallback = chosen.centre;
    return faces;
  }

  /// Every face the detector finds in `rgb` as it is (no policy, no rotation search), most
  /// confident first; empty when there is none, which in a video frame is no error. Throws
  /// ImageError for an image that is not 8-bit RGB.
  std::vector<FaceDetection> detect(const cv::Mat& rgb) {
    detail::check_rgb(rgb, "FacePipeline");
    return detector_->detect(rgb);
  }

  /// One face, aligned: the largest, or the most central under FacePolicy::central.
  /// Throws as align_all().
  AlignedFace align(const cv::Mat& rgb, const std::string& name) { return align_batch({rgb}, {name}).front(); }

  /// The face the detector finds in each image as it is (no rotation search), element i for
  /// images[i]: the detector's detect_batch(), then the most central face under
  /// FacePolicy::central, else the largest; with none, the central center_fraction of the
  /// image when center_fallback is on.
  /// Requires: one name per image (names label errors). Throws NoFaceFound naming the first
  /// image without a face when center_fallback is off; ImageError for an image that is not
  /// 8-bit RGB.
  std::vector<FoundFace> find_faces(const std::vector<cv::Mat>& images, const std::vector<std::string>& names) {
    if (images.size() != names.size()) {
      throw Error("FacePipeline needs one name per image, got " + std::to_string(images.size()) + " images and " +
                  std::to_string(names.size()) + " names");
    }
    if (images.empty()) return {};
    for (const auto& rgb : images) detail::check_rgb(rgb, "FacePipeline");
    const auto found = detector_->detect_batch(images);
    const auto policy = options_.policy == FacePolicy::central ? FacePolicy::central : FacePolicy::largest;
    std::vector<FoundFace> faces;
    for (std::size_t i = 0; i < images.size(); ++i) {
      const auto chosen = chosen_faces(found[i], images[i], names[i], policy);
      faces.push_back({chosen.detections.front(), chosen.centre});
    }
    return faces;
  }

  /// One face per image, element i for images[i], each as align() finds it: find_faces(),
  /// then one landmark call for the whole batch, whose fixed cost per call outweighs its
  /// arithmetic (32 faces a call: 1.7x the faces/s of one at a time). With a rotation search,
  /// images whose face fails the upright check (or that have none) are searched at other
  /// turns, one by one. Throws as find_faces().
  std::vector<AlignedFace> align_batch(const std::vector<cv::Mat>& images, const std::vector<std::string>& names) {
    if (auto search = turn_search()) return align_batch_any_angle(*search, images, names);
    const auto found = find_faces(images, names);
    std::vector<FaceDetection> detections;
    for (const auto& face : found) detections.push_back(face.detection);
    auto faces = align_detections(images, detections);
    for (std::size_t i = 0; i < faces.size(); ++i) faces[i].center_fallback = found[i].center_fallback;
    return faces;
  }

  /// One detection, aligned: with landmarks onto the dlib template, else a box crop.
  AlignedFace align_detection(const cv::Mat& rgb, const FaceDetection& detection) {
    return align_detections({rgb}, {detection}).front();
  }

  /// Detections aligned as align_detection() does, detections[i] in images[i], the landmarks
  /// of all in one network call. Requires: one detection per image.
  std::vector<AlignedFace> align_detections(const std::vector<cv::Mat>& images,
                                            const std::vector<FaceDetection>& detections) {
    if (images.size() != detections.size()) {
      throw Error("FacePipeline::align_detections needs one detection per image, got " +
                  std::to_string(images.size()) + " images and " + std::to_string(detections.size()) + " detections");
    }
    if (images.empty()) return {};
    std::vector<AlignedFace> faces(images.size());
    const cv::Size size(options_.chip_size, options_.chip_size);
    std::vector<std::vector<cv::Point2f>> landmarks;
    if (landmarker_) {
      std::vector<cv::Rect2f> boxes;
      for (const auto& detection : detections) boxes.push_back(detection.box);
      landmarks = options_.mirror_landmarks ? landmarker_->mirror_averaged_landmarks_batch(images, boxes)
                                            : landmarker_->landmarks_batch(images, boxes);
    }
    for (std::size_t i = 0; i < images.size(); ++i) {
      auto& face = faces[i];
      if (landmarker_) {
        face = aligned_by_landmarks(images[i], detections[i], std::move(landmarks[i]));
      } else {
        face.detection = detections[i];
        const cv::Mat crop = crop_face(images[i], detections[i].box, options_.box_crop);
        cv::resize(crop, face.chip, size, 0, 0, crop.cols > size.width ? cv::INTER_AREA : cv::INTER_LINEAR);
      }
    }
    return faces;
  }

  const AlignmentTemplate& alignment_template() const { return template_; }
  bool uses_landmarks() const { return landmarker_ != nullptr; }
  const FacePipelineOptions& options() const { return options_; }

 private:
  /// The rotation search over this pipeline's networks, when the options ask for one and a
  /// landmark model is there.
  std::optional<detail::TurnSearch> turn_search() const {
    if (!landmarker_ || options_.rotation_search == RotationSearch::upright_only) return std::nullopt;
    const detail::UprightCheck check{options_.upright_check_misfit, options_.upright_disagreement, options_.mirror_landmarks};
    return detail::TurnSearch(*detector_, *landmarker_, template_, options_.rotation_search, check);
  }

  std::vector<AlignedFace> align_batch_any_angle(detail::TurnSearch& search, const std::vector<cv::Mat>& images,
                                                 const std::vector<std::string>& names) {
    if (images.size() != names.size()) {
      throw Error("FacePipeline needs one name per image, got " + std::to_string(images.size()) + " images and " +
                  std::to_string(names.size()) + " names");
    }
    for (const auto& rgb : images) detail::check_rgb(rgb, "FacePipeline");
    const auto policy = options_.policy == FacePolicy::central ? FacePolicy::central : FacePolicy::largest;
    // As the photos are: detection and landmarks batched, as align_batch() does without a search.
    const auto found = images.empty() ? std::vector<std::vector<FaceDetection>>{} : detector_->detect_batch(images);
    std::vector<TurnedImage> as_they_are(images.size());
    std::vector<const TurnedImage*> turned;
    std::vector<FaceDetection> detections;
    std::vector<std::size_t> owner;
    for (std::size_t i = 0; i < images.size(); ++i) {
      as_they_are[i].image = images[i];
      for (const auto& detection : select_faces(found[i], policy, images[i].size())) {
        turned.push_back(&as_they_are[i]);
        detections.push_back(detection);
        owner.push_back(i);
      }
    }
    std::vector<std::vector<detail::TurnedFace>> upright(images.size());
    auto faces = search.faces_for(turned, detections);
    for (std::size_t f = 0; f < faces.size(); ++f) upright[owner[f]].push_back(std::move(faces[f]));
    std::vector<AlignedFace> aligned;
    for (std::size_t i = 0; i < images.size(); ++i) {
      auto chosen = std::move(upright[i]);
      chosen = search.resolve(images[i], std::move(chosen), policy);
      if (!chosen.empty()) {
        aligned.push_back(aligned_turned_face(images[i], chosen.front()));
        continue;
      }
      const auto centre = chosen_faces({}, images[i], names[i], policy);  // throws NoFaceFound without the fallback
      aligned.push_back(align_detection(images[i], centre.detections.front()));
      aligned.back().center_fallback = true;
    }
    return aligned;
  }

  /// A face found by the rotation search, aligned from the photo itself (the similarity
  /// transform turns it upright), its landmarks mirror-averaged when the options ask.
  AlignedFace aligned_turned_face(const cv::Mat& rgb, const detail::TurnedFace& found) {
    auto points = found.landmarks.direct;
    if (options_.mirror_landmarks && !found.landmarks.mirrored.empty()) {
      for (std::size_t i = 0; i < points.size(); ++i) points[i] = (points[i] + found.landmarks.mirrored[i]) * 0.5F;
    }
    auto face = aligned_by_landmarks(rgb, found.detection, std::move(points));
    face.turned_degrees = found.turned_degrees;
    face.landmark_disagreement = found.disagreement.value_or(0.0);
    return face;
  }

  AlignedFace aligned_by_landmarks(const cv::Mat& rgb, const FaceDetection& detection, std::vector<cv::Point2f> landmarks) {
    AlignedFace face;
    face.detection = detection;
    face.landmarks = std::move(landmarks);
    std::vector<cv::Point2f> from;
    for (int index : template_.landmark_indices) from.push_back(face.landmarks[index]);
    face.image_to_chip = similarity_transform(from, template_.points);
    face.chip = warp_face(rgb, face.image_to_chip, cv::Size(options_.chip_size, options_.chip_size));
    face.roll_degrees = face_roll_degrees(face.landmarks);
    return face;
  }

  struct ChosenFaces {
    std::vector<FaceDetection> detections;  ///< at least one
    bool centre = false;                    ///< the one detection is the centre fallback's box
  };

  /// The faces `policy` keeps of those `found` in `rgb`; with none, the central
  /// center_fraction of the image when center_fallback is on, else NoFaceFound naming `name`.
  ChosenFaces chosen_faces(const std::vector<FaceDetection>& found, const cv::Mat& rgb, const std::string& name,
                           FacePolicy policy) const {
    auto kept = select_faces(found, policy, rgb.size());
    if (!kept.empty()) return {std::move(kept), false};
    if (!options_.center_fallback) throw NoFaceFound("no face found in '" + name + "'");
    const float side = static_cast<float>(std::min(rgb.cols, rgb.rows) * options_.center_fraction);
    return {{{cv::Rect2f((rgb.cols - side) / 2, (rgb.rows - side) / 2, side, side), 0.0F}}, true};
  }

  std::unique_ptr<FaceDetector> detector_;
  std::unique_ptr<LandmarkDetector68> landmarker_;
  FacePipelineOptions options_;
  AlignmentTemplate template_;
};

}  // namespace siamese
