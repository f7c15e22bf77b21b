#pragma once

#include <siamese/detail/helper_network.hpp>
#include <siamese/device.hpp>
#include <siamese/errors.hpp>
#include <siamese/preprocess.hpp>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/objdetect.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace siamese {

/// No face was found where one was required. `what()` names the image.
class NoFaceFound : public ImageError {
 public:
  using ImageError::ImageError;
};

/// A face found in an image: its box in image pixels (x, y, width, height; may reach past the
/// image border) and the detector's confidence in (0, 1].
struct FaceDetection {
  cv::Rect2f box;
  float score = 1.0F;
};

/// Which faces to keep when a photo has several.
enum class FacePolicy {
  largest,  ///< the face with the largest box
  central,  ///< the face whose box centre is nearest the image centre (datasets like LFW)
  all,      ///< every face
};

/// The interface of face detectors: `detect` returns every face found in an 8-bit RGB image,
/// most confident first. Detectors keep scratch state: use one per thread.
class FaceDetector {
 public:
  virtual ~FaceDetector() = default;
  virtual std::vector<FaceDetection> detect(const cv::Mat& rgb) = 0;

  /// The faces of several images, element i for images[i], as detect() finds them. Detectors
  /// that run a network override it to run many images per call; this one runs them in turn.
  virtual std::vector<std::vector<FaceDetection>> detect_batch(const std::vector<cv::Mat>& images) {
    std::vector<std::vector<FaceDetection>> faces;
    faces.reserve(images.size());
    for (const auto& image : images) faces.push_back(detect(image));
    return faces;
  }
};

/// Applies `policy` to the faces found in an image of `image_size`.
inline std::vector<FaceDetection> select_faces(std::vector<FaceDetection> faces, FacePolicy policy,
                                               cv::Size image_size = {}) {
  if (faces.size() < 2 || policy == FacePolicy::all) return faces;
  if (policy == FacePolicy::largest) {
    return {*std::max_element(faces.begin(), faces.end(),
                              [](const auto& a, const auto& b) { return a.box.area() < b.box.area(); })};
  }
  const cv::Point2f centre(image_size.width / 2.0F, image_size.height / 2.0F);
  auto offset = [&](const FaceDetection& f) { return cv::norm((f.box.tl() + f.box.br()) / 2 - centre); };
  return {*std::min_element(faces.begin(), faces.end(), [&](const auto& a, const auto& b) { return offset(a) < offset(b); })};
}

namespace detail {

inline void check_rgb(const cv::Mat& rgb, const char* who) {
  if (rgb.empty() || rgb.type() != CV_8UC3) {
    throw ImageError(std::string(who) + " needs a non-empty 8-bit 3-channel RGB image, got type " +
                     std::to_string(rgb.type()) + " size " + std::to_string(rgb.cols) + "x" +
                     std::to_string(rgb.rows));
  }
}

inline float intersection_over_union(const cv::Rect2f& a, const cv::Rect2f& b) {
  const float inter = (a & b).area();
  const float uni = a.area() + b.area() - inter;
  return uni > 0.0F ? inter / uni : 0.0F;
}

/// Greedy non-maximum suppression: keeps the most confident box, drops the boxes that overlap
/// it by more than `iou_threshold`, repeats. Ensures: the kept faces, most confident first.
inline std::vector<FaceDetection> non_max_suppression(std::vector<FaceDetection> faces,
                                                      float iou_threshold) {
  std::stable_sort(faces.begin(), faces.end(),
                   [](const auto& a, const auto& b) { return a.score > b.score; });
  std::vector<FaceDetection> kept;
  for (const auto& face : faces) {
    const bool overlaps = std::any_of(kept.begin(), kept.end(), [&](const auto& k) {
      return intersection_over_union(k.box, face.box) > iou_threshold;
    });
    if (!overlaps) kept.push_back(face);
  }
  return kept;
}

inline float sigmoid(float x) { return 1.0F / (1.0F + std::exp(-x)); }

}  // namespace detail

/// Where Debian's opencv-data package puts OpenCV's frontal-face Haar cascade.
inline constexpr const char* default_haar_cascade =
    "/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml";

