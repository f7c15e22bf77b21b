#pragma once

// Faces in video: detect (every frame or every few), align and score each face, follow it with
// a FaceTracker, and embed a track only when it starts or shows a better view, so that a face
// on screen for a minute is embedded a handful of times, not 1,500.

#include <siamese/backbone.hpp>
#include <siamese/errors.hpp>
#include <siamese/face.hpp>
#include <siamese/preprocess.hpp>
#include <siamese/quality.hpp>
#include <siamese/track.hpp>

#include <opencv2/core.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace siamese {

/// How a VideoFaceTracker works.
struct VideoTrackerOptions {
  /// Detect on every this many frames (1: every frame); between them tracks keep their
  /// predicted boxes. TrackerOptions::max_missed_frames must exceed it.
  int detect_every = 1;
  /// Follow at most this many faces per frame, the largest; 0 follows every face.
  std::size_t max_faces = 0;
  TrackerOptions tracker;
  QualityScale quality;
};

/// A track as seen in one frame.
struct TrackedFace {
  int track = 0;          ///< Track::id
  cv::Rect2f box;         ///< detected this frame, or predicted from its motion
  bool detected = false;  ///< a detection joined it this frame
  double quality = 0.0;   ///< FaceQuality::score of this frame's view (0 when not detected)
};

/// What VideoFaceTracker::process() found in one frame.
struct FrameTracks {
  int frame = 0;                   ///< 0, 1, ... in the order frames came
  bool detection_ran = false;
  std::vector<TrackedFace> faces;  ///< the live tracks, in the order they started
  std::vector<int> embedded;       ///< tracks with a new embedding (Track::embedding): identify them again
  std::vector<Track> ended;        ///< tracks that ended this frame
};

/// detect -> align -> quality -> track -> embed, frame after frame. Owns its face pipeline
/// (which holds detectors with scratch state) and a copy of the backbone (copies share one
/// module). Deterministic for the same frames. Not thread-safe: one per video.
template <class Backbone = TorchScriptBackbone>
class VideoFaceTracker {
 public:
  /// Requires: a pipeline with the chip size the backbone takes. Throws Error for options out
  /// of range, ShapeError for a chip size the backbone does not take.
  VideoFaceTracker(Backbone backbone, FacePipeline pipeline, VideoTrackerOptions options = {})
      : backbone_(std::move(backbone)), pipeline_(std::move(pipeline)), options_(options), tracker_(options.tracker) {
    if (options_.detect_every < 1) throw Error("VideoTrackerOptions::detect_every must be at least 1, got " + std::to_string(options_.detect_every));
    if (options_.tracker.max_missed_frames < options_.detect_every) {
      throw Error("TrackerOptions::max_missed_frames (" + std::to_string(options_.tracker.max_missed_frames) +
                  ") must be at least detect_every (" + std::to_string(options_.detect_every) + ")");
    }
    const auto& spec = backbone_.input_spec();
    if (spec.height != pipeline_.options().chip_size || spec.width != pipeline_.options().chip_size) {
      throw ShapeError("VideoFaceTracker: the pipeline's " + std::to_string(pipeline_.options().chip_size) + " px chips do not fit the backbone's " +
                       std::to_string(spec.width) + "x" + std::to_string(spec.height) + " input");
    }
  }

  /// The next frame, 8-bit RGB. Throws ImageError for a frame that is not.
  FrameTracks process(const cv::Mat& rgb) {
    FrameTracks out;
    out.frame = next_frame_++;
    out.detection_ran = out.frame % options_.detect_every == 0;
    std::vector<int> detected_tracks;
    std::vector<double> detected_quality;
    if (out.detection_ran) {
      auto detections = pipeline_.detect(rgb);
      if (options_.max_faces > 0 && detections.size() > options_.max_faces) {
        std::stable_sort(detections.begin(), detections.end(),
                         [](const FaceDetection& a, const FaceDetection& b) { return a.box.area() > b.box.area(); });
        detections.resize(options_.max_faces);
      }
      auto faces = pipeline_.align_detections(std::vector<cv::Mat>(detections.size(), rgb), detections);
      std::vector<TrackerInput> inputs;
      for (const auto& face : faces) inputs.push_back({face.detection, face_quality(face, options_.quality).score, face.chip});
      auto step = tracker_.update(out.frame, inputs, [&](const std::vector<std::size_t>& wanted) {
        std::vector<cv::Mat> chips;
        for (const auto i : wanted) chips.push_back(faces[i].chip);
        torch::InferenceMode guard;
        ++embedding_calls_;
        return backbone_.embed(to_input_batch(chips, backbone_.input_spec())).to(torch::kCPU);
      });
      out.embedded = std::move(step.embedded);
      out.ended = std::move(step.ended);
      detected_tracks = std::move(step.track_of_input);
      for (const auto& input : inputs) detected_quality.push_back(input.quality);
    } else {
      out.ended = tracker_.skip(out.frame);
    }
    for (const auto& track : tracker_.tracks()) {
      TrackedFace face{track.id, track.predicted_box(out.frame), false, 0.0};
      const auto joined = std::find(detected_tracks.begin(), detected_tracks.end(), track.id);
      if (joined != detected_tracks.end()) {
        face.detected = true;
        face.quality = detected_quality[static_cast<std::size_t>(joined - detected_tracks.begin())];
      }
      out.faces.push_back(face);
    }
    return out;
  }

  /// Ends every track (the video is over), in the order they started.
  std::vector<Track> finish() { return tracker_.finish(); }

  /// A live track by id; throws Error when there is none.
  const Track& track(int id) const {
    for (const auto& t : tracker_.tracks()) {
      if (t.id == id) return t;
    }
    throw Error("VideoFaceTracker has no live track " + std::to_string(id));
  }

  const Backbone& backbone() const { return backbone_; }
  const FacePipeline& pipeline() const { return pipeline_; }
  int frames() const { return next_frame_; }
  std::size_t embedding_calls() const { return embedding_calls_; }

 private:
  Backbone backbone_;
  FacePipeline pipeline_;
  VideoTrackerOptions options_;
  FaceTracker tracker_;
  int next_frame_ = 0;
  std::size_t embedding_calls_ = 0;
};

}  // namespace siamese
