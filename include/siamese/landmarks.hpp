#pragma once

#include <siamese/detail/helper_network.hpp>
#include <siamese/detect.hpp>
#include <siamese/device.hpp>
#include <siamese/errors.hpp>
#include <siamese/preprocess.hpp>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace siamese {

/// The 68-point face landmark network of @vladmandic/face-api (iBUG 300-W point order: jaw
/// 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67), converted by
/// tools/convert_faceapi.py. landmarks() may be called from several threads at once.
class LandmarkDetector68 {
 public:
  static constexpr int point_count = 68;

  /// Throws FileError/ModelError/MetadataError for a missing or wrong model file.
  explicit LandmarkDetector68(const std::filesystem::path& model, Device device = Device::automatic())
      : network_((detail::apply_process_defaults(device), model.string()), device) {}

  /// Landmarks of the face in `box` of an 8-bit RGB image, as face-api finds them: the box
  /// (clipped to the image) is cut out, padded to a centred square with zeros, resized to the
  /// network's input.
  /// Ensures: 68 points in image pixels. Throws ImageError when the box misses the image.
  std::vector<cv::Point2f> landmarks(const cv::Mat& rgb, const cv::Rect2f& box) {
    return landmarks_batch({rgb}, {box}).front();
  }

  /// Landmarks of several faces in one network call, element i for the face in boxes[i] of
  /// images[i] (images may repeat), each as landmarks() finds it.
  /// Requires: as many boxes as images. Ensures and throws as landmarks().
  std::vector<std::vector<cv::Point2f>> landmarks_batch(const std::vector<cv::Mat>& images,
                                                        const std::vector<cv::Rect2f>& boxes) {
    check_batch(images, boxes);
    struct Placement {
      int side, left, top;
      cv::Point2f origin;
    };
    std::vector<cv::Mat> inputs;
    std::vector<Placement> placements;
    const auto& spec = network_.input_spec();
    const cv::Size input_size(spec.width, spec.height);
    for (std::size_t i = 0; i < images.size(); ++i) {
      const auto& rgb = images[i];
      const cv::Rect inside = cv::Rect(boxes[i]) & cv::Rect(0, 0, rgb.cols, rgb.rows);
      if (inside.width < 2 || inside.height < 2) {
        throw ImageError("landmark box lies outside the " + std::to_string(rgb.cols) + "x" +
                         std::to_string(rgb.rows) + " image");
      }
      const int side = std::max(inside.width, inside.height);
      const int left = (side - inside.width) / 2;
      const int top = (side - inside.height) / 2;
      cv::Mat square;
      cv::copyMakeBorder(rgb(inside), square, top, side - inside.height - top, left,
                         side - inside.width - left, cv::BORDER_CONSTANT, cv::Scalar::all(0));
      inputs.push_back(detail::resized_for_input(square, input_size));
      placements.push_back({side, left, top, cv::Point2f(static_cast<float>(inside.x), static_cast<float>(inside.y))});
    }
    const auto count = static_cast<std::int64_t>(inputs.size());
    const auto output = network_.run(inputs, spec);
    if (output.numel() != 2 * point_count * count) {
      throw ModelError("'" + network_.file() + "' returned " + detail::shape_string(output) + ", expected [" +
                       std::to_string(count) + ", 136]");
    }
    const float* xy = output.data_ptr<float>();
    std::vector<std::vector<cv::Point2f>> faces(inputs.size(), std::vector<cv::Point2f>(point_count));
    for (std::size_t f = 0; f < faces.size(); ++f, xy += 2 * point_count) {
      const auto& [side, left, top, origin] = placements[f];
      for (int i = 0; i < point_count; ++i) {
        faces[f][i] = {xy[2 * i] * side - left + origin.x, xy[2 * i + 1] * side - top + origin.y};
      }
    }
    return faces;
  }

  /// Landmarks of the face in `box`, averaged with those found on the mirror image (flipped
  /// back, left and right points swapped): one more pass that halves the net's left/right
  /// bias. On LFW View 2 it took 10-fold accuracy from 99.10% to 99.25% (README).
  /// Ensures and throws as landmarks().
  std::vector<cv::Point2f> mirror_averaged_landmarks(const cv::Mat& rgb, const cv::Rect2f& box) {
    return mirror_averaged_landmarks_batch({rgb}, {box}).front();
  }

  /// mirror_averaged_landmarks() of several faces, the faces and their mirrors in one network
  /// call. Requires, ensures and throws as landmarks_batch().
  std::vector<std::vector<cv::Point2f>> mirror_averaged_landmarks_batch(const std::vector<cv::Mat>& images,
                                                                        const std::vector<cv::Rect2f>& boxes) {
    std::vector<std::vector<cv::Point2f>> averaged;
    for (auto& face : mirrored_landmarks_batch(images, boxes)) {
      for (int i = 0; i < point_count; ++i) face.direct[i] = (face.direct[i] + face.mirrored[i]) * 0.5F;
      averaged.push_back(std::move(face.direct));
    }
    return averaged;
  }

