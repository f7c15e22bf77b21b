#pragma once

// Test videos made from photos: heads cut from portraits walk across a 640x480 textured
// background, entering, crossing and leaving, written as MJPG AVI (which OpenCV writes and
// reads without codecs from outside). For the video tests and the tracking benchmark.

#include <siamese/siamese.hpp>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace video_scene {

/// A head walking in a straight line from `from` to `to` (its centre, frame pixels) between two frames.
struct Walker {
  std::string person;
  cv::Mat head;  ///< 8-bit RGB, square
  cv::Point2f from, to;
  int first_frame = 0, last_frame = 0;

  cv::Point2f centre(int frame) const {
    const float t = static_cast<float>(frame - first_frame) / static_cast<float>(std::max(1, last_frame - first_frame));
    return from + (to - from) * t;
  }
};

/// The head in `photo` (its largest face's box, widened to take in hair and chin), `side` px square.
inline cv::Mat head_from(siamese::FacePipeline& pipeline, const std::filesystem::path& photo, int side) {
  const auto rgb = siamese::read_image(photo);
  const auto face = pipeline.find_faces({rgb}, {photo.string()}).front().detection.box;
  const float grown = std::max(face.width, face.height) * 1.6F;
  const cv::Point2f centre = (face.tl() + face.br()) * 0.5F;
  cv::Rect square(cv::Point(static_cast<int>(centre.x - grown / 2), static_cast<int>(centre.y - grown / 2)),
                  cv::Size(static_cast<int>(grown), static_cast<int>(grown)));
  square &= cv::Rect(0, 0, rgb.cols, rgb.rows);
  cv::Mat head;
  cv::resize(rgb(square), head, cv::Size(side, side), 0, 0, cv::INTER_AREA);
  return head;
}

/// Frame `frame` of the scene: a fixed textured background, the walkers on screen drawn in order
/// (later walkers in front).
inline cv::Mat frame_of(const std::vector<Walker>& walkers, int frame, cv::Size size = {640, 480}) {
  cv::Mat rgb(size, CV_8UC3);
  cv::RNG rng(11);
  rng.fill(rgb, cv::RNG::UNIFORM, 90, 150);
  cv::GaussianBlur(rgb, rgb, cv::Size(0, 0), 4);
  for (const auto& w : walkers) {
    if (frame < w.first_frame || frame > w.last_frame) continue;
    const auto c = w.centre(frame);
    const cv::Rect at(static_cast<int>(c.x) - w.head.cols / 2, static_cast<int>(c.y) - w.head.rows / 2, w.head.cols, w.head.rows);
    const cv::Rect inside = at & cv::Rect(0, 0, size.width, size.height);
    if (inside.empty()) continue;
    w.head(inside - at.tl()).copyTo(rgb(inside));
  }
  return rgb;
}

/// Writes frames 0..frames-1 of the scene to `file` as MJPG AVI at 25 frames/s.
inline void write_avi(const std::vector<Walker>& walkers, int frames, const std::filesystem::path& file,
                      cv::Size size = {640, 480}) {
  cv::VideoWriter writer(file.string(), cv::CAP_OPENCV_MJPEG, cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), 25, size);
  if (!writer.isOpened()) throw siamese::Error("cannot write test video '" + file.string() + "'");
  cv::Mat bgr;
  for (int f = 0; f < frames; ++f) {
    cv::cvtColor(frame_of(walkers, f, size), bgr, cv::COLOR_RGB2BGR);
    writer.write(bgr);
  }
}

/// Writes frames 0..frames-1 of the scene into `folder` as JPEG files named in frame order.
inline void write_frames(const std::vector<Walker>& walkers, int frames, const std::filesystem::path& folder,
                         cv::Size size = {640, 480}) {
  std::filesystem::create_directories(folder);
  cv::Mat bgr;
  for (int f = 0; f < frames; ++f) {
    cv::cvtColor(frame_of(walkers, f, size), bgr, cv::COLOR_RGB2BGR);
    const auto file = folder / cv::format("frame-%05d.jpg", f);
    if (!cv::imwrite(file.string(), bgr)) throw siamese::Error("cannot write test frame '" + file.string() + "'");
  }
}

/// Which walker each track follows: a detected box belongs to the walker on screen whose centre
/// is nearest; a track whose box moves to another walker is an identity switch.
class WalkerOfTrack {
 public:
  explicit WalkerOfTrack(const std::vector<Walker>& walkers) : walkers_(walkers) {}

  void observe(const siamese::FrameTracks& frame) {
    for (const auto& face : frame.faces) {
      if (!face.detected) continue;
      const cv::Point2f centre = (face.box.tl() + face.box.br()) * 0.5F;
      std::size_t nearest = 0;
      double best = 1e18;
      for (std::size_t w = 0; w < walkers_.size(); ++w) {
        if (frame.frame < walkers_[w].first_frame || frame.frame > walkers_[w].last_frame) continue;
        const double d = cv::norm(walkers_[w].centre(frame.frame) - centre);
        if (d < best) best = d, nearest = w;
      }
      const auto [it, fresh] = walker_.emplace(face.track, nearest);
      if (!fresh && it->second != nearest) {
        ++switches_;
        it->second = nearest;
      }
    }
  }

  /// The person the track's boxes followed, or "" for a track never detected.
  std::string person(int track) const {
    const auto it = walker_.find(track);
    return it == walker_.end() ? std::string() : walkers_[it->second].person;
  }
  std::size_t switches() const { return switches_; }

 private:
  const std::vector<Walker>& walkers_;
  std::map<int, std::size_t> walker_;
  std::size_t switches_ = 0;
};

/// Two people from the example photos: `a` enters on the left and walks right, `b` enters on the
/// right a little lower and walks left, in front of `a` as they cross; both leave. 100 frames.
inline std::vector<Walker> crossing(const cv::Mat& head_a, const std::string& a, const cv::Mat& head_b, const std::string& b) {
  return {{a, head_a, {-40, 220}, {700, 220}, 0, 95}, {b, head_b, {690, 300}, {-50, 300}, 5, 99}};
}

}  // namespace video_scene
