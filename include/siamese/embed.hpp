#pragma once

#include <siamese/align.hpp>
#include <siamese/backbone.hpp>
#include <siamese/detail/files.hpp>
#include <siamese/errors.hpp>
#include <siamese/face.hpp>
#include <siamese/image.hpp>
#include <siamese/preprocess.hpp>
#include <siamese/progress.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

namespace siamese {

/// A file's identity by content: FNV-1a 64 of its bytes, and its length.
struct ContentHash {
  std::uint64_t value = 0;
  std::uint64_t size = 0;
  friend bool operator==(const ContentHash& a, const ContentHash& b) {
    return a.value == b.value && a.size == b.size;
  }
};

inline ContentHash content_hash(const std::vector<std::uint8_t>& bytes) {
  return {detail::fnv1a(bytes.data(), bytes.size()), bytes.size()};
}

namespace detail {
struct ContentHashKey {
  std::size_t operator()(const ContentHash& h) const { return static_cast<std::size_t>(h.value ^ (h.size << 1)); }
};

}  // namespace detail

/// How an ImageEmbedder works.
struct EmbedderOptions {
  std::size_t batch_size = 32;  ///< images per backbone call
  /// Average each embedding with that of the mirrored chip (one backbone call for both):
  /// a standard test-time augmentation that makes embeddings steadier.
  bool mirror = false;
  /// Also average the embeddings of this many jittered copies of each chip (jitter_chip(),
  /// dlib's test-time augmentation): (1 + mirror + jitters) times the embedding work, run in
  /// backbone calls of at most batch_size images and their mirrors. Each image's copies are seeded by its content, so an image gets the
  /// same embedding whatever it is batched with.
  int jitters = 0;
  ImageLimits limits;
};

/// Counters of an ImageEmbedder, for logs and tests.
struct EmbedStats {
  std::size_t requested = 0;       ///< files asked for
  std::size_t embedded = 0;        ///< distinct images that went through the backbone
  std::size_t cache_hits = 0;      ///< files answered from the cache
  std::size_t backbone_calls = 0;  ///< batches run
};

/// Embeds photo files in batches: each file is read and hashed, each distinct content is
/// decoded, aligned and embedded once (an in-memory cache keyed by content hash), and the
/// chips go through the backbone `batch_size` at a time. Not thread-safe: one per thread.
template <class Backbone = TorchScriptBackbone>
class ImageEmbedder {
 public:
  /// `pipeline` finds and aligns faces; null means the files are aligned crops (used whole).
  /// Both must outlive the embedder.
  ImageEmbedder(const Backbone& backbone, FacePipeline* pipeline, EmbedderOptions options = {})
      : backbone_(backbone), pipeline_(pipeline), options_(options) {
    if (options_.batch_size < 1) throw Error("ImageEmbedder batch_size must be at least 1");
    if (options_.jitters < 0 || options_.jitters > 1000) {
      throw Error("ImageEmbedder jitters must lie in 0..1000, got " + std::to_string(options_.jitters));
    }
  }

  /// Tells `callback` how far each embed_files() call has come ("embedding", in images),
  /// after every backbone batch. An empty callback reports nothing.
  void set_progress(ProgressCallback callback) { progress_ = std::move(callback); }