/// OpenCV's Haar-cascade face detector: always available, fast, the fallback detector.
/// Scores are 1: the cascade gives none.
class HaarFaceDetector : public FaceDetector {
 public:
  /// Requires: an OpenCV cascade XML file (default: opencv-data's frontal face cascade).
  /// Throws FileError when it is missing or cannot be parsed.
  explicit HaarFaceDetector(const std::filesystem::path& cascade = default_haar_cascade) {
    std::error_code ec;
    std::string why = "install Debian's opencv-data, or pass the path of a cascade XML";
    bool loaded = false;
    if (std::filesystem::is_regular_file(cascade, ec)) {
      try {
        loaded = classifier_.load(cascade.string());
      } catch (const cv::Exception& e) {  // a malformed XML file: OpenCV's parser throws
        why = "not a cascade XML: " + e.msg;
      }
    }
    if (!loaded) throw FileError("cannot load Haar cascade '" + cascade.string() + "' (" + why + ")");
  }

  /// Ensures: boxes inside the image, largest first.
  std::vector<FaceDetection> detect(const cv::Mat& rgb) override {
    detail::check_rgb(rgb, "HaarFaceDetector");
    cv::Mat gray;
    cv::cvtColor(rgb, gray, cv::COLOR_RGB2GRAY);
    cv::equalizeHist(gray, gray);
    const int min_side = std::max(24, std::min(gray.cols, gray.rows) / 12);
    std::vector<cv::Rect> boxes;
    classifier_.detectMultiScale(gray, boxes, 1.1, 5, 0, cv::Size(min_side, min_side));
    std::sort(boxes.begin(), boxes.end(),
              [](const cv::Rect& a, const cv::Rect& b) { return a.area() > b.area(); });
    std::vector<FaceDetection> faces;
    for (const auto& box : boxes) faces.push_back({cv::Rect2f(box), 1.0F});
    return faces;
  }

 private:
  cv::CascadeClassifier classifier_;
};

/// Options of the tiny face detector; thresholds are face-api's defaults.
struct TinyFaceDetectorOptions {
  /// The network's input sides, each a multiple of 32. The photo is run at every size and the
  /// boxes merged by non-maximum suppression: face-api's single 416 misses about 1 in 7 LFW
  /// faces (faces that fill half the photo score low when enlarged), which a second pass at
  /// 192 finds, for 21% more multiply-adds.
  std::vector<int> input_sizes = {416, 192};
  /// Run a photo smaller than an input size at its own side rounded up to a multiple of 32
  /// instead (250x250 LFW photos: 256 and 192, not 416 and 192): enlarging adds no detail. On
  /// LFW View 2 this halves the detector's multiply-adds, finds a face in 9 more of the 7,701
  /// photos and leaves the 10-fold accuracy where it was (99.12% +- 0.21 against 99.10% +- 0.34,
  /// with mirror averaging).
  bool fit_small_photos = true;
  /// Run a photo's input sizes from the smallest up and stop at the first that finds a face,
  /// instead of running every size and merging: for pipelines that keep one face per photo
  /// (FacePipeline::from_models turns it on unless its policy is FacePolicy::all; accuracy
  /// figures at FacePipelineOptions::coarse_to_fine_detection). The smallest pass is the
  /// cheapest and the one that finds large faces; on LFW View 2 the 192 pass alone finds a
  /// face in all but 92 of 7,701 photos, and the face the central policy keeps differs from
  /// the merged passes' (IoU < 0.5) in 3 of them; the detector does 2.7x fewer multiply-adds
  /// there (2.1-2.5x its photos/s, benchmarks/pipeline_breakdown).
  bool coarse_to_fine = false;
  float score_threshold = 0.5F;  ///< keep boxes whose score is above this
  float iou_threshold = 0.4F;    ///< non-maximum suppression overlap
  Device device = Device::automatic();
  /// Photos per network call in detect_batch(); 0 chooses from the device: one on a CPU,
  /// where a photo's activations stay in cache (16 LFW photos per call at 256 ran 1.5-2x
  /// slower per photo than one, benchmarks/pipeline_breakdown), 16 on a GPU.
  std::size_t photos_per_call = 0;
};

