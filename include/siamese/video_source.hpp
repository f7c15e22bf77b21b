#pragma once

// Frames to work on, from a video file, a camera, or a folder of still frames, through
// OpenCV's VideoCapture, each frame 8-bit RGB, and every way a source can fail a VideoError
// naming it.

#include <siamese/errors.hpp>
#include <siamese/image.hpp>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <string>
#include <vector>

namespace siamese {

/// A video source that cannot be opened or read: a missing or empty file, one that is not a
/// video, a camera that is not there, a video that ends before the frames its header declares.
/// `what()` names the source.
class VideoError : public Error {
 public:
  using Error::Error;
};

/// Frames in order from one source. Not thread-safe.
class VideoSource {
 public:
  /// `source` is a camera index (up to four digits: "0"; on Linux a Video4Linux device), a
  /// folder of frames (its .jpg, .jpeg, .png, .bmp and .webp files in name order, read as
  /// read_image() reads photos), or a video file (any container and codec OpenCV's FFmpeg
  /// back-end reads; MJPG AVI needs nothing outside OpenCV).
  /// Throws VideoError naming `source` when it cannot be opened.
  static VideoSource open(const std::string& source) {
    VideoSource video;
    video.name_ = source;
    std::error_code ec;
    const bool camera = !source.empty() && source.size() <= 4 && std::all_of(source.begin(), source.end(), [](unsigned char c) { return std::isdigit(c); });
    if (camera && !std::filesystem::exists(source, ec)) {
      video.live_ = true;
      video.open_capture([&](cv::VideoCapture& capture) { return capture.open(std::stoi(source), camera_backend); }, "camera " + source);
      return video;
    }
    if (std::filesystem::is_directory(source, ec)) {
      video.frames_ = frame_files(source);
      if (video.frames_.empty()) throw VideoError("frame folder '" + source + "' holds no image (" + photo_extensions + ")");
      return video;
    }
    if (!std::filesystem::is_regular_file(source, ec)) throw VideoError("video '" + source + "' does not exist");
    if (std::filesystem::file_size(source, ec) == 0) throw VideoError("video '" + source + "' is empty");
    // FFmpeg's reader, else OpenCV's own for MJPG AVI; not every back-end in turn, each of
    // which would log its failure to standard error.
    video.open_capture([&](cv::VideoCapture& capture) { return capture.open(source, cv::CAP_FFMPEG) || capture.open(source, cv::CAP_OPENCV_MJPEG); },
                       "video '" + source + "'");
    const double declared = video.capture_.get(cv::CAP_PROP_FRAME_COUNT);
    video.declared_frames_ = declared > 0 ? static_cast<long long>(declared) : 0;
    return video;
  }

  /// The next frame, 8-bit RGB, into `rgb`; false at the end of the source.
  /// Throws VideoError naming the source when a video file ends before the frame count its
  /// header declares (truncated or damaged), ImageError naming the file for a frame of a
  /// folder that cannot be decoded.
  bool read(cv::Mat& rgb) {
    if (!capture_.isOpened()) {
      if (next_file_ >= frames_.size()) return false;
      rgb = read_image(frames_[next_file_++]);
      ++frames_read_;
      return true;
    }
    cv::Mat bgr;
    bool got = false;
    try {
      got = capture_.read(bgr) && !bgr.empty();
    } catch (const cv::Exception& e) {
      throw VideoError("cannot read frame " + std::to_string(frames_read_) + " of '" + name_ + "': " + e.msg);
    }
    if (!got) {
      capture_.release();
      // A frame count can be an estimate (from the duration) in some containers: one frame short passes.
      if (declared_frames_ > 0 && frames_read_ + 1 < declared_frames_) {
        throw VideoError("video '" + name_ + "' ended after " + std::to_string(frames_read_) + " of the " +
                         std::to_string(declared_frames_) + " frames its header declares: truncated or damaged");
      }
      return false;
    }
    rgb = detail::to_rgb8(bgr);  // VideoCapture gives BGR (or grey)
    ++frames_read_;
    return true;
  }

  /// Frames per second the source declares; 0 when it declares none (a folder of frames).
  double fps() const { return fps_; }
  /// Frames the source declares (a video file's header, a folder's files); 0 for a camera or
  /// where none is declared.
  long long declared_frames() const { return frames_.empty() ? declared_frames_ : static_cast<long long>(frames_.size()); }
  long long frames_read() const { return frames_read_; }
  bool is_camera() const { return live_; }
  const std::string& name() const { return name_; }

 private:
  VideoSource() = default;

  template <class Open>
  void open_capture(Open open, const std::string& what) {
    bool opened = false;
    try {
      opened = open(capture_) && capture_.isOpened();
    } catch (const cv::Exception& e) {
      throw VideoError(what + " cannot be opened: " + e.msg);
    }
    if (!opened) throw VideoError(what + (live_ ? " cannot be opened: no such camera, or it is busy" : " cannot be opened: not a video OpenCV can read"));
    fps_ = std::max(0.0, capture_.get(cv::CAP_PROP_FPS));
  }

  static std::vector<std::filesystem::path> frame_files(const std::filesystem::path& folder) {
    std::vector<std::filesystem::path> files;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(folder)) {
      if (entry.is_regular_file(ec) && is_photo_file(entry.path())) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    return files;
  }

#ifdef __linux__
  /// Video4Linux, the cameras of Linux. Every back-end in turn (CAP_ANY) would try FireWire and
  /// GenICam cameras too, whose libraries log to standard error and keep their device lists.
  static constexpr int camera_backend = cv::CAP_V4L2;
#else
  static constexpr int camera_backend = cv::CAP_ANY;
#endif

  std::string name_;
  cv::VideoCapture capture_;
  std::vector<std::filesystem::path> frames_;
  std::size_t next_file_ = 0;
  long long declared_frames_ = 0, frames_read_ = 0;
  double fps_ = 0.0;
  bool live_ = false;
};

}  // namespace siamese
