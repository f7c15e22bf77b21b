#pragma once

#include <siamese/align.hpp>
#include <siamese/backbone.hpp>
#include <siamese/detail/bounded_queue.hpp>
#include <siamese/detail/files.hpp>
#include <siamese/errors.hpp>
#include <siamese/face.hpp>
#include <siamese/image.hpp>
#include <siamese/preprocess.hpp>
#include <siamese/progress.hpp>
#include <siamese/quality.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <dlfcn.h>

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

/// Thrown inside a preparing thread to unwind it once the consumer has stopped.
struct Stopped {};

/// OpenMP's per-thread setting of how many threads the parallel regions a thread starts use,
/// found in the OpenMP runtime LibTorch loaded (null where LibTorch does not run on OpenMP).
/// Looked up at run time: including <omp.h> would tie consumers to one compiler's runtime.
struct OpenMpThreadSetting {
  int (*get)() = nullptr;
  void (*set)(int) = nullptr;
  explicit operator bool() const { return get != nullptr && set != nullptr; }
};

inline const OpenMpThreadSetting& openmp_thread_setting() {
  static const OpenMpThreadSetting found = [] {
    OpenMpThreadSetting setting;
#if AT_PARALLEL_OPENMP
    const auto symbol = [](const char* name, auto function) {
      void* address = ::dlsym(RTLD_DEFAULT, name);
      std::memcpy(&function, &address, sizeof function);  // object to function pointer, as POSIX allows
      return address != nullptr ? function : nullptr;
    };
    setting.get = symbol("omp_get_max_threads", setting.get);
    setting.set = symbol("omp_set_num_threads", setting.set);
#endif
    return setting;
  }();
  return found;
}

/// The calling thread's LibTorch intra-op threads, for a scope, and nothing else's.
///
/// torch::set_num_threads() would not do: in LibTorch on OpenMP (Debian's) it also stores the
/// count that every thread started later takes as its own, and resizes the process-wide
/// pthreadpool, so code outside the call would see it. This sets only OpenMP's setting of the
/// calling thread, which the parallel regions of its LibTorch, oneDNN and OpenBLAS calls use.
/// Requires: openmp_thread_setting() found (callers check).
class ThisThreadIntraOpThreads {
 public:
  explicit ThisThreadIntraOpThreads(int count) {
    // LibTorch sets a new thread's count from the process-wide one at its first parallel call:
    // have that happen now, or it would undo this later.
    (void)torch::get_num_threads();
    restore_ = openmp_thread_setting().get();
    openmp_thread_setting().set(count);
  }
  ~ThisThreadIntraOpThreads() { openmp_thread_setting().set(restore_); }
  ThisThreadIntraOpThreads(const ThisThreadIntraOpThreads&) = delete;
  ThisThreadIntraOpThreads& operator=(const ThisThreadIntraOpThreads&) = delete;