/// The tiny face detector of @vladmandic/face-api (a Tiny-YOLOv2 on a small MobileNet), as
/// converted by tools/convert_faceapi.py: network in TorchScript, box decoding and
/// non-maximum suppression here, as in face-api's TinyYolov2Base.
///
/// The photo is padded to a square at the bottom and right (zeros) and resized to
/// the network's input size; the network gives a grid of size/32 cells, 5 anchors per cell, each
/// (x, y, w, h, score) before sigmoid/exp.
class TinyFaceDetector : public FaceDetector {
 public:
  /// Throws FileError/ModelError/MetadataError for a missing or wrong model file, Error for
  /// options out of range.
  explicit TinyFaceDetector(const std::filesystem::path& model, TinyFaceDetectorOptions options = {})
      : options_(checked(std::move(options))),
        network_((detail::apply_process_defaults(options_.device), model.string()), options_.device) {}

  std::vector<FaceDetection> detect(const cv::Mat& rgb) override { return detect_batch({rgb}).front(); }

  /// The faces of each image, as detect() finds them, photos that run at the same input size
  /// taken options.photos_per_call at a time.
  std::vector<std::vector<FaceDetection>> detect_batch(const std::vector<cv::Mat>& images) override {
    // Round r runs pass r of every image still searching (under coarse_to_fine, those that
    // have found nothing), grouped by input size; each image's passes merge in their order.
    std::vector<std::vector<int>> pass_sizes(images.size());
    std::vector<std::vector<std::vector<FaceDetection>>> found_by_pass(images.size());
    std::size_t rounds = 0;
    for (std::size_t i = 0; i < images.size(); ++i) {
      detail::check_rgb(images[i], "TinyFaceDetector");
      pass_sizes[i] = input_sizes_for(std::max(images[i].cols, images[i].rows));
      found_by_pass[i].resize(pass_sizes[i].size());
      rounds = std::max(rounds, pass_sizes[i].size());
    }
    std::vector<bool> found_any(images.size(), false);
    for (std::size_t pass = 0; pass < rounds; ++pass) {
      std::map<int, std::vector<std::size_t>> images_at_size;
      for (std::size_t i = 0; i < images.size(); ++i) {
        if (pass < pass_sizes[i].size() && !(options_.coarse_to_fine && found_any[i])) {
          images_at_size[pass_sizes[i][pass]].push_back(i);
        }
      }
      for (const auto& [size, members] : images_at_size) {
        for (std::size_t first = 0; first < members.size(); first += options_.photos_per_call) {
          const auto last = std::min(members.size(), first + options_.photos_per_call);
          const std::vector<std::size_t> call(members.begin() + first, members.begin() + last);
          auto found = run_network(images, call, size);
          for (std::size_t k = 0; k < call.size(); ++k) {
            found_any[call[k]] = found_any[call[k]] || !found[k].empty();
            found_by_pass[call[k]][pass] = std::move(found[k]);
          }
        }
      }
    }
    std::vector<std::vector<FaceDetection>> faces(images.size());
    for (std::size_t i = 0; i < images.size(); ++i) {
      for (const auto& found : found_by_pass[i]) faces[i].insert(faces[i].end(), found.begin(), found.end());
      faces[i] = detail::non_max_suppression(std::move(faces[i]), options_.iou_threshold);
    }
    return faces;
  }

  /// The input sides a photo whose longer side is `side` pixels runs at, in the order they run:
  /// the options' sizes, each lowered to `side` rounded up to a multiple of 32 under
  /// fit_small_photos, without repeats, in the options' order (smallest first under
  /// coarse_to_fine).
  std::vector<int> input_sizes_for(int side) const {
    std::vector<int> sizes;
    const int fitted = std::max(32, (side + 31) / 32 * 32);
    for (int size : options_.input_sizes) {
      if (options_.fit_small_photos) size = std::min(size, fitted);
      if (std::find(sizes.begin(), sizes.end(), size) == sizes.end()) sizes.push_back(size);
    }
    if (options_.coarse_to_fine) std::sort(sizes.begin(), sizes.end());
    return sizes;
  }

