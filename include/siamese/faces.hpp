#pragma once

// The common jobs in one call each: are the faces in two photos the same person, and who are
// the people in this photo. Faces puts the pieces together (backbone, face pipeline, the
// decision fitted to the backbone, the open-set calibration for galleries); each stays public
// for those who need them alone.
//
//   siamese::Faces faces("models");
//   if (faces.verify("a.jpg", "b.jpg").result.same) ...
//   for (const auto& f : faces.identify("group.jpg", gallery)) ... f.identification.best() ...

#include <siamese/decision.hpp>
#include <siamese/device.hpp>
#include <siamese/errors.hpp>
#include <siamese/face.hpp>
#include <siamese/gallery.hpp>
#include <siamese/image.hpp>
#include <siamese/open_set.hpp>
#include <siamese/preprocess.hpp>
#include <siamese/siamese_net.hpp>

#include <torch/torch.h>

#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace siamese {

/// The faces found in one photo, aligned and embedded.
struct PhotoFaces {
  std::vector<AlignedFace> faces;  ///< at least one
  torch::Tensor embeddings;        ///< [F, D] float32 on the CPU, row i for faces[i]
};

/// Two photos compared: every face of one against every face of the other. The closest pair
/// decides, which answers "is this person in that photo?".
struct PhotoComparison {
  PhotoFaces a, b;
  torch::Tensor distances;             ///< [Fa, Fb] float64: distances[i][j] between a's face i and b's face j
  std::size_t face_a = 0, face_b = 0;  ///< the closest pair
  VerifyResult result;                 ///< the net's answer for that pair (`same` only means something with a decision)
};

/// A face of a photo, and who it is.
struct IdentifiedFace {
  AlignedFace face;
  Identification identification;
};

/// How Faces works.
struct FacesOptions {
  std::filesystem::path backbone = "faceapi_recognition.pt";  ///< in the models folder
  Device device = Device::automatic();
  bool largest_face_only = false;  ///< else every face of a photo
  double fpir = 0.01;              ///< identify(): strangers named as someone at most this often
  std::size_t candidates = 5;      ///< identify(): people listed per face
};

/// Photos in, answers out: find every face, align it, embed it with one backbone, and compare
/// or identify. Holds detectors with scratch state: one Faces per thread.
class Faces {
 public:
  /// Everything from a folder made by tools/setup-models.sh: the backbone (options.backbone),
  /// the face detector and landmark models beside it, the decision fitted to the backbone
  /// (fitted_decision: its calibration, else its metadata's threshold) and its open-set
  /// calibration when there is one. Chips are the backbone's input size.
  /// Throws as TorchScriptBackbone, FacePipeline::from_models and the calibration loaders.
  explicit Faces(const std::filesystem::path& models, FacesOptions options = {})
      : Faces(load(models, options), options) {}

  /// From parts: a backbone, the decision fitted to it (std::nullopt: distances, no verdicts),
  /// a face pipeline (std::nullopt: photos are aligned crops, used whole) and an open-set
  /// calibration for identify() (std::nullopt: the decision's 1:1 threshold).
  Faces(TorchScriptBackbone backbone, std::optional<FittedDecision> decision, std::optional<FacePipeline> pipeline,
        std::optional<OpenSetCalibration> open_set, FacesOptions options = {})
      : verifier_(decision ? make_face_verifier(std::move(backbone), *decision) : FaceVerifier(std::move(backbone))),
        decision_(std::move(decision)),
        pipeline_(std::move(pipeline)),
        open_set_(std::move(open_set)),
        options_(std::move(options)) {}

  /// Every face in `rgb` (8-bit RGB; the largest alone with largest_face_only), aligned and
  /// embedded; `name` labels errors. Without a pipeline, the whole image is the one face.
  /// Throws NoFaceFound naming `name` when there is none; ImageError for a bad image.
  PhotoFaces find(const cv::Mat& rgb, const std::string& name) {
    PhotoFaces found;
    if (pipeline_) {
      found.faces = pipeline_->align_all(rgb, name);
    } else {
      AlignedFace whole;
      whole.chip = rgb;
      whole.detection.box = cv::Rect2f(0, 0, static_cast<float>(rgb.cols), static_cast<float>(rgb.rows));
      found.faces.push_back(std::move(whole));
    }
    std::vector<cv::Mat> chips;  // to_input_batch() brings each to the backbone's input size
    for (const auto& face : found.faces) chips.push_back(face.chip);
    torch::InferenceMode guard;
    found.embeddings = verifier_.embed(to_input_batch(chips, verifier_.backbone().input_spec())).to(torch::kCPU);
    return found;
  }