 private:
  int restore_ = 1;
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
  /// Refuse faces below this bar (enrollment photos): LowQualityFace naming the file and the
  /// reason, as NoFaceFound names a file without a face (a batch's face-finding errors come
  /// first). Needs a face pipeline; std::nullopt (the default) takes every face.
  std::optional<QualityBar> quality_bar;
  ImageLimits limits;
  /// Decode, detect and align the next batches on a second thread while the backbone embeds
  /// this one, with at most this many prepared batches waiting; 0 does everything on the
  /// calling thread, in turn. The two threads split LibTorch's intra-op threads between them
  /// (on 2 cores one each: 1.1-1.2x the photos/s of taking turns on both in most runs of
  /// benchmarks/pipeline_breakdown; two teams of two ran at 0.85x); with one intra-op thread
  /// there is nothing to split and batches are prepared in turn. Output and errors are the
  /// same either way. The split is each thread's own (OpenMP's per-thread setting): no thread
  /// outside the call sees a changed count. Where LibTorch does not run on OpenMP there is no
  /// such setting, and batches are prepared in turn.
  std::size_t prefetch_batches = 2;
  /// A batch closes early once its decoded photos hold this many pixels, so that batches of
  /// large photos keep memory bounded (32 twelve-megapixel photos would hold 1.1 GB).
  double max_batch_pixels = 64e6;
  /// Hand the allocator's free memory back to the system after every this many photos (0:
  /// never). The backbone's large, short-lived buffers leave glibc's heaps fragmented: over
  /// 100,000 photos with mirror averaging the resident memory grew from 550 MiB to over 1 GiB
  /// after 20,000 photos, of which malloc_trim returned 680 MiB (benchmarks/pipeline_breakdown
  /// --synthetic). Once per 1,024 photos costs a few milliseconds in twenty seconds of work.
  std::size_t release_memory_every = 1024;
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
///
/// The embedder owns what it uses: a copy of the backbone (TorchScriptBackbone copies share
/// one module, so the copy costs nothing and the caller's backbone may go first) and the face
/// pipeline, moved in (a pipeline holds detectors with scratch state, so it belongs to one
/// embedder).
template <class Backbone = TorchScriptBackbone>
class ImageEmbedder {
 public:
  /// `pipeline` finds and aligns faces; std::nullopt means the files are aligned crops (used
  /// whole). Throws Error for options out of range.
  ImageEmbedder(Backbone backbone, std::optional<FacePipeline> pipeline, EmbedderOptions options = {})
      : backbone_(std::move(backbone)), pipeline_(std::move(pipeline)), options_(options) {
    if (options_.batch_size < 1) throw Error("ImageEmbedder batch_size must be at least 1");
    if (options_.jitters < 0 || options_.jitters > 1000) {
      throw Error("ImageEmbedder jitters must lie in 0..1000, got " + std::to_string(options_.jitters));
    }
    if (!(options_.max_batch_pixels > 0)) throw Error("ImageEmbedder max_batch_pixels must be positive");
    if (options_.quality_bar && !pipeline_) throw Error("ImageEmbedder quality_bar needs a face pipeline: whole images have no face to score");
  }

  /// Tells `callback` how far each embed_files() call has come ("embedding", in images),
  /// after every backbone batch. An empty callback reports nothing. Calls come one at a time,
  /// but with the preparing thread on (prefetch_batches) not always from the calling thread.
  void set_progress(ProgressCallback callback) { progress_ = std::move(callback); }

  /// Embeddings of `files`, row i for files[i]: float32 [N, D] on the CPU.
  /// Every missing file is reported in one FileError before any work starts; then decoding
  /// and alignment errors (ImageError, NoFaceFound) name the file: the first failing file in
  /// `files` order, whether the pipeline is on or off.
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
    std::vector<ContentHash> keys(files.size());
    ProgressCounter progress(progress_, "embedding", "images", files.size());
    std::mutex results;  // the cache, the counters and the progress, when two threads embed
    const auto consume = [&](PreparedBatch batch) {
      std::size_t calls = 0;
      const auto embeddings = batch.chips.empty() ? torch::Tensor() : embeddings_of(batch.keys, batch.chips, calls);
      const std::lock_guard<std::mutex> lock(results);
      for (std::size_t i = 0; i < batch.keys.size(); ++i) cache_[batch.keys[i]] = embeddings[static_cast<std::int64_t>(i)].clone();
      stats_.embedded += batch.keys.size();
      stats_.backbone_calls += calls;
      stats_.requested += batch.files;
      stats_.cache_hits += batch.cache_hits;
      progress.advance(batch.files);
      const auto every = options_.release_memory_every;
      if (every > 0 && stats_.requested / every != (stats_.requested - batch.files) / every) {
        detail::release_free_memory();
      }
    };
    if (options_.prefetch_batches == 0 || torch::get_num_threads() < 2 || !detail::openmp_thread_setting()) {
      prepare_batches(files, keys, consume);
    } else {
      embed_pipelined(files, keys, consume);
    }
    std::vector<torch::Tensor> rows;
    rows.reserve(keys.size());
    for (const auto& key : keys) rows.push_back(cache_.at(key));
    return rows.empty() ? torch::empty({0, 0}) : torch::stack(rows);
  }

  const EmbedStats& stats() const { return stats_; }
  /// The face pipeline the embedder aligns with; empty when files are used whole.
  const std::optional<FacePipeline>& pipeline() const { return pipeline_; }
  const Backbone& backbone() const { return backbone_; }
  void clear_cache() { cache_.clear(); }

