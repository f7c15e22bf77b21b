#pragma once

#include <siamese/errors.hpp>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace siamese {

/// Where landmarks should land in an aligned face chip.
struct AlignmentTemplate {
  std::vector<int> landmark_indices;  ///< which of the 68 landmarks take part
  std::vector<cv::Point2f> points;    ///< their target positions in chip pixels
  cv::Size size;                      ///< the chip's size
};

/// dlib's face chip template (get_face_chip_details): the mean face shape of landmarks 17-67,
/// placed in a `size` x `size` chip with `padding` of the face's size around it. The dlib face
/// recognition model was trained on size 150, padding 0.25 chips.
inline AlignmentTemplate dlib_template(int size = 150, double padding = 0.25) {
  if (size < 8 || size > 4096 || !(padding >= 0.0 && padding < 4.0)) {
    throw Error("dlib_template needs size in 8..4096 and padding in [0, 4), got " +
                std::to_string(size) + " and " + std::to_string(padding));
  }
  static constexpr std::array<double, 51> mean_x = {
      0.000213256, 0.0752622, 0.18113,  0.29077,  0.393397, 0.586856, 0.689483, 0.799124,
      0.904991,    0.98004,   0.490127, 0.490127, 0.490127, 0.490127, 0.36688,  0.426036,
      0.490127,    0.554217,  0.613373, 0.121737, 0.187122, 0.265825, 0.334606, 0.260918,
      0.182743,    0.645647,  0.714428, 0.793132, 0.858516, 0.79751,  0.719335, 0.254149,
      0.340985,    0.428858,  0.490127, 0.551395, 0.639268, 0.726104, 0.642159, 0.556721,
      0.490127,    0.423532,  0.338094, 0.290379, 0.428096, 0.490127, 0.552157, 0.689874,
      0.553364,    0.490127,  0.42689};
  static constexpr std::array<double, 51> mean_y = {
      0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891, 0.0187482,
      0.038915, 0.106454, 0.203352,  0.307009,  0.409805,  0.515625,  0.587326,  0.609345,
      0.628106, 0.609345, 0.587326,  0.216423,  0.178758,  0.179852,  0.231733,  0.245099,
      0.244077, 0.231733, 0.179852,  0.178758,  0.216423,  0.244077,  0.245099,  0.780233,
      0.745405, 0.727388, 0.742578,  0.727388,  0.745405,  0.780233,  0.864805,  0.902192,
      0.909281, 0.902192, 0.864805,  0.784792,  0.778746,  0.785343,  0.778746,  0.784792,
      0.824182, 0.831803, 0.824182};
  AlignmentTemplate t;
  t.size = cv::Size(size, size);
  for (int i = 0; i < 51; ++i) {
    t.landmark_indices.push_back(17 + i);
    t.points.emplace_back(static_cast<float>((padding + mean_x[i]) / (2 * padding + 1) * size),
                          static_cast<float>((padding + mean_y[i]) / (2 * padding + 1) * size));
  }
  return t;
}

/// The least-squares similarity transform (rotation, uniform scale, translation) taking
/// `from` onto `to` (Umeyama 1991, without reflection).
/// Requires: the same number of points, at least 2, not all equal. Ensures: a 2x3 matrix.
inline cv::Matx23d similarity_transform(const std::vector<cv::Point2f>& from,
                                        const std::vector<cv::Point2f>& to) {
  if (from.size() != to.size() || from.size() < 2) {
    throw ShapeError("similarity_transform needs two equal sets of at least 2 points, got " +
                     std::to_string(from.size()) + " and " + std::to_string(to.size()));
  }
  const double n = static_cast<double>(from.size());
  cv::Point2d mean_from(0, 0), mean_to(0, 0);
  for (std::size_t i = 0; i < from.size(); ++i) {
    mean_from += cv::Point2d(from[i]);
    mean_to += cv::Point2d(to[i]);
  }
  mean_from /= n;
  mean_to /= n;
  // For 2-D similarity, a = sum(p.q) / sum(|p|^2), b = sum(p x q) / sum(|p|^2) on centred points.
  double dot = 0, cross = 0, spread = 0;
  for (std::size_t i = 0; i < from.size(); ++i) {
    const cv::Point2d p = cv::Point2d(from[i]) - mean_from;
    const cv::Point2d q = cv::Point2d(to[i]) - mean_to;
    dot += p.x * q.x + p.y * q.y;
    cross += p.x * q.y - p.y * q.x;
    spread += p.x * p.x + p.y * p.y;
  }
  if (!(spread > 1e-12)) throw ShapeError("similarity_transform: the source points coincide");
  const double a = dot / spread;
  const double b = cross / spread;
  return {a, -b, mean_to.x - (a * mean_from.x - b * mean_from.y),
          b, a,  mean_to.y - (b * mean_from.x + a * mean_from.y)};
}

