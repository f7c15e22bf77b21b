// watch: who passes in front of the camera? Faces in a video followed as tracks and identified
// against a gallery once per person, not once per frame.
//
// Frames come from a video file, a camera index or a folder of frames. Faces are detected on
// every frame (or every --every N frames, the tracker carrying their boxes between), aligned
// and scored for quality; each face is followed as a track, embedded when the track starts and
// again when a better view of it appears, and each new embedding is identified in the gallery
// with the gallery's open-set decision (as `gallery identify`: the model's open-set calibration
// at --fpir for the gallery's size, or --threshold).
//
// Events go to standard output (or --events FILE) as JSON lines, one object each:
//   {"event":"appeared", "track":1, "frame":12, "time":0.48, "person":"obama", "known":true,
//    "distance":0.41, "quality":0.83, "box":[x,y,w,h]}
//       a track's first identification;
//   {"event":"identified", ...the same fields...}
//       a better view changed who the track is (or whether it is known);
//   {"event":"left", "track":1, "first_frame":12, "last_frame":95, "first_time":0.48,
//    "last_time":3.8, "person":"obama", "known":true, "distance":0.38, "quality":0.9,
//    "best_frame":40, "box":[x,y,w,h], "detections":80, "embeddings":3, "chip":"DIR/track-1.jpg"}
//       the track ended (no detection for a while, or the video ended): its final answer, from
//       its best view. "person" is null when nobody enrolled passes the decision ("known"
//       false); "chip" is null without --chips. Times are frame / the source's frames per
//       second (25 when it declares none).
// Progress goes to standard error once a second. --annotate OUT.avi writes the frames with
// each track's box and name (MJPG AVI); --chips DIR the best chip of each track.
//
// Models needed: models/faceapi_recognition.pt with its detector and landmark models
// (tools/setup-models.sh), or another backbone given with --model; a gallery made by
// `gallery enroll` with the same model.
//
// Usage: watch DB SOURCE [--every 3] [--max-faces 5] [--events FILE] [--annotate OUT.avi] [--chips DIR]

#include "example_main.hpp"
#include "gallery_decision.hpp"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include <chrono>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>

namespace {

struct Arguments {
  std::string db, source, events = "-", annotate, chips;
  std::string model = "models/faceapi_recognition.pt", device = "auto";
  double threshold = -1.0, fpir = 0.01;
  int every = 1;
  std::size_t max_faces = 0;
};

// Who a track is, as its latest embedding says.
struct Answer {
  std::optional<std::string> person;
  double distance = 0.0;
  double quality = 0.0;
};

nlohmann::json box_json(const cv::Rect2f& box) { return {box.x, box.y, box.width, box.height}; }

// Writes the events, one JSON object per line, flushed so that a reader follows them live.
class EventLog {
 public:
  explicit EventLog(const std::string& file) {
    if (file != "-") {
      file_.open(file);
      if (!file_) throw siamese::FileError("cannot write events to '" + file + "'");
    }
  }
  void write(const nlohmann::json& event) {
    auto& out = file_.is_open() ? static_cast<std::ostream&>(file_) : std::cout;
    out << event.dump() << std::endl;
  }