  /// find() on the photo file `photo`. Throws FileError and ImageError naming it, as read_image().
  PhotoFaces find(const std::filesystem::path& photo) { return find(read_image(photo), photo.string()); }

  /// Every face of `a` against every face of `b`; the closest pair decides.
  PhotoComparison compare(PhotoFaces a, PhotoFaces b) const {
    PhotoComparison out;
    const auto fa = a.embeddings.size(0), fb = b.embeddings.size(0);
    const auto all = EuclideanDistance{}(a.embeddings.repeat_interleave(fb, 0), b.embeddings.repeat({fa, 1}));
    out.distances = all.reshape({fa, fb}).to(torch::kFloat64);
    const auto closest = out.distances.argmin().item<std::int64_t>();
    out.face_a = static_cast<std::size_t>(closest / fb);
    out.face_b = static_cast<std::size_t>(closest % fb);
    const auto& spec = verifier_.backbone().input_spec();
    out.result = verifier_.verify(to_input_tensor(a.faces[out.face_a].chip, spec), to_input_tensor(b.faces[out.face_b].chip, spec));
    out.a = std::move(a);
    out.b = std::move(b);
    return out;
  }

  /// Are the faces in two photo files the same person? compare(find(a), find(b)).
  PhotoComparison verify(const std::filesystem::path& a, const std::filesystem::path& b) { return compare(find(a), find(b)); }

  /// Who is each face of `photo` in `gallery`: at options.fpir for the gallery's size with an
  /// open-set calibration, else (has_open_set_calibration() false) at the decision's 1:1
  /// threshold, which names more strangers the larger the gallery.
  /// Throws UncalibratedModelError when there is neither; as find() and Gallery::identify().
  std::vector<IdentifiedFace> identify(const std::filesystem::path& photo, const Gallery& gallery) {
    if (!open_set_ && !decision_) {
      throw UncalibratedModelError("Faces::identify needs an open-set calibration or a decision fitted to '" +
                                   verifier_.backbone().metadata().name + "'");
    }
    auto found = find(photo);
    const auto answers = open_set_ ? gallery.identify(found.embeddings, options_.candidates, *open_set_, options_.fpir)
                                   : gallery.identify(found.embeddings, options_.candidates, decision_->distance_threshold);
    std::vector<IdentifiedFace> out;
    for (std::size_t i = 0; i < answers.size(); ++i) out.push_back({std::move(found.faces[i]), answers[i]});
    return out;
  }

  const FaceVerifier& verifier() const { return verifier_; }
  const std::optional<FittedDecision>& decision() const { return decision_; }
  bool has_open_set_calibration() const { return open_set_.has_value(); }
  const std::optional<FacePipeline>& pipeline() const { return pipeline_; }

 private:
  struct Parts {
    TorchScriptBackbone backbone;
    std::optional<FittedDecision> decision;
    std::optional<FacePipeline> pipeline;
    std::optional<OpenSetCalibration> open_set;
  };

  Faces(Parts parts, const FacesOptions& options)
      : Faces(std::move(parts.backbone), std::move(parts.decision), std::move(parts.pipeline), std::move(parts.open_set), options) {}

  static Parts load(const std::filesystem::path& models, const FacesOptions& options) {
    const auto file = models / options.backbone;
    BackboneOptions load_options;
    load_options.device = options.device;
    TorchScriptBackbone backbone(file, load_options);
    FacePipelineOptions pipeline_options;
    pipeline_options.chip_size = backbone.input_spec().height;
    pipeline_options.policy = options.largest_face_only ? FacePolicy::largest : FacePolicy::all;
    auto decision = fitted_decision(file, backbone.metadata());
    auto open_set = load_open_set_calibration_for(file, backbone.metadata().name);
    return {std::move(backbone), std::move(decision), FacePipeline::from_models(models, pipeline_options, options.device),
            std::move(open_set)};
  }

  FaceVerifier verifier_;
  std::optional<FittedDecision> decision_;
  std::optional<FacePipeline> pipeline_;
  std::optional<OpenSetCalibration> open_set_;
  FacesOptions options_;
};

}  // namespace siamese