/// Warps `rgb` by `image_to_chip` into a chip of `size` (bilinear, border replicated). When the
/// chip shrinks the face by more than 2x, the image is first reduced with area averaging, so
/// large photos do not alias.
inline cv::Mat warp_face(const cv::Mat& rgb, const cv::Matx23d& image_to_chip, cv::Size size) {
  const double scale = std::hypot(image_to_chip(0, 0), image_to_chip(1, 0));
  cv::Mat source = rgb;
  cv::Matx23d transform = image_to_chip;
  if (scale < 0.5) {
    const double reduce = 2.0 * scale;
    cv::resize(rgb, source, cv::Size(), reduce, reduce, cv::INTER_AREA);
    const double fx = static_cast<double>(rgb.cols) / source.cols;
    const double fy = static_cast<double>(rgb.rows) / source.rows;
    for (int r = 0; r < 2; ++r) {
      transform(r, 0) *= fx;
      transform(r, 1) *= fy;
    }
  }
  cv::Mat chip;
  cv::warpAffine(source, chip, transform, size, cv::INTER_LINEAR, cv::BORDER_REPLICATE);
  return chip;
}

/// A randomly disturbed copy of an aligned chip, as dlib's jitter_image makes them: rotated by
/// up to 3 degrees, shifted by up to 2% and zoomed by 0-3% about the centre, mirrored half of
/// the time. Averaging the embeddings of several such copies steadies an embedding against
/// small alignment errors. Requires: a non-empty chip. Same `rng` state, same copy.
inline cv::Mat jitter_chip(const cv::Mat& chip, std::mt19937& rng) {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const auto between = [&](double low, double high) { return low + (high - low) * unit(rng); };
  // dlib's rectangle: the chip less 3 pixels on each side, shifted and zoomed.
  const double inner = std::max(1.0, chip.cols - 6.0);
  const double shift_x = between(-0.02, 0.02) * inner, shift_y = between(-0.02, 0.02) * inner;
  const double zoom = between(0.97, 1.0);
  const double degrees = between(-3.0, 3.0);
  const cv::Point2f centre(static_cast<float>(chip.cols / 2.0 + shift_x), static_cast<float>(chip.rows / 2.0 + shift_y));
  cv::Mat transform = cv::getRotationMatrix2D(centre, degrees, chip.cols * zoom / inner);
  transform.at<double>(0, 2) += chip.cols / 2.0 - centre.x;
  transform.at<double>(1, 2) += chip.rows / 2.0 - centre.y;
  cv::Mat jittered;
  cv::warpAffine(chip, jittered, transform, chip.size(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
  if (unit(rng) > 0.5) cv::flip(jittered, jittered, 1);
  return jittered;
}

/// Applies a 2x3 transform to points.
inline std::vector<cv::Point2f> transform_points(const std::vector<cv::Point2f>& points,
                                                 const cv::Matx23d& m) {
  std::vector<cv::Point2f> out;
  out.reserve(points.size());
  for (const auto& p : points) {
    out.emplace_back(static_cast<float>(m(0, 0) * p.x + m(0, 1) * p.y + m(0, 2)),
                     static_cast<float>(m(1, 0) * p.x + m(1, 1) * p.y + m(1, 2)));
  }
  return out;
}

/// How a detector box becomes a face chip when no landmarks are used: a square `scale` times
/// the box, centred `shift_down` box heights below the box centre. The defaults were tuned for
/// OpenCV's Haar boxes and the dlib-150 face model on LFW's View 1 training pairs.
struct CropOptions {
  double scale = 1.1;
  double shift_down = 0.05;
};

/// A square crop around `box` as CropOptions says; parts outside the image are filled by
/// replicating the border. Ensures: a square CV_8UC3 image of side round(scale * max(box side)).
inline cv::Mat crop_face(const cv::Mat& rgb, const cv::Rect2f& box, const CropOptions& options = {}) {
  if (!(box.width > 0 && box.height > 0) || !(options.scale > 0.0)) {
    throw ImageError("crop_face needs a non-empty box and a positive scale");
  }
  const int side = std::max(1, static_cast<int>(std::lround(options.scale * std::max(box.width, box.height))));
  const double cx = box.x + box.width / 2.0;
  const double cy = box.y + box.height / 2.0 + options.shift_down * box.height;
  const cv::Rect square(static_cast<int>(std::lround(cx - side / 2.0)),
                        static_cast<int>(std::lround(cy - side / 2.0)), side, side);
  const cv::Rect inside = square & cv::Rect(0, 0, rgb.cols, rgb.rows);
  if (inside.area() == 0) throw ImageError("crop_face: the box lies outside the image");
  cv::Mat crop;
  cv::copyMakeBorder(rgb(inside), crop, inside.y - square.y, square.br().y - inside.br().y,
                     inside.x - square.x, square.br().x - inside.br().x, cv::BORDER_REPLICATE);
  return crop;
}

/// The central `fraction` of an image as a square, for photos that are already aligned face
/// crops (LFW-style). Requires 0 < fraction <= 1.
inline cv::Mat center_crop(const cv::Mat& image, double fraction) {
  if (!(fraction > 0.0 && fraction <= 1.0) || image.empty()) {
    throw ImageError("center_crop needs a non-empty image and a fraction in (0, 1], got " +
                     std::to_string(fraction));
  }
  const int side = std::max(1, static_cast<int>(std::lround(std::min(image.cols, image.rows) * fraction)));
  return image(cv::Rect((image.cols - side) / 2, (image.rows - side) / 2, side, side)).clone();
}

}  // namespace siamese
