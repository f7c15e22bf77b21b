#pragma once

// How good a face is for recognition, from what the pipeline has already computed: the
// detector's score, the face's size, its head pose (from the 68 landmarks), and the chip's
// sharpness and exposure. Used to pick the best view of a tracked face and to refuse an
// enrollment photo with the reason.

#include <siamese/errors.hpp>
#include <siamese/face.hpp>
#include <siamese/landmarks.hpp>

#include <opencv2/calib3d.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace siamese {

/// A face's orientation, in degrees: 0, 0, 0 looking straight at the camera.
struct HeadPose {
  double yaw = 0.0;    ///< turned sideways; positive: the nose points towards the image's right
  double pitch = 0.0;  ///< nodding; positive: looking down
  double roll = 0.0;   ///< in-plane tilt, face_roll_degrees(): positive clockwise
};

namespace detail {
/// Six points of a generic head (millimetres, camera axes: x right, y down, z away from the
/// camera; the nose tip at the origin) and the 68-point indices that match them: nose tip,
/// chin, the eyes' outer corners, the mouth's corners. The depths behind the nose tip are
/// those of an adult head (eye corners 45 mm, mouth corners 38, chin 25): the shallower head
/// often used with solvePnP (eye corners 26 mm) read LFW faces that look turned 15-20 degrees
/// as 30-35.
inline const std::vector<cv::Point3d>& head_model_points() {
  static const std::vector<cv::Point3d> points = {{0.0, 0.0, 0.0},      {0.0, 63.6, 25.0},    {-43.3, -32.7, 45.0},
                                                  {43.3, -32.7, 45.0},  {-28.9, 28.9, 38.0},  {28.9, 28.9, 38.0}};
  return points;
}
inline constexpr int head_model_landmarks[6] = {30, 8, 36, 45, 48, 54};
}  // namespace detail

/// The head pose that best explains six of the 68 landmarks (nose tip, chin, eye and mouth
/// corners) as a generic head seen through a long lens (cv::solvePnP, Levenberg-Marquardt from
/// a frontal start): yaw and pitch from the fit, roll from the eye line. A generic head makes
/// the angles approximate, a few degrees for faces near frontal and more at large yaw; they
/// are meant for ranking views and refusing clearly turned faces, not for measurement.
/// Requires: 68 landmarks (ShapeError otherwise). Deterministic.
inline HeadPose head_pose(const std::vector<cv::Point2f>& landmarks) {
  if (landmarks.size() != LandmarkDetector68::point_count) {
    throw ShapeError("head_pose needs 68 landmarks, got " + std::to_string(landmarks.size()));
  }
  const auto& model = detail::head_model_points();
  std::vector<cv::Point2d> image;
  cv::Point2d centre(0, 0);
  for (const int index : detail::head_model_landmarks) {
    image.emplace_back(landmarks[static_cast<std::size_t>(index)]);
    centre += image.back();
  }
  centre *= 1.0 / static_cast<double>(image.size());
  const double eye_span = std::max(1.0, cv::norm(image[3] - image[2]));
  const double focal = 8.0 * eye_span;  // a head about eight face widths away: little perspective
  const cv::Matx33d camera(focal, 0, centre.x, 0, focal, centre.y, 0, 0, 1);
  const double model_eye_span = cv::norm(model[3] - model[2]);
  cv::Mat rotation = cv::Mat::zeros(3, 1, CV_64F);
  cv::Mat translation = (cv::Mat_<double>(3, 1) << 0.0, 0.0, focal * model_eye_span / eye_span);
  HeadPose pose;
  pose.roll = face_roll_degrees(landmarks);
  try {
    cv::solvePnP(model, image, camera, cv::noArray(), rotation, translation, /*useExtrinsicGuess=*/true, cv::SOLVEPNP_ITERATIVE);
  } catch (const cv::Exception& e) {  // degenerate points (all in one place): no pose to report
    throw NumericError("head_pose: the landmarks do not fit a head (" + e.msg + ")");
  }
  cv::Matx33d r;
  cv::Rodrigues(rotation, r);
  // r = Rz(roll) Ry(beta) Rx(alpha); a positive beta turns the nose towards the image's left.
  pose.yaw = std::asin(std::clamp(r(2, 0), -1.0, 1.0)) * 180.0 / CV_PI;
  pose.pitch = std::atan2(r(2, 1), r(2, 2)) * 180.0 / CV_PI;
  return pose;
}

/// What FaceQuality weighs, and where each measure stops adding to the score.
struct QualityScale {
  double full_size_pixels = 80.0;  ///< faces this wide or wider score full marks for size
  double min_size_pixels = 20.0;   ///< and this narrow or narrower none
  double max_yaw = 60.0;           ///< degrees at which the pose factor reaches 0
  double max_pitch = 50.0;
  double sharpness_half = 40.0;    ///< the sharpness at which the sharpness factor is 0.5
};

/// How good a face is for recognition. Every measure is kept for the caller; `score` combines
/// them (QualityScale).
struct FaceQuality {
  /// In [0, 1]: the product of the factors for detector score, size, pose, sharpness and
  /// exposure, each in [0, 1]; higher is better.
  double score = 0.0;
  double detector_score = 0.0;
  double face_pixels = 0.0;  ///< the detector box's shorter side, in source pixels
  HeadPose pose;             ///< all 0 without landmarks
  bool has_pose = false;     ///< the pose was measured (landmarks were there)
  /// The variance of the Laplacian of the chip's grey centre (the middle half of the chip),
  /// in grey levels squared: 0 for a flat chip; blurred faces low.
  double sharpness = 0.0;
  double brightness = 0.0;   ///< the mean grey level of the chip's centre, 0-255
  double clipped = 0.0;      ///< the fraction of the centre's pixels at or below 5 or at or above 250
};

