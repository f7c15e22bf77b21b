#pragma once

// Faces at any in-plane angle: whether a face's landmarks can be trusted the way up it was
// found, photos turned in steps of 45 degrees, and a face's roll.

#include <siamese/align.hpp>
#include <siamese/detect.hpp>
#include <siamese/errors.hpp>
#include <siamese/landmarks.hpp>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

namespace siamese {

/// How a FacePipeline looks for faces that are not upright.
enum class RotationSearch {
  upright_only,  ///< the photo as it is: an upside-down face is aligned as if upright (wrongly)
  /// The photo as it is first. Turned copies (180, 90, 270, then the odd multiples of 45
  /// degrees) are searched only where it holds no face that passes the upright check (its
  /// landmarks agree with their mirror image's: mirror_disagreement() at most
  /// FacePipelineOptions::upright_disagreement), until a turn has one that does. Needs a
  /// landmark model.
  when_needed,
  every_angle,  ///< all eight turns for every photo: the turn where most faces pass the check
};

/// "upright-only", "when-needed", "every-angle": the names command-line flags use.
inline const char* rotation_search_name(RotationSearch search) {
  switch (search) {
    case RotationSearch::upright_only: return "upright-only";
    case RotationSearch::every_angle: return "every-angle";
    case RotationSearch::when_needed: break;
  }
  return "when-needed";
}

/// The RotationSearch a rotation_search_name() names; throws Error naming anything else.
inline RotationSearch parse_rotation_search(const std::string& name) {
  for (const auto search : {RotationSearch::upright_only, RotationSearch::when_needed, RotationSearch::every_angle}) {
    if (name == rotation_search_name(search)) return search;
  }
  throw Error("unknown rotation search '" + name + "' (expected upright-only, when-needed or every-angle)");
}

/// How much a face's landmarks and those found on its mirror image disagree: their mean
/// distance over the distance between the eyes. The landmark net was trained on upright faces;
/// given a face upside down or on its side it still draws an upright face shape, differently on
/// the mirror image. On 80 LFW photos upright: 0.034 to 0.089; the same photos turned 180
/// degrees, where the upright pipeline finds a face: a median of 0.39, 2 of 56 below 0.1.
/// Requires: 68 points in each set.
inline double mirror_disagreement(const LandmarkDetector68::MirroredLandmarks& face) {
  if (face.direct.size() != LandmarkDetector68::point_count || face.mirrored.size() != LandmarkDetector68::point_count) {
    throw ShapeError("mirror_disagreement needs 68 landmarks in each set, got " + std::to_string(face.direct.size()) +
                     " and " + std::to_string(face.mirrored.size()));
  }
  double sum = 0.0;
  for (std::size_t i = 0; i < face.direct.size(); ++i) sum += cv::norm(face.direct[i] - face.mirrored[i]);
  const auto [left, right] = eye_centers(face.direct);
  return sum / static_cast<double>(face.direct.size()) / std::max(1e-6, cv::norm(left - right));
}

/// How badly a face's landmarks fit the alignment template: the mean distance, in chip
/// pixels over the chip's side, between the template's points and the landmarks moved onto
/// them by the best similarity transform. No network pass. On 400 LFW photos upright: a median
/// of 0.020, 90% below 0.028; the same photos turned 180 degrees, where the upright pipeline
/// finds a face: a median of 0.078, 90% above 0.038.
inline double template_misfit(const std::vector<cv::Point2f>& landmarks, const AlignmentTemplate& tmpl) {
  std::vector<cv::Point2f> from;
  for (int index : tmpl.landmark_indices) from.push_back(landmarks.at(static_cast<std::size_t>(index)));
  const auto m = similarity_transform(from, tmpl.points);
  double sum = 0.0;
  for (std::size_t i = 0; i < from.size(); ++i) {
    const cv::Point2d moved(m(0, 0) * from[i].x + m(0, 1) * from[i].y + m(0, 2), m(1, 0) * from[i].x + m(1, 1) * from[i].y + m(1, 2));
    sum += cv::norm(moved - cv::Point2d(tmpl.points[i]));
  }
  return sum / static_cast<double>(from.size()) / tmpl.size.width;
}

/// The in-plane angle of a face from its landmarks, in degrees in (-180, 180]: the angle of the
/// line from the eye on the image's left to the other, for an upright face 0, clockwise
/// positive (image y grows downwards). A face turned upside down reads 180.
inline double face_roll_degrees(const std::vector<cv::Point2f>& landmarks) {
  const auto [left, right] = eye_centers(landmarks);
  const auto eye_line = right - left;
  return std::atan2(eye_line.y, eye_line.x) * 180.0 / CV_PI;
}

/// A photo turned about its centre, on a canvas that holds all of it.
struct TurnedImage {
  cv::Mat image;
  int degrees = 0;                            ///< counter-clockwise, a multiple of 45
  cv::Matx23d to_source = cv::Matx23d::eye();  ///< turned-image pixels -> source pixels
};

/// `rgb` turned `degrees` counter-clockwise (a multiple of 45). Quarter turns are exact pixel
/// moves; the others interpolate bilinearly onto a canvas with black corners.
inline TurnedImage turned_image(const cv::Mat& rgb, int degrees) {
  degrees = ((degrees % 360) + 360) % 360;
  if (degrees % 45 != 0) throw Error("turned_image turns by multiples of 45 degrees, got " + std::to_string(degrees));
  TurnedImage turned;
  turned.degrees = degrees;
  const double w = rgb.cols, h = rgb.rows;
  switch (degrees) {
    case 0:
      turned.image = rgb;
      return turned;
    case 90:  // source (x, y) -> (y, w - x): turned (u, v) -> source (w - v, u)
      cv::rotate(rgb, turned.image, cv::ROTATE_90_COUNTERCLOCKWISE);
      turned.to_source = cv::Matx23d(0, -1, w, 1, 0, 0);
      return turned;
    case 180:
      cv::rotate(rgb, turned.image, cv::ROTATE_180);
      turned.to_source = cv::Matx23d(-1, 0, w, 0, -1, h);
      return turned;
    case 270:  // source (x, y) -> (h - y, x): turned (u, v) -> source (v, h - u)
      cv::rotate(rgb, turned.image, cv::ROTATE_90_CLOCKWISE);
      turned.to_source = cv::Matx23d(0, 1, 0, -1, 0, h);
      return turned;
    default:
      break;
  }
  const cv::Point2f centre(static_cast<float>(w / 2), static_cast<float>(h / 2));
  cv::Mat forward = cv::getRotationMatrix2D(centre, degrees, 1.0);
  const double c = std::abs(std::cos(degrees * CV_PI / 180)), s = std::abs(std::sin(degrees * CV_PI / 180));
  const int width = static_cast<int>(std::lround(h * s + w * c)), height = static_cast<int>(std::lround(h * c + w * s));
  forward.at<double>(0, 2) += width / 2.0 - centre.x;
  forward.at<double>(1, 2) += height / 2.0 - centre.y;
  cv::warpAffine(rgb, turned.image, forward, cv::Size(width, height), cv::INTER_LINEAR, cv::BORDER_CONSTANT);
  // warpAffine counts pixel indices (pixel i at i); landmarks and boxes count pixel edges
  // (pixel i centred at i + 0.5): the same map in edge coordinates adds (I - A) (0.5, 0.5).
  for (int row = 0; row < 2; ++row) {
    forward.at<double>(row, 2) += 0.5 - 0.5 * (forward.at<double>(row, 0) + forward.at<double>(row, 1));
  }
  cv::Mat backward;
  cv::invertAffineTransform(forward, backward);
  turned.to_source = cv::Matx23d(backward.ptr<double>());
  return turned;
}

namespace detail {
inline cv::Point2f mapped(const cv::Matx23d& m, const cv::Point2f& p) {
  return {static_cast<float>(m(0, 0) * p.x + m(0, 1) * p.y + m(0, 2)),
          static_cast<float>(m(1, 0) * p.x + m(1, 1) * p.y + m(1, 2))};
}

/// `points` mapped by `m`, in place.
inline void map_points(const cv::Matx23d& m, std::vector<cv::Point2f>& points) {
  for (auto& p : points) p = mapped(m, p);
}

/// The axis-aligned box around `box`'s corners mapped by `m`.
inline cv::Rect2f mapped_box(const cv::Matx23d& m, const cv::Rect2f& box) {
  std::vector<cv::Point2f> corners = {box.tl(), {box.x + box.width, box.y}, box.br(), {box.x, box.y + box.height}};
  map_points(m, corners);
  float left = corners[0].x, top = corners[0].y, right = left, bottom = top;
  for (const auto& p : corners) {
    left = std::min(left, p.x), right = std::max(right, p.x);
    top = std::min(top, p.y), bottom = std::max(bottom, p.y);
  }
  return {left, top, right - left, bottom - top};
}

/// A face found in a turned photo, mapped back to the photo's pixels.
struct TurnedFace {
  FaceDetection detection;                           ///< the box around the turned box
  /// In the photo's pixels; `mirrored` empty where the upright check was not needed.
  LandmarkDetector68::MirroredLandmarks landmarks;
  std::optional<double> disagreement;                ///< mirror_disagreement(landmarks), where measured
  int turned_degrees = 0;
};

/// When TurnSearch runs the upright check on a face.
struct UprightCheck {
  double misfit = 0.03;          ///< faces found as the photo is: only above this template_misfit()
  double disagreement = 0.1;     ///< passes at most this mirror_disagreement()
  bool every_face = false;       ///< check every face (the mirror pass is made anyway)
};

/// FacePipeline's search for faces at other angles: detection on turned copies of a photo and
/// the upright check of each face found. Borrows the pipeline's networks.
class TurnSearch {
 public:
  TurnSearch(FaceDetector& detector, LandmarkDetector68& landmarker, const AlignmentTemplate& tmpl, RotationSearch mode,
             UprightCheck check)
      : detector_(detector), landmarker_(landmarker), template_(tmpl), mode_(mode), check_(check) {}

