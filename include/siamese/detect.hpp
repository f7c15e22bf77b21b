#pragma once

#include <siamese/errors.hpp>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/objdetect.hpp>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

namespace siamese {

/// No face was found where one was required. `what()` names the image.
class NoFaceFound : public ImageError {
 public:
  using ImageError::ImageError;
};

/// Where Debian's opencv-data package puts OpenCV's frontal-face Haar cascade.
inline constexpr const char* default_haar_cascade =
    "/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml";

/// Which faces to keep when a photo has several.
enum class FacePolicy { largest, all };

/// OpenCV's Haar-cascade face detector: always available, fast, and the fallback detector.
/// Not thread-safe (cv::CascadeClassifier keeps scratch state): one per thread.
class HaarFaceDetector {
 public:
  /// Requires: an OpenCV cascade XML file (default: opencv-data's frontal face cascade).
  /// Throws FileError when it is missing or cannot be parsed.
  explicit HaarFaceDetector(const std::filesystem::path& cascade = default_haar_cascade) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(cascade, ec) || !classifier_.load(cascade.string())) {
      throw FileError("cannot load Haar cascade '" + cascade.string() +
                      "' (install Debian's opencv-data, or pass the path of a cascade XML)");
    }
  }

  /// Detects faces in an 8-bit RGB image.
  /// Ensures: boxes inside the image, largest first; one box with FacePolicy::largest.
  std::vector<cv::Rect> detect(const cv::Mat& rgb, FacePolicy policy = FacePolicy::largest) {
    if (rgb.empty() || rgb.type() != CV_8UC3) {
      throw ImageError("face detection needs a non-empty 8-bit RGB image");
    }
    cv::Mat gray;
    cv::cvtColor(rgb, gray, cv::COLOR_RGB2GRAY);
    cv::equalizeHist(gray, gray);
    const int min_side = std::max(24, std::min(gray.cols, gray.rows) / 12);
    std::vector<cv::Rect> faces;
    classifier_.detectMultiScale(gray, faces, 1.1, 5, 0, cv::Size(min_side, min_side));
    std::sort(faces.begin(), faces.end(),
              [](const cv::Rect& a, const cv::Rect& b) { return a.area() > b.area(); });
    if (policy == FacePolicy::largest && faces.size() > 1) faces.resize(1);
    return faces;
  }

 private:
  cv::CascadeClassifier classifier_;
};

/// How a detector box becomes a face chip: a square `scale` times the box, centred
/// `shift_down` box heights below the box centre. The defaults were tuned for OpenCV's Haar
/// boxes and the dlib-150 face model on LFW's View 1 training pairs (pairsDevTrain.txt).
struct CropOptions {
  double scale = 1.1;
  double shift_down = 0.05;
};

/// A square crop around `box`, `scale` times its size, centred `shift_down` box heights lower
/// than the box centre; parts outside the image are filled by replicating the border.
/// Ensures: a square CV_8UC3 image of side round(scale * max(box side)).
inline cv::Mat crop_face(const cv::Mat& rgb, const cv::Rect& box, const CropOptions& options = {}) {
  const double scale = options.scale;
  const double shift_down = options.shift_down;
  if (box.width <= 0 || box.height <= 0 || !(scale > 0.0)) {
    throw ImageError("crop_face needs a non-empty box and a positive scale");
  }
  const int side = std::max(1, static_cast<int>(std::lround(scale * std::max(box.width, box.height))));
  const double cx = box.x + box.width / 2.0;
  const double cy = box.y + box.height / 2.0 + shift_down * box.height;
  const cv::Rect square(static_cast<int>(std::lround(cx - side / 2.0)),
                        static_cast<int>(std::lround(cy - side / 2.0)), side, side);
  const cv::Rect inside = square & cv::Rect(0, 0, rgb.cols, rgb.rows);
  if (inside.area() == 0) throw ImageError("crop_face: the box lies outside the image");
  cv::Mat crop;
  cv::copyMakeBorder(rgb(inside), crop, inside.y - square.y, square.br().y - inside.br().y,
                     inside.x - square.x, square.br().x - inside.br().x, cv::BORDER_REPLICATE);
  return crop;
}

/// Detects the largest face in `rgb` and crops it. `name` labels the error.
/// Throws NoFaceFound when the detector finds none.
inline cv::Mat find_and_crop_face(HaarFaceDetector& detector, const cv::Mat& rgb,
                                  const std::string& name, const CropOptions& options = {}) {
  const auto faces = detector.detect(rgb, FacePolicy::largest);
  if (faces.empty()) throw NoFaceFound("no face found in '" + name + "'");
  return crop_face(rgb, faces.front(), options);
}

}  // namespace siamese
