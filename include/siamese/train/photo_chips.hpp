#pragma once

// The trainers' link to photos on disk (siamese::vision): chips read and aligned with OpenCV,
// and the distillation set written out as image files.

#include <siamese/backbone.hpp>
#include <siamese/errors.hpp>
#include <siamese/face.hpp>
#include <siamese/image.hpp>
#include <siamese/preprocess.hpp>
#include <siamese/progress.hpp>
#include <siamese/train/chips.hpp>
#include <siamese/train/distill.hpp>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace siamese::train {

/// The chips of photos on disk: each file read (read_image), its face aligned by `pipeline`
/// (the whole photo when it is null: the photos are chips already), then resized and
/// normalised for the spec asked for (to_input_tensor). A file asked for at two specs in a row
/// (a Distiller's student and teacher) is read and aligned once.
/// Requires: `pipeline`, when given, outlives the source; one thread calls it at a time.
/// Throws read_image's and the pipeline's errors, naming the file.
inline ChipSource photo_chips(FacePipeline* pipeline) {
  struct LastChip {
    std::string file;
    cv::Mat face;
  };
  auto last = std::make_shared<LastChip>();
  return [pipeline, last](const std::filesystem::path& file, const InputSpec& spec) {
    if (last->face.empty() || last->file != file.string()) {
      const auto image = read_image(file);
      last->face = pipeline ? pipeline->align(image, file.string()).chip : image;
      last->file = file.string();
    }
    return to_input_tensor(last->face, spec)[0];
  };
}

/// Writes `distiller`'s training set, for training elsewhere (a GPU machine:
/// tools/distill_gpu.py), into `folder`:
///   chips/NNNNNN<extension>  image N's chip aligned by `pipeline` (the photo itself when it is
///                            null), as cv::imwrite writes it (".png" lossless; ".webp" /
///                            ".jpg" at `quality`); a mirror image is its horizontal flip
///   samples.tsv              "index<TAB>person<TAB>source file" per image, in order
///   targets.f16              float16, little-endian, [images, 2 if mirror else 1, D]: the
///                            teacher's embedding of the chip (and of its mirror image)
///   samples.json             image count, mirror, D, student's input side, extension, teacher
///                            name; written last, so a folder without it is an unfinished export
/// Ensures: nothing in the student is trained or changed. Throws the first unreadable
/// image's error, naming the file, and FileError when a file cannot be written.
inline void export_samples(Distiller& distiller, FacePipeline* pipeline, const std::filesystem::path& folder,
                           const std::string& extension = ".png", int quality = 95,
                           const ProgressCallback& progress = {}) {
  siamese::detail::create_folder(folder / "chips", "distillation samples");
  std::ofstream samples(folder / "samples.tsv"), targets(folder / "targets.f16", std::ios::binary);
  if (!samples || !targets) throw FileError("cannot write the distillation samples in '" + folder.string() + "'");
  const std::vector<int> parameters = {extension == ".webp" ? cv::IMWRITE_WEBP_QUALITY : cv::IMWRITE_JPEG_QUALITY,
                                       quality};
  const auto& images = distiller.images();
  const auto& teacher = distiller.teacher();
  torch::NoGradGuard no_grad;
  ProgressCounter counter(progress, "distillation data", "images", images.size());
  constexpr std::size_t chunk = 32;
  for (std::size_t first = 0; first < images.size(); first += chunk) {
    const std::size_t last = std::min(images.size(), first + chunk);
    std::vector<cv::Mat> chips;
    for (std::size_t i = first; i < last; ++i) {
      const auto photo = read_image(images[i]);
      chips.push_back(pipeline ? pipeline->align(photo, images[i].string()).chip : photo);
    }
    const auto count = chips.size();
    if (distiller.mirror()) {
      for (std::size_t i = 0; i < count; ++i) {
        cv::Mat flipped;
        cv::flip(chips[i], flipped, 1);
        chips.push_back(flipped);
      }
    }
    const std::int64_t views = distiller.mirror() ? 2 : 1;
    const auto embeddings = teacher.embed(to_input_batch(chips, teacher.input_spec())).to(torch::kCPU);
    // [views * images, D] -> [images, views, D]: each image's chip, then its mirror image.
    const auto ordered = embeddings.view({views, static_cast<std::int64_t>(count), -1}).transpose(0, 1).contiguous().to(torch::kHalf);
    targets.write(static_cast<const char*>(ordered.data_ptr()), static_cast<std::streamsize>(ordered.nbytes()));
    for (std::size_t i = 0; i < count; ++i) {
      const auto index = first + i;
      char name[16];
      std::snprintf(name, sizeof name, "%06zu", index);
      const auto file = folder / "chips" / (name + extension);
      cv::Mat bgr;  // the library's images are RGB; image files are written from BGR
      cv::cvtColor(chips[i], bgr, cv::COLOR_RGB2BGR);
      if (!cv::imwrite(file.string(), bgr, parameters)) throw FileError("cannot write the chip '" + file.string() + "'");
      samples << index << '\t' << images[index].parent_path().filename().string() << '\t' << images[index].string() << '\n';
    }
    counter.advance(last - first);
  }
  if (!samples.flush() || !targets.flush()) throw FileError("cannot write the distillation samples in '" + folder.string() + "'");
  nlohmann::json facts = {{"images", images.size()},
                          {"mirror", distiller.mirror()},
                          {"embedding_size", teacher.embedding_size()},
                          {"side", distiller.backbone().input_spec().width},
                          {"extension", extension},
                          {"teacher", teacher.metadata().name}};
  siamese::detail::write_file_atomically(folder / "samples.json", facts.dump(2) + "\n", "distillation samples");
}

}  // namespace siamese::train