  /// A face's landmarks found directly and on the mirror image (mapped back, left and right
  /// points swapped): what mirror_averaged_landmarks() averages, and whose disagreement tells
  /// an upright face from one the net cannot read (mirror_disagreement(), orientation.hpp).
  struct MirroredLandmarks {
    std::vector<cv::Point2f> direct;    ///< 68 points in image pixels
    std::vector<cv::Point2f> mirrored;  ///< the same 68 points, found on the mirror image
  };

  /// MirroredLandmarks of several faces, the faces and their mirrors in one network call.
  /// Requires, ensures and throws as landmarks_batch().
  std::vector<MirroredLandmarks> mirrored_landmarks_batch(const std::vector<cv::Mat>& images,
                                                          const std::vector<cv::Rect2f>& boxes) {
    return with_mirrors(images, boxes, /*direct=*/true);
  }

  /// The `mirrored` half of mirrored_landmarks_batch() alone (`direct` left empty), for faces
  /// whose direct landmarks are already known: half the network work.
  /// Requires, ensures and throws as landmarks_batch().
  std::vector<MirroredLandmarks> mirror_image_landmarks_batch(const std::vector<cv::Mat>& images,
                                                              const std::vector<cv::Rect2f>& boxes) {
    return with_mirrors(images, boxes, /*direct=*/false);
  }

 private:
  /// Landmarks found on each face's mirror image, mapped back, and with `direct` the face's own,
  /// all in one network call.
  std::vector<MirroredLandmarks> with_mirrors(const std::vector<cv::Mat>& images, const std::vector<cv::Rect2f>& boxes,
                                              bool direct) {
    check_batch(images, boxes);
    std::vector<cv::Mat> batch_images = direct ? images : std::vector<cv::Mat>{};
    std::vector<cv::Rect2f> batch_boxes = direct ? boxes : std::vector<cv::Rect2f>{};
    const std::size_t first_mirror = batch_images.size();
    for (std::size_t i = 0; i < images.size(); ++i) {
      cv::Mat flipped;
      cv::flip(images[i], flipped, 1);
      const auto width = static_cast<float>(images[i].cols);
      batch_images.push_back(flipped);
      batch_boxes.emplace_back(width - boxes[i].x - boxes[i].width, boxes[i].y, boxes[i].width, boxes[i].height);
    }
    auto points = landmarks_batch(batch_images, batch_boxes);
    std::vector<MirroredLandmarks> faces(images.size());
    for (std::size_t f = 0; f < images.size(); ++f) {
      // Landmarks count pixel edges: x mirrors to width - x.
      const auto width = static_cast<float>(images[f].cols);
      const auto& found_on_mirror = points[first_mirror + f];
      if (direct) faces[f].direct = std::move(points[f]);
      faces[f].mirrored.resize(point_count);
      for (int i = 0; i < point_count; ++i) {
        const auto& twin = found_on_mirror[mirror_twin[i]];
        faces[f].mirrored[i] = cv::Point2f(width - twin.x, twin.y);
      }
    }
    return faces;
  }

  static void check_batch(const std::vector<cv::Mat>& images, const std::vector<cv::Rect2f>& boxes) {
    if (images.size() != boxes.size() || images.empty()) {
      throw ShapeError("landmarks_batch needs one box per image and at least one, got " +
                       std::to_string(images.size()) + " images and " + std::to_string(boxes.size()) + " boxes");
    }
    for (const auto& image : images) detail::check_rgb(image, "LandmarkDetector68");
  }

  /// Each point's counterpart in the mirror image (jaw, brows, nose, eyes and mouth swap sides).
  static constexpr int mirror_twin[point_count] = {
      16, 15, 14, 13, 12, 11, 10, 9,  8,  7,  6,  5,  4,  3,  2,  1,  0,  26, 25, 24, 23, 22, 21,
      20, 19, 18, 17, 27, 28, 29, 30, 35, 34, 33, 32, 31, 45, 44, 43, 42, 47, 46, 39, 38, 37, 36,
      41, 40, 54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65};

  detail::HelperNetwork network_;
};

/// The centre of the left eye (points 36-41) and right eye (42-47), in image order.
inline std::pair<cv::Point2f, cv::Point2f> eye_centers(const std::vector<cv::Point2f>& points) {
  if (points.size() != LandmarkDetector68::point_count) {
    throw ShapeError("eye_centers needs 68 landmarks, got " + std::to_string(points.size()));
  }
  cv::Point2f left(0, 0), right(0, 0);
  for (int i = 0; i < 6; ++i) {
    left += points[36 + i];
    right += points[42 + i];
  }
  return {left / 6.0F, right / 6.0F};
}

}  // namespace siamese