  /// The faces to align in `rgb`, given those found as it is (`upright`, with landmarks):
  /// - every_angle: the turn (of eight) whose faces pass the upright check most often, the
  ///   photo as it is winning ties;
  /// - when_needed: `upright` when one passes; else the passing faces of the first turn that
  ///   has any (180, 90, 270, then the odd multiples of 45 degrees); else `upright`.
  /// A face found at another turn is taken only if it passes. Ensures: empty only when no face
  /// was found as the photo is and none passes at another turn.
  std::vector<TurnedFace> resolve(const cv::Mat& rgb, std::vector<TurnedFace> upright, FacePolicy policy) {
    const bool every_angle = mode_ == RotationSearch::every_angle;
    if (!every_angle && !passing(upright).empty()) return upright;
    auto best = std::move(upright);
    std::size_t best_passing = passing(best).size();
    for (const int degrees : {180, 90, 270, 45, 315, 135, 225}) {
      auto faces = passing(faces_at(rgb, degrees, policy));
      if (faces.size() > best_passing) {
        best_passing = faces.size();
        best = std::move(faces);
        if (!every_angle) break;
      }
    }
    return best;
  }

  /// detections[i], found in turned[i], with their landmarks, mapped back. Faces found as the
  /// photo is get the upright check (the mirror image's landmarks: a second pass, batched)
  /// only when their landmarks misfit the template, unless every face is checked; faces at
  /// other turns always get it.
  std::vector<TurnedFace> faces_for(const std::vector<const TurnedImage*>& turned,
                                    const std::vector<FaceDetection>& detections) {
    if (detections.empty()) return {};
    std::vector<cv::Mat> images;
    std::vector<cv::Rect2f> boxes;
    for (std::size_t i = 0; i < detections.size(); ++i) {
      images.push_back(turned[i]->image);
      boxes.push_back(detections[i].box);
    }
    std::vector<TurnedFace> faces(detections.size());
    std::vector<std::size_t> to_check;
    if (check_.every_face) {
      for (std::size_t i = 0; i < faces.size(); ++i) to_check.push_back(i);
    } else {
      auto direct = landmarker_.landmarks_batch(images, boxes);
      for (std::size_t i = 0; i < faces.size(); ++i) {
        faces[i].landmarks.direct = std::move(direct[i]);
        if (turned[i]->degrees != 0 || template_misfit(faces[i].landmarks.direct, template_) > check_.misfit) {
          to_check.push_back(i);
        }
      }
    }
    if (!to_check.empty()) {
      std::vector<cv::Mat> check_images;
      std::vector<cv::Rect2f> check_boxes;
      for (const auto i : to_check) {
        check_images.push_back(images[i]);
        check_boxes.push_back(boxes[i]);
      }
      // Every face checked needs its mirror image's landmarks; its own are known unless every
      // face is checked, when both come from one call.
      auto checked = check_.every_face ? landmarker_.mirrored_landmarks_batch(check_images, check_boxes)
                                       : landmarker_.mirror_image_landmarks_batch(check_images, check_boxes);
      for (std::size_t k = 0; k < to_check.size(); ++k) {
        auto& face = faces[to_check[k]];
        if (!check_.every_face) checked[k].direct = std::move(face.landmarks.direct);
        face.disagreement = mirror_disagreement(checked[k]);  // a ratio of lengths: the same after turning back
        face.landmarks = std::move(checked[k]);
      }
    }
    for (std::size_t i = 0; i < faces.size(); ++i) {
      const auto& to_source = turned[i]->to_source;
      auto& face = faces[i];
      map_points(to_source, face.landmarks.direct);
      map_points(to_source, face.landmarks.mirrored);
      face.detection = {mapped_box(to_source, detections[i].box), detections[i].score};
      face.turned_degrees = turned[i]->degrees;
    }
    return faces;
  }

  /// The faces `policy` keeps in `rgb` turned `degrees` counter-clockwise, mapped back.
  std::vector<TurnedFace> faces_at(const cv::Mat& rgb, int degrees, FacePolicy policy) {
    const auto turned = turned_image(rgb, degrees);
    const auto kept = select_faces(detector_.detect(turned.image), policy, turned.image.size());
    return faces_for(std::vector<const TurnedImage*>(kept.size(), &turned), kept);
  }

 private:
  bool passes(const TurnedFace& face) const { return !face.disagreement || *face.disagreement <= check_.disagreement; }

  std::vector<TurnedFace> passing(std::vector<TurnedFace> faces) const {
    faces.erase(std::remove_if(faces.begin(), faces.end(), [&](const TurnedFace& f) { return !passes(f); }), faces.end());
    return faces;
  }

  FaceDetector& detector_;
  LandmarkDetector68& landmarker_;
  const AlignmentTemplate& template_;
  RotationSearch mode_;
  UprightCheck check_;
};

}  // namespace detail

}  // namespace siamese