 private:
  std::ofstream file_;
};

int watch(const Arguments& args) {
  auto source = siamese::VideoSource::open(args.source);  // a bad source is refused before models load
  const auto device = siamese::Device::parse(args.device);
  siamese::BackboneOptions backbone_options;
  backbone_options.device = device;
  siamese::TorchScriptBackbone backbone(args.model, backbone_options);
  const auto gallery = example::open_gallery_to_identify(args.db, backbone);
  std::string decision_source;
  const auto decision = example::gallery_decision("watch", args.model, args.threshold, args.fpir, backbone, gallery, decision_source);
  std::cerr << "watch: decision " << example::describe(decision, decision_source) << '\n';

  const double fps = source.fps() > 0 ? source.fps() : 25.0;
  siamese::FacePipelineOptions pipeline_options;
  pipeline_options.chip_size = backbone.input_spec().height;
  pipeline_options.policy = siamese::FacePolicy::all;
  pipeline_options.rotation_search = siamese::RotationSearch::upright_only;  // a camera's frames are upright
  siamese::VideoTrackerOptions options;
  options.detect_every = args.every;
  options.max_faces = args.max_faces;
  options.tracker.max_missed_frames = std::max(12, 3 * args.every);
  if (const auto fitted = siamese::fitted_decision(args.model, backbone.metadata())) {
    options.tracker.rejoin_distance = fitted->distance_threshold;  // the same person, by the 1:1 rule
  }
  siamese::VideoFaceTracker<> tracker(backbone, siamese::FacePipeline::from_models(std::filesystem::path(args.model).parent_path(),
                                                                                    pipeline_options, device),
                                      options);
  EventLog events(args.events);
  if (!args.chips.empty()) std::filesystem::create_directories(args.chips);
  cv::VideoWriter annotated;

  std::map<int, Answer> answers;  // by track id
  auto identify = [&](const siamese::Track& track) {
    const auto found = gallery.identify(track.embedding.unsqueeze(0), 1, decision).front();
    Answer answer{found.best(), found.candidates.empty() ? 0.0 : found.candidates.front().distance, track.best_quality};
    return answer;
  };
  auto answer_json = [&](const Answer& a) {
    return nlohmann::json{{"person", a.person ? nlohmann::json(*a.person) : nlohmann::json()},
                          {"known", a.person.has_value()},
                          {"distance", a.distance},
                          {"quality", a.quality}};
  };
  std::size_t tracks_seen = 0;
  auto track_left = [&](const siamese::Track& track) {
    const auto answer = answers.count(track.id) ? answers[track.id] : identify(track);
    nlohmann::json event = {{"event", "left"},          {"track", track.id},
                            {"first_frame", track.first_frame}, {"last_frame", track.last_frame},
                            {"first_time", track.first_frame / fps}, {"last_time", track.last_frame / fps},
                            {"best_frame", track.best_frame}, {"box", box_json(track.box)},
                            {"detections", track.detections}, {"embeddings", track.embeddings},
                            {"chip", nullptr}};
    event.update(answer_json(answer));
    if (!args.chips.empty() && !track.best_chip.empty()) {
      const auto file = std::filesystem::path(args.chips) / ("track-" + std::to_string(track.id) + ".jpg");
      cv::Mat bgr;
      cv::cvtColor(track.best_chip, bgr, cv::COLOR_RGB2BGR);
      if (!cv::imwrite(file.string(), bgr)) throw siamese::FileError("cannot write chip '" + file.string() + "'");
      event["chip"] = file.string();
    }
    events.write(event);
    answers.erase(track.id);
    ++tracks_seen;
  };

  const auto start = std::chrono::steady_clock::now();
  auto last_report = start;
  cv::Mat rgb;
  try {
    while (source.read(rgb)) {
      const auto frame = tracker.process(rgb);
      for (const int id : frame.embedded) {
        const auto& track = tracker.track(id);
        const auto answer = identify(track);
        const auto before = answers.find(id);
        const bool first = before == answers.end();
        if (first || before->second.person != answer.person) {
          nlohmann::json event = {{"event", first ? "appeared" : "identified"}, {"track", id}, {"frame", frame.frame},
                                  {"time", frame.frame / fps}, {"box", box_json(track.box)}};
          event.update(answer_json(answer));
          events.write(event);
        }
        answers[id] = answer;
      }
      for (const auto& track : frame.ended) track_left(track);
      if (!args.annotate.empty()) {
        if (!annotated.isOpened()) {
          annotated.open(args.annotate, cv::CAP_OPENCV_MJPEG, cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), fps, rgb.size());
          if (!annotated.isOpened()) throw siamese::FileError("cannot write annotated video '" + args.annotate + "'");
        }
        cv::Mat bgr;
        cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
        for (const auto& face : frame.faces) {
          const auto answer = answers.find(face.track);
          const bool known = answer != answers.end() && answer->second.person;
          const cv::Scalar colour = known ? cv::Scalar(0, 200, 0) : cv::Scalar(0, 0, 220);
          cv::rectangle(bgr, cv::Rect(face.box), colour, 2);
          const std::string label = "#" + std::to_string(face.track) + " " + (known ? *answer->second.person : std::string("unknown"));
          cv::putText(bgr, label, cv::Point(static_cast<int>(face.box.x), static_cast<int>(face.box.y) - 6), cv::FONT_HERSHEY_SIMPLEX,
                      0.6, colour, 2);
        }
        annotated.write(bgr);
      }
      const auto now = std::chrono::steady_clock::now();
      if (now - last_report >= std::chrono::seconds(1)) {
        const double seconds = std::chrono::duration<double>(now - start).count();
        std::cerr << "watch: frame " << tracker.frames() << " (" << std::fixed << std::setprecision(1) << tracker.frames() / fps
                  << " s of video), " << tracker.frames() / seconds << " frames/s, " << frame.faces.size() << " faces on screen\n";
        last_report = now;
      }
    }
  } catch (const siamese::VideoError&) {
    for (const auto& track : tracker.finish()) track_left(track);  // what was seen is reported before the error
    throw;
  }
  for (const auto& track : tracker.finish()) track_left(track);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cerr << "watch: " << tracker.frames() << " frames in " << std::fixed << std::setprecision(1) << seconds << " s ("
            << tracker.frames() / std::max(seconds, 1e-9) << " frames/s), " << tracks_seen << " tracks, "
            << tracker.embedding_calls() << " embedding calls\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("Follow the faces in a video and identify each person once, against a gallery database.", "watch");
  example::configure(app);
  Arguments args;
  app.add_option("DB", args.db, "gallery database (gallery enroll)")->required();
  app.add_option("SOURCE", args.source, "a video file, a camera index (0, 1, ...) or a folder of frames")->required();
  app.add_option("--model", args.model, "backbone file; its detector and landmark models beside it");
  example::add_device_option(app, args.device);
  app.add_option("--threshold", args.threshold, "a fixed distance beyond which a face is unknown, whatever the gallery's size")
      ->default_str("the open-set calibration at --fpir");
  app.add_option("--fpir", args.fpir, "strangers named as someone at most this often (false positive identification rate)")
      ->check(CLI::Range(1e-4, 0.5));
  app.add_option("--every", args.every, "detect faces on every Nth frame; the tracker carries boxes between")->check(CLI::Range(1, 100));
  app.add_option("--max-faces", args.max_faces, "follow at most this many faces per frame, the largest (0: all)");
  app.add_option("--events", args.events, "where the JSON lines of events go (- for standard output)");
  app.add_option("--annotate", args.annotate, "write the frames with boxes and names to this MJPG AVI file");
  app.add_option("--chips", args.chips, "write each track's best face chip into this folder");
  return example::run_main(app, argc, argv, [&] { return watch(args); });
}