  /// What a cache file records of how its embeddings were made: the model's name, the
  /// alignment options of the face pipeline (or whole images), mirror and jitters. Not the
  /// weights themselves: a model file changed under the same name needs a new cache.
  std::string cache_tag(const std::string& model_name) const {
    std::ostringstream tag;
    tag << "model=" << model_name << "; chips=";
    if (pipeline_) {
      const auto& o = pipeline_->options();
      tag << "aligned " << o.chip_size << " px, padding " << o.chip_padding << ", mirror landmarks "
          << o.mirror_landmarks << ", policy " << static_cast<int>(o.policy) << ", centre fallback "
          << o.center_fallback << " at " << o.center_fraction << ", coarse to fine " << o.coarse_to_fine_detection;
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
  /// was made with another model or other options, or when it is not a cache: any part of
  /// another rank, dtype or size than save_cache() writes, or embeddings that are not finite.
  std::size_t load_cache(const std::filesystem::path& file, const std::string& model_name) {
    std::error_code ec;
    if (!std::filesystem::exists(file, ec)) return 0;
    std::vector<torch::Tensor> parts;
    try {
      torch::load(parts, file.string());
    } catch (const std::exception& e) {  // c10::Error, or the archive reader's own errors
      throw ModelError("'" + file.string() + "' is not an embedding cache: " + detail::error_summary(e.what()));
    }
    // The layout save_cache() writes: the tag's characters [T] int64, the keys [2K] int64 (hash,
    // size), the embeddings [K, D] float32 (or [0] when K = 0).
    const auto is_vector_of = [](const torch::Tensor& t, torch::ScalarType type) {
      return t.defined() && t.dim() == 1 && t.scalar_type() == type;
    };
    const bool layout = parts.size() == 3 && is_vector_of(parts[0], torch::kInt64) && is_vector_of(parts[1], torch::kInt64) &&
                        parts[1].numel() % 2 == 0 && parts[2].defined() && parts[2].scalar_type() == torch::kFloat32 &&
                        (parts[1].numel() == 0 ? parts[2].numel() == 0
                                               : parts[2].dim() == 2 && parts[2].size(0) * 2 == parts[1].numel());
    if (!layout) {
      std::string found;
      for (const auto& part : parts) found += " " + detail::shape_string(part) + " " + detail::dtype_string(part);
      throw ModelError("'" + file.string() + "' is not an embedding cache: it holds" +
                       (parts.empty() ? std::string(" nothing") : found));
    }
    if (!torch::isfinite(parts[2]).all().item<bool>()) {
      throw ModelError("embedding cache '" + file.string() + "' holds non-finite embeddings");
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
  /// Chips ready for the backbone, and what the files behind them counted.
  struct PreparedBatch {
    std::vector<ContentHash> keys;  ///< one per chip: contents not embedded before
    std::vector<cv::Mat> chips;
    std::size_t files = 0;          ///< files read, chips and cache hits together
    std::size_t cache_hits = 0;
  };

  /// Reads, hashes, decodes and aligns `files` in order, writing keys[i] for files[i] and
  /// handing each batch of new contents to `deliver`. Touches no member the backbone side
  /// writes: it may run on its own thread.
  template <class Deliver>
  void prepare_batches(const std::vector<std::filesystem::path>& files, std::vector<ContentHash>& keys,
                       const Deliver& deliver) {
    std::unordered_set<ContentHash, detail::ContentHashKey> known;
    for (const auto& entry : cache_) known.insert(entry.first);
    PreparedBatch batch;
    std::vector<cv::Mat> images;
    std::vector<std::string> names;
    double pixels = 0;
    const auto close_batch = [&] {
      if (!images.empty()) {
        if (!pipeline_) {
          batch.chips = std::move(images);
        } else {
          auto faces = pipeline_->align_batch(images, names);
          for (std::size_t k = 0; k < faces.size(); ++k) {
            if (options_.quality_bar) options_.quality_bar->require(face_quality(faces[k]), names[k]);
            batch.chips.push_back(std::move(faces[k].chip));
          }
        }
      }
      images.clear();
      names.clear();
      pixels = 0;
      if (batch.files > 0) deliver(std::exchange(batch, PreparedBatch{}));
    };
    for (std::size_t i = 0; i < files.size(); ++i) {
      const auto name = files[i].string();
      cv::Mat image;
      try {
        auto bytes = read_file_bytes(files[i], options_.limits.max_file_bytes);
        keys[i] = content_hash(bytes);
        if (!known.insert(keys[i]).second) {
          ++batch.files;
          ++batch.cache_hits;
          continue;
        }
        image = decode_image(bytes, name, options_.limits);
      } catch (...) {
        // An earlier photo of this batch that has no face is the first error in file order.
        const auto error = std::current_exception();
        close_batch();
        std::rethrow_exception(error);
      }
      ++batch.files;
      images.push_back(std::move(image));
      names.push_back(name);
      batch.keys.push_back(keys[i]);
      pixels += static_cast<double>(images.back().total());
      if (images.size() == options_.batch_size || pixels >= options_.max_batch_pixels) close_batch();
    }
    close_batch();
  }

  /// prepare_batches() on a second thread, `consume` on this one, with at most
  /// prefetch_batches batches between them, each thread on half of this thread's intra-op
  /// threads. When the queue is full the preparing thread embeds its batch itself rather than
  /// wait (`consume` must be thread-safe): preparing a photo costs less than embedding it, and
  /// both threads stay busy. The first error of either side is rethrown here once both have
  /// stopped.
  template <class Consume>
  void embed_pipelined(const std::vector<std::filesystem::path>& files, std::vector<ContentHash>& keys,
                       const Consume& consume) {
    const int threads = torch::get_num_threads();
    const int preparing_threads = threads / 2;
    // This thread's share now, its whole count again when the call ends.
    const detail::ThisThreadIntraOpThreads embedding_share(threads - preparing_threads);
    detail::BoundedQueue<PreparedBatch> queue(options_.prefetch_batches);
    std::exception_ptr preparation_error;
    std::thread preparer([&] {
      try {
        const detail::ThisThreadIntraOpThreads preparing_share(preparing_threads);
        prepare_batches(files, keys, [&](PreparedBatch batch) {
          if (queue.try_push(batch)) return;
          if (queue.closed()) throw detail::Stopped{};
          consume(std::move(batch));
        });
      } catch (const detail::Stopped&) {
      } catch (...) {
        preparation_error = std::current_exception();
      }
      queue.close();
    });
    try {
      while (auto batch = queue.pop()) consume(std::move(*batch));
    } catch (...) {
      queue.close();
      preparer.join();
      throw;
    }
    preparer.join();
    if (preparation_error) std::rethrow_exception(preparation_error);
  }

  /// The embeddings [n, D] of n chips, each averaged with its mirror and jittered copies as
  /// the options say; adds the backbone calls made to `calls`. Safe to run on several threads.
  torch::Tensor embeddings_of(const std::vector<ContentHash>& keys, const std::vector<cv::Mat>& plain,
                              std::size_t& calls) const {
    // Rows: the chips, their mirrors, then each chip's jittered copies.
    std::vector<cv::Mat> chips = plain;
    for (std::size_t i = 0; i < plain.size(); ++i) {
      std::mt19937 rng(static_cast<std::uint32_t>(keys[i].value ^ (keys[i].value >> 32)));
      for (int j = 0; j < options_.jitters; ++j) chips.push_back(jitter_chip(plain[i], rng));
    }
    auto batch = to_input_batch(chips, backbone_.input_spec());
    const auto n = static_cast<std::int64_t>(plain.size());
    if (options_.mirror) {
      batch = torch::cat({batch.narrow(0, 0, n), batch.narrow(0, 0, n).flip({3}), batch.narrow(0, n, batch.size(0) - n)});
    }
    // Calls of at most batch_size images and their mirrors: jittered copies take more calls,
    // not more memory per call.
    const auto rows_per_call = static_cast<std::int64_t>(options_.batch_size) * (options_.mirror ? 2 : 1);
    std::vector<torch::Tensor> parts;
    for (std::int64_t first = 0; first < batch.size(0); first += rows_per_call) {
      parts.push_back(backbone_.embed(batch.narrow(0, first, std::min(rows_per_call, batch.size(0) - first))).to(torch::kCPU));
      ++calls;
    }
    const auto all = torch::cat(parts);
    const std::int64_t jitters = options_.jitters;
    const std::int64_t plain_copies = options_.mirror ? 2 : 1;
    auto embeddings = all.narrow(0, 0, n).clone();
    if (options_.mirror) embeddings += all.narrow(0, n, n);
    if (jitters > 0) embeddings += all.narrow(0, plain_copies * n, jitters * n).view({n, jitters, -1}).sum(1);
    embeddings /= static_cast<double>(plain_copies + jitters);
    return embeddings;
  }

  Backbone backbone_;
  std::optional<FacePipeline> pipeline_;
  EmbedderOptions options_;
  EmbedStats stats_;
  ProgressCallback progress_;
  std::unordered_map<ContentHash, torch::Tensor, detail::ContentHashKey> cache_;
};

}  // namespace siamese
