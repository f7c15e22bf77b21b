#pragma once

// Faces followed from frame to frame: detections joined into tracks by box overlap, with the
// embedding deciding where overlap cannot (people crossing) and joining a face back to the
// track it left; each track embedded when it starts and when a better view of it appears, not
// every frame.

#include <siamese/detect.hpp>
#include <siamese/distance.hpp>
#include <siamese/errors.hpp>

#include <opencv2/core.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cstddef>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace siamese {

/// How FaceTracker joins detections into tracks.
struct TrackerOptions {
  /// A detection continues a track when its box overlaps the track's predicted box by at least
  /// this intersection over union.
  double min_overlap = 0.3;
  /// A track ends when this many frames pass without a detection joining it. Must exceed the
  /// gap between detection frames when detection runs every few frames.
  int max_missed_frames = 12;
  /// A detection that overlaps no track joins a track that missed this frame when their
  /// embeddings lie within this distance (EuclideanDistance; the backbone's 1:1 threshold is
  /// the natural choice), else it starts a track. 0 turns it off.
  double rejoin_distance = 0.0;
  /// A track is embedded again when a view's quality exceeds its best view's by this much.
  double better_view_margin = 0.05;
  /// How much of each new box's centre and size moves the track's (1: the detection's alone).
  double smoothing = 0.7;
};

/// A face found in a frame, for FaceTracker::update.
struct TrackerInput {
  FaceDetection detection;
  double quality = 0.0;  ///< e.g. FaceQuality::score: which view of a track is best
  cv::Mat chip;          ///< kept as the track's best chip when this view is its best (may be empty)
};

/// A face followed across frames.
struct Track {
  int id = 0;                  ///< 1, 2, ... in the order tracks start
  int first_frame = 0;
  int last_frame = 0;          ///< the last frame a detection joined it
  cv::Rect2f box;              ///< its box at last_frame, in frame pixels
  cv::Point2f velocity{0, 0};  ///< of its box's centre, pixels per frame
  torch::Tensor embedding;     ///< [D] float32 on the CPU, of its best view
  double best_quality = -1.0;
  int best_frame = 0;
  cv::Mat best_chip;           ///< of its best view, where the input had one
  std::size_t detections = 0;  ///< detections joined
  std::size_t embeddings = 0;  ///< embeddings made for it

  /// Where its box is expected at `frame`: moved on by its velocity since last_frame.
  cv::Rect2f predicted_box(int frame) const {
    const float steps = static_cast<float>(frame - last_frame);
    return {box.x + velocity.x * steps, box.y + velocity.y * steps, box.width, box.height};
  }
};

/// What one FaceTracker::update did.
struct TrackerStep {
  std::vector<int> track_of_input;  ///< the track id each input joined or started, element i for inputs[i]
  std::vector<int> embedded;        ///< tracks with a new embedding this frame: started, or a better view
  std::vector<Track> ended;         ///< tracks that ended this frame (max_missed_frames passed)
};

/// Joins the faces found in consecutive frames into tracks. Knows boxes and embeddings, not
/// images: the caller detects, scores quality and embeds on demand. Deterministic: the same
/// inputs give the same tracks. Not thread-safe.
class FaceTracker {
 public:
  /// Throws Error for options out of range.
  explicit FaceTracker(TrackerOptions options = {}) : options_(checked(options)) {}