  /// Embeddings of `files`, row i for files[i]: float32 [N, D] on the CPU.
  /// Every missing file is reported in one FileError before any work starts; then decoding
  /// and alignment errors (ImageError, NoFaceFound) name the file.
  torch::Tensor embed_files(const std::vector<std::filesystem::path>& files) {
    std::string missing;
    std::size_t missing_count = 0;
    for (const auto& file : files) {
      std::error_code ec;
      if (!std::filesystem::is_regular_file(file, ec)) {
        if (missing_count++ < 20) missing += "\n  " + file.string();
      }
    }
    if (missing_count > 0) {
      throw FileError(std::to_string(missing_count) + " image file(s) missing:" + missing +
                      (missing_count > 20 ? "\n  ..." : ""));
    }
    std::vector<ContentHash> keys;
    keys.reserve(files.size());
    std::vector<std::pair<ContentHash, cv::Mat>> pending;
    ProgressCounter progress(progress_, "embedding", "images", files.size());
    std::size_t unreported = 0;
    for (const auto& file : files) {
      ++stats_.requested;
      ++unreported;
      auto bytes = read_file_bytes(file, options_.limits.max_file_bytes);
      const auto key = content_hash(bytes);
      keys.push_back(key);
      const bool known = cache_.count(key) > 0 ||
                         std::any_of(pending.begin(), pending.end(), [&](const auto& p) { return p.first == key; });
      if (known) {
        ++stats_.cache_hits;
        continue;
      }
      pending.emplace_back(key, chip(decode_image(bytes, file.string(), options_.limits), file.string()));
      if (pending.size() == options_.batch_size) {
        flush(pending);
        progress.advance(std::exchange(unreported, 0));
      }
    }
    flush(pending);
    if (unreported > 0) progress.advance(unreported);
    std::vector<torch::Tensor> rows;
    rows.reserve(keys.size());
    for (const auto& key : keys) rows.push_back(cache_.at(key));
    return rows.empty() ? torch::empty({0, 0}) : torch::stack(rows);
  }

  const EmbedStats& stats() const { return stats_; }
  void clear_cache() { cache_.clear(); }

  /// What a cache file records of how its embeddings were made: the model's name, the
  /// alignment options of the face pipeline (or whole images), mirror and jitters. Not the
  /// weights themselves: a model file changed under the same name needs a new cache.
  std::string cache_tag(const std::string& model_name) const {
    std::ostringstream tag;
    tag << "model=" << model_name << "; chips=";
    if (pipeline_ != nullptr) {
      const auto& o = pipeline_->options();
      tag << "aligned " << o.chip_size << " px, padding " << o.chip_padding << ", mirror landmarks "
          << o.mirror_landmarks << ", policy " << static_cast<int>(o.policy) << ", centre fallback "
          << o.center_fallback << " at " << o.center_fraction;
    } else {
      tag << "whole images";
    }
    tag << "; mirror=" << options_.mirror << "; jitters=" << options_.jitters;
    return tag.str();
  }

  /// Saves the cache to `file` (written to a temporary, then renamed), tagged with
  /// cache_tag(model_name) so that embeddings made one way are never served for another.
  void save_cache(const std::filesystem::path& file, const std::string& model_name) const {
    const auto tag = cache_tag(model_name);
    std::vector<torch::Tensor> parts;
    parts.push_back(torch::tensor(std::vector<std::int64_t>(tag.begin(), tag.end()), torch::kInt64));
    std::vector<std::int64_t> keys;
    std::vector<torch::Tensor> values;
    for (const auto& [key, value] : cache_) {
      keys.push_back(static_cast<std::int64_t>(key.value));
      keys.push_back(static_cast<std::int64_t>(key.size));
      values.push_back(value);
    }
    parts.push_back(torch::tensor(keys, torch::kInt64));
    parts.push_back(values.empty() ? torch::empty({0}) : torch::stack(values));
    detail::replace_file(file, "embedding cache", [&](const std::string& temporary) {
      try {
        torch::save(parts, temporary);
      } catch (const c10::Error& e) {
        throw FileError("cannot write embedding cache '" + temporary + "': " + e.what_without_backtrace());
      }
    });
  }