/// The quality of an aligned face (a chip from FacePipeline): its detection, landmarks and chip.
/// Requires: a non-empty 8-bit RGB chip. Deterministic.
inline FaceQuality face_quality(const AlignedFace& face, const QualityScale& scale = {}) {
  detail::check_rgb(face.chip, "face_quality");
  FaceQuality q;
  q.detector_score = face.center_fallback ? 0.0 : face.detection.score;
  q.face_pixels = std::min(face.detection.box.width, face.detection.box.height);
  if (face.landmarks.size() == LandmarkDetector68::point_count) {
    q.pose = head_pose(face.landmarks);
    q.has_pose = true;
  }
  const cv::Rect centre(face.chip.cols / 4, face.chip.rows / 4, std::max(1, face.chip.cols / 2), std::max(1, face.chip.rows / 2));
  cv::Mat grey, laplacian;
  cv::cvtColor(face.chip(centre), grey, cv::COLOR_RGB2GRAY);
  cv::Laplacian(grey, laplacian, CV_64F);
  cv::Scalar mean, deviation;
  cv::meanStdDev(laplacian, mean, deviation);
  q.sharpness = deviation[0] * deviation[0];
  q.brightness = cv::mean(grey)[0];
  cv::Mat dark, light;
  cv::compare(grey, 5, dark, cv::CMP_LE);
  cv::compare(grey, 250, light, cv::CMP_GE);
  q.clipped = static_cast<double>(cv::countNonZero(dark) + cv::countNonZero(light)) / static_cast<double>(grey.total());

  const auto unit = [](double x) { return std::clamp(x, 0.0, 1.0); };
  const double size = unit((q.face_pixels - scale.min_size_pixels) / (scale.full_size_pixels - scale.min_size_pixels));
  const double pose = unit(1.0 - std::pow(q.pose.yaw / scale.max_yaw, 2)) * unit(1.0 - std::pow(q.pose.pitch / scale.max_pitch, 2));
  const double sharp = q.sharpness / (q.sharpness + scale.sharpness_half);
  const double exposure = unit(1.0 - std::max(0.0, std::abs(q.brightness - 128.0) - 64.0) / 64.0) * unit(1.0 - 2.0 * q.clipped);
  q.score = unit(q.detector_score) * size * pose * sharp * exposure;
  return q;
}

/// A face of lower quality than a QualityBar allows. `what()` names the photo and the reason.
class LowQualityFace : public ImageError {
 public:
  using ImageError::ImageError;
};

/// The least an enrollment photo must offer. The defaults refuse faces a gallery should not
/// hold (tiny, turned far sideways, blurred flat, under- or over-exposed) and pass the
/// portraits and news photos people enroll; 0 or a negative value turns a check off.
struct QualityBar {
  double min_face_pixels = 40.0;
  double max_yaw = 45.0;      ///< degrees either way
  double max_pitch = 40.0;
  double min_sharpness = 5.0;
  double min_brightness = 30.0;
  double max_brightness = 225.0;
  double min_score = 0.0;     ///< FaceQuality::score

  /// Why `q` falls below the bar ("face too small: 38 px (at least 40)"), or std::nullopt
  /// when it clears it. The first failing check is named, in the order of the fields.
  std::optional<std::string> shortfall(const FaceQuality& q) const {
    std::ostringstream why;
    why << std::fixed << std::setprecision(0);
    if (min_face_pixels > 0 && q.face_pixels < min_face_pixels) {
      why << "face too small: " << q.face_pixels << " px (at least " << min_face_pixels << ")";
    } else if (max_yaw > 0 && q.has_pose && std::abs(q.pose.yaw) > max_yaw) {
      why << "yaw " << std::abs(q.pose.yaw) << " degrees (at most " << max_yaw << ")";
    } else if (max_pitch > 0 && q.has_pose && std::abs(q.pose.pitch) > max_pitch) {
      why << "pitch " << std::abs(q.pose.pitch) << " degrees (at most " << max_pitch << ")";
    } else if (min_sharpness > 0 && q.sharpness < min_sharpness) {
      why << std::setprecision(1) << "face blurred: sharpness " << q.sharpness << " (at least " << min_sharpness << ")";
    } else if (min_brightness > 0 && q.brightness < min_brightness) {
      why << "face too dark: mean grey " << q.brightness << " (at least " << min_brightness << ")";
    } else if (max_brightness > 0 && q.brightness > max_brightness) {
      why << "face too bright: mean grey " << q.brightness << " (at most " << max_brightness << ")";
    } else if (min_score > 0 && q.score < min_score) {
      why << std::setprecision(3) << "quality " << q.score << " (at least " << min_score << ")";
    } else {
      return std::nullopt;
    }
    return why.str();
  }

  /// Throws LowQualityFace naming `name` and the shortfall() when `q` falls below the bar.
  void require(const FaceQuality& q, const std::string& name) const {
    if (const auto why = shortfall(q)) throw LowQualityFace("'" + name + "': " + *why);
  }
};

}  // namespace siamese