  /// Decodes a raw output [1, 25, G, G] into boxes in a square image of side `side` pixels,
  /// with non-maximum suppression. Public for tests: face-api's decoding is the reference.
  std::vector<FaceDetection> decode(const torch::Tensor& output, float side) const {
    const int64_t grid = output.dim() == 4 ? output.size(2) : 0;
    if (output.dim() != 4 || output.size(0) != 1 || output.size(1) != anchors * 5 ||
        grid < 1 || output.size(3) != grid) {
      throw ModelError("'" + network_.file() + "' returned " + detail::shape_string(output) + ", expected [1, " +
                       std::to_string(anchors * 5) + ", G, G]");
    }
    const auto cells = output.contiguous().view({anchors, 5, grid, grid});
    const auto a = cells.accessor<float, 4>();
    std::vector<FaceDetection> faces;
    for (int64_t row = 0; row < grid; ++row) {
      for (int64_t col = 0; col < grid; ++col) {
        for (int anchor = 0; anchor < anchors; ++anchor) {
          const float score = detail::sigmoid(a[anchor][4][row][col]);
          if (score <= options_.score_threshold) continue;
          const float cx = (static_cast<float>(col) + detail::sigmoid(a[anchor][0][row][col])) / grid;
          const float cy = (static_cast<float>(row) + detail::sigmoid(a[anchor][1][row][col])) / grid;
          const float w = std::exp(a[anchor][2][row][col]) * anchor_sizes[anchor][0] / grid;
          const float h = std::exp(a[anchor][3][row][col]) * anchor_sizes[anchor][1] / grid;
          faces.push_back({cv::Rect2f((cx - w / 2) * side, (cy - h / 2) * side, w * side, h * side), score});
        }
      }
    }
    return detail::non_max_suppression(std::move(faces), options_.iou_threshold);
  }

 private:
  static TinyFaceDetectorOptions checked(TinyFaceDetectorOptions options) {
    if (options.input_sizes.empty()) throw Error("TinyFaceDetector needs at least one input size");
    for (int size : options.input_sizes) {
      if (size < 32 || size % 32 != 0 || size > 2048) {
        throw Error("TinyFaceDetector input sizes must be multiples of 32 in 32..2048, got " +
                    std::to_string(size));
      }
    }
    if (!(options.score_threshold > 0.0F && options.score_threshold < 1.0F) ||
        !(options.iou_threshold > 0.0F && options.iou_threshold <= 1.0F)) {
      throw Error("TinyFaceDetector thresholds must lie in (0, 1)");
    }
    if (options.photos_per_call == 0) options.photos_per_call = options.device.is_cuda() ? 16 : 1;
    return options;
  }

  /// The boxes the network finds in images[i] for each i of `members`, in one call at `size`:
  /// each photo padded to a square at the bottom and right (zeros), then resized. Only the
  /// small resized squares are held for the call, not padded copies of large photos.
  std::vector<std::vector<FaceDetection>> run_network(const std::vector<cv::Mat>& images,
                                                      const std::vector<std::size_t>& members, int size) {
    std::vector<cv::Mat> inputs;
    for (auto i : members) {
      const auto& rgb = images[i];
      const int side = std::max(rgb.cols, rgb.rows);
      cv::Mat square;
      cv::copyMakeBorder(rgb, square, 0, side - rgb.rows, 0, side - rgb.cols, cv::BORDER_CONSTANT, cv::Scalar::all(0));
      inputs.push_back(detail::resized_for_input(square, cv::Size(size, size)));
    }
    auto spec = network_.input_spec();
    spec.height = spec.width = size;
    const auto output = network_.run(inputs, spec);
    std::vector<std::vector<FaceDetection>> found;
    for (std::size_t k = 0; k < members.size(); ++k) {
      const auto& rgb = images[members[k]];
      found.push_back(decode(output.narrow(0, static_cast<std::int64_t>(k), 1),
                             static_cast<float>(std::max(rgb.cols, rgb.rows))));
    }
    return found;
  }

  static constexpr int anchors = 5;
  static constexpr float anchor_sizes[anchors][2] = {
      {1.603231F, 2.094468F}, {6.041143F, 7.080126F}, {2.882459F, 3.518061F},
      {4.266906F, 5.178857F}, {9.041765F, 10.66308F}};

  TinyFaceDetectorOptions options_;
  detail::HelperNetwork network_;
};

}  // namespace siamese