  /// Loads a cache saved by save_cache() with the same cache_tag(); returns the number of
  /// entries. A missing file loads nothing. Throws ModelError, naming both tags, when the file
  /// was made with another model or other options, or when it is not a cache.
  std::size_t load_cache(const std::filesystem::path& file, const std::string& model_name) {
    std::error_code ec;
    if (!std::filesystem::exists(file, ec)) return 0;
    std::vector<torch::Tensor> parts;
    try {
      torch::load(parts, file.string());
    } catch (const c10::Error& e) {
      throw ModelError("'" + file.string() + "' is not an embedding cache: " + e.what_without_backtrace());
    }
    if (parts.size() != 3 || parts[1].numel() % 2 != 0 ||
        (parts[1].numel() > 0 && parts[2].size(0) * 2 != parts[1].numel())) {
      throw ModelError("'" + file.string() + "' is not an embedding cache");
    }
    const auto name_codes = parts[0].contiguous();
    const std::string stored(name_codes.data_ptr<std::int64_t>(), name_codes.data_ptr<std::int64_t>() + name_codes.numel());
    const auto tag = cache_tag(model_name);
    if (stored != tag) {
      throw ModelError("embedding cache '" + file.string() + "' was made with '" + stored + "', not '" + tag + "'");
    }
    const auto keys = parts[1].contiguous();
    const auto* k = keys.data_ptr<std::int64_t>();
    for (std::int64_t i = 0; i < keys.numel() / 2; ++i) {
      cache_[{static_cast<std::uint64_t>(k[2 * i]), static_cast<std::uint64_t>(k[2 * i + 1])}] = parts[2][i].clone();
    }
    return static_cast<std::size_t>(keys.numel() / 2);
  }

 private:
  cv::Mat chip(const cv::Mat& rgb, const std::string& name) {
    return pipeline_ ? pipeline_->align(rgb, name).chip : rgb;
  }

  void flush(std::vector<std::pair<ContentHash, cv::Mat>>& pending) {
    if (pending.empty()) return;
    // Rows: the chips, their mirrors, then each chip's jittered copies.
    std::vector<cv::Mat> chips;
    for (const auto& p : pending) chips.push_back(p.second);
    for (const auto& [key, chip] : pending) {
      std::mt19937 rng(static_cast<std::uint32_t>(key.value ^ (key.value >> 32)));
      for (int j = 0; j < options_.jitters; ++j) chips.push_back(jitter_chip(chip, rng));
    }
    auto batch = to_input_batch(chips, backbone_.input_spec());
    const auto n = static_cast<std::int64_t>(pending.size());
    if (options_.mirror) {
      batch = torch::cat({batch.narrow(0, 0, n), batch.narrow(0, 0, n).flip({3}), batch.narrow(0, n, batch.size(0) - n)});
    }
    // Calls of at most batch_size images and their mirrors: jittered copies take more calls,
    // not more memory per call.
    const auto rows_per_call = static_cast<std::int64_t>(options_.batch_size) * (options_.mirror ? 2 : 1);
    std::vector<torch::Tensor> parts;
    for (std::int64_t first = 0; first < batch.size(0); first += rows_per_call) {
      parts.push_back(backbone_.embed(batch.narrow(0, first, std::min(rows_per_call, batch.size(0) - first))).to(torch::kCPU));
      ++stats_.backbone_calls;
    }
    const auto all = torch::cat(parts);
    const std::int64_t jitters = options_.jitters;
    const std::int64_t plain_copies = options_.mirror ? 2 : 1;
    auto embeddings = all.narrow(0, 0, n).clone();
    if (options_.mirror) embeddings += all.narrow(0, n, n);
    if (jitters > 0) embeddings += all.narrow(0, plain_copies * n, jitters * n).view({n, jitters, -1}).sum(1);
    embeddings /= static_cast<double>(plain_copies + jitters);
    for (std::int64_t i = 0; i < n; ++i) cache_[pending[i].first] = embeddings[i].clone();
    stats_.embedded += pending.size();
    pending.clear();
  }

  const Backbone& backbone_;
  FacePipeline* pipeline_;
  EmbedderOptions options_;
  EmbedStats stats_;
  ProgressCallback progress_;
  std::unordered_map<ContentHash, torch::Tensor, detail::ContentHashKey> cache_;
};

}  // namespace siamese