  /// The faces found in `frame` (frames increase; detection may skip frames). `embed` is
  /// called as `torch::Tensor embed(const std::vector<std::size_t>& inputs)` and returns
  /// [k, D] embeddings of those inputs, row j for inputs[j]; the tracker asks only for the
  /// inputs it needs (a track starting, a better view, people whose boxes cross, a face
  /// rejoining), at most three calls per frame.
  /// Throws Error when frames go back, ShapeError when `embed` returns other than [k, D].
  template <class Embed>
  TrackerStep update(int frame, const std::vector<TrackerInput>& inputs, Embed&& embed) {
    if (frame < last_frame_) {
      throw Error("FaceTracker frames must not go back: frame " + std::to_string(frame) + " after " + std::to_string(last_frame_));
    }
    last_frame_ = frame;
    TrackerStep step;
    step.track_of_input.assign(inputs.size(), 0);
    std::vector<torch::Tensor> embeddings(inputs.size());
    auto embed_inputs = [&](const std::vector<std::size_t>& wanted) {
      std::vector<std::size_t> missing;
      for (const auto i : wanted) {
        if (!embeddings[i].defined()) missing.push_back(i);
      }
      if (missing.empty()) return;
      const torch::Tensor rows = embed(missing);
      if (rows.dim() != 2 || rows.size(0) != static_cast<std::int64_t>(missing.size())) {
        throw ShapeError("FaceTracker: embed returned " + detail::shape_string(rows) + " for " +
                         std::to_string(missing.size()) + " faces, expected [" + std::to_string(missing.size()) + ", D]");
      }
      const auto cpu = rows.detach().to(torch::kCPU, torch::kFloat32);
      for (std::size_t j = 0; j < missing.size(); ++j) embeddings[missing[j]] = cpu[static_cast<std::int64_t>(j)].clone();
    };

    // Candidate pairs: each input against each live track's predicted box.
    std::vector<std::vector<std::size_t>> tracks_of(inputs.size()), inputs_of(tracks_.size());
    std::vector<std::vector<double>> overlap(inputs.size(), std::vector<double>(tracks_.size(), 0.0));
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      for (std::size_t t = 0; t < tracks_.size(); ++t) {
        overlap[i][t] = detail::intersection_over_union(inputs[i].detection.box, tracks_[t].predicted_box(frame));
        if (overlap[i][t] >= options_.min_overlap) {
          tracks_of[i].push_back(t);
          inputs_of[t].push_back(i);
        }
      }
    }
    // Where an input could join several tracks or a track take several inputs, boxes cannot
    // say who is who: those inputs are embedded and paired by embedding distance, nearest
    // first; the rest by overlap, largest first.
    std::vector<std::size_t> contested;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      bool crowded = tracks_of[i].size() > 1;
      for (const auto t : tracks_of[i]) crowded = crowded || inputs_of[t].size() > 1;
      if (crowded) contested.push_back(i);
    }
    embed_inputs(contested);
    std::vector<Pair> pairs;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      for (const auto t : tracks_of[i]) {
        const bool by_embedding = embeddings[i].defined() && tracks_[t].embedding.defined();
        // Embedding pairs rank before overlap pairs (costs below 0), nearest first.
        pairs.push_back({by_embedding ? distance(embeddings[i], tracks_[t].embedding) - 1e6 : -overlap[i][t], i, t});
      }
    }
    std::vector<int> match_of_input(inputs.size(), -1);
    std::vector<bool> track_taken(tracks_.size(), false);
    pair_cheapest_first(std::move(pairs), match_of_input, track_taken);
    // Inputs that joined no track: rejoin a track that missed this frame when near enough in
    // embedding, else start one. Either way they are embedded.
    std::vector<std::size_t> unmatched;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      if (match_of_input[i] < 0) unmatched.push_back(i);
    }
    embed_inputs(unmatched);
    if (options_.rejoin_distance > 0) {
      std::vector<Pair> rejoins;
      for (const auto i : unmatched) {
        for (std::size_t t = 0; t < tracks_.size(); ++t) {
          if (track_taken[t] || !tracks_[t].embedding.defined()) continue;
          const double d = distance(embeddings[i], tracks_[t].embedding);
          if (d <= options_.rejoin_distance) rejoins.push_back({d, i, t});
        }
      }
      pair_cheapest_first(std::move(rejoins), match_of_input, track_taken);
    }
    // Tracks joined by a better view than their best are embedded again, and take it.
    std::vector<bool> better_view(inputs.size(), false);
    std::vector<std::size_t> better;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      const auto t = match_of_input[i];
      better_view[i] = t >= 0 && inputs[i].quality > tracks_[static_cast<std::size_t>(t)].best_quality + options_.better_view_margin;
      if (better_view[i]) better.push_back(i);
    }
    embed_inputs(better);

    for (std::size_t i = 0; i < inputs.size(); ++i) {
      if (match_of_input[i] < 0) {
        Track track;
        track.id = next_id_++;
        track.first_frame = track.last_frame = frame;
        track.box = inputs[i].detection.box;
        match_of_input[i] = static_cast<int>(tracks_.size());
        tracks_.push_back(std::move(track));
      } else {
        follow(tracks_[static_cast<std::size_t>(match_of_input[i])], inputs[i].detection.box, frame);
      }
      auto& track = tracks_[static_cast<std::size_t>(match_of_input[i])];
      ++track.detections;
      step.track_of_input[i] = track.id;
      if (embeddings[i].defined() && (!track.embedding.defined() || better_view[i])) {
        track.embedding = embeddings[i];
        track.best_quality = inputs[i].quality;
        track.best_frame = frame;
        track.best_chip = inputs[i].chip.clone();
        ++track.embeddings;
        step.embedded.push_back(track.id);
      }
    }
    step.ended = end_tracks_missed_since(frame - options_.max_missed_frames);
    return step;
  }

  /// Ends the tracks no detection has joined since `frame - max_missed_frames`, for frames
  /// that run no detection; update() does it itself.
  std::vector<Track> skip(int frame) {
    last_frame_ = std::max(last_frame_, frame);
    return end_tracks_missed_since(frame - options_.max_missed_frames);
  }

  /// Ends every track (the video is over), in the order they started.
  std::vector<Track> finish() { return end_tracks_missed_since(std::numeric_limits<int>::max()); }

  /// The live tracks, in the order they started.
  const std::vector<Track>& tracks() const { return tracks_; }
  const TrackerOptions& options() const { return options_; }

 private:
  /// A possible join of an input to a track, at a cost (lower joins first).
  struct Pair {
    double cost;
    std::size_t input, track;
  };

  /// Joins inputs to tracks greedily, cheapest pair first, each input and track at most once,
  /// writing match_of_input and track_taken; ties keep the pairs' order.
  static void pair_cheapest_first(std::vector<Pair> pairs, std::vector<int>& match_of_input, std::vector<bool>& track_taken) {
    std::stable_sort(pairs.begin(), pairs.end(), [](const Pair& a, const Pair& b) { return a.cost < b.cost; });
    for (const auto& p : pairs) {
      if (match_of_input[p.input] >= 0 || track_taken[p.track]) continue;
      match_of_input[p.input] = static_cast<int>(p.track);
      track_taken[p.track] = true;
    }
  }

  static TrackerOptions checked(TrackerOptions o) {
    if (!(o.min_overlap > 0 && o.min_overlap <= 1)) throw Error("TrackerOptions::min_overlap must lie in (0, 1], got " + std::to_string(o.min_overlap));
    if (o.max_missed_frames < 1) throw Error("TrackerOptions::max_missed_frames must be at least 1, got " + std::to_string(o.max_missed_frames));
    if (!(o.rejoin_distance >= 0)) throw Error("TrackerOptions::rejoin_distance must be at least 0, got " + std::to_string(o.rejoin_distance));
    if (!(o.smoothing > 0 && o.smoothing <= 1)) throw Error("TrackerOptions::smoothing must lie in (0, 1], got " + std::to_string(o.smoothing));
    return o;
  }

  static double distance(const torch::Tensor& a, const torch::Tensor& b) {
    return EuclideanDistance{}(a.unsqueeze(0), b.unsqueeze(0)).item<double>();
  }

  /// Moves `track` to `box`, seen at `frame`: centre and size smoothed, velocity from the move.
  void follow(Track& track, const cv::Rect2f& box, int frame) const {
    const auto a = static_cast<float>(options_.smoothing);
    const auto predicted = track.predicted_box(frame);
    const cv::Point2f old_centre = (track.box.tl() + track.box.br()) * 0.5F;
    const cv::Point2f centre = ((predicted.tl() + predicted.br()) * 0.5F) * (1 - a) + ((box.tl() + box.br()) * 0.5F) * a;
    const float width = track.box.width * (1 - a) + box.width * a, height = track.box.height * (1 - a) + box.height * a;
    const auto steps = static_cast<float>(std::max(1, frame - track.last_frame));
    track.velocity = track.velocity * (1 - a) + ((centre - old_centre) / steps) * a;
    track.box = {centre.x - width / 2, centre.y - height / 2, width, height};
    track.last_frame = frame;
  }

  std::vector<Track> end_tracks_missed_since(int frame) {
    std::vector<Track> ended;
    auto kept = tracks_.begin();
    for (auto& track : tracks_) {
      if (track.last_frame < frame) {
        ended.push_back(std::move(track));
      } else {
        if (&*kept != &track) *kept = std::move(track);
        ++kept;
      }
    }
    tracks_.erase(kept, tracks_.end());
    return ended;
  }

  TrackerOptions options_;
  std::vector<Track> tracks_;
  int next_id_ = 1;
  int last_frame_ = std::numeric_limits<int>::min();
};

}  // namespace siamese
