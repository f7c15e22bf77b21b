#pragma once

// FAISS search for large galleries. Needs FAISS (Debian: libfaiss-dev) and the CMake target
// siamese::faiss, which exists when FAISS was found; nothing else in the library includes it.

#include <siamese/distance.hpp>
#include <siamese/errors.hpp>
#include <siamese/index.hpp>

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/clone_index.h>
#include <faiss/impl/FaissException.h>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>

namespace siamese {

namespace detail {
/// FAISS's row-number type for `Index`: the nested Index::idx_t of FAISS up to 1.7.3
/// (Debian 12), else std::int64_t, which is what faiss::idx_t is from 1.7.4 on, where the
/// nested name is gone. Either way the library's int64 row tensors are passed as they are.
template <class Index, class = void>
struct faiss_row_number {
  using type = std::int64_t;
};
template <class Index>
struct faiss_row_number<Index, std::void_t<typename Index::idx_t>> {
  using type = typename Index::idx_t;
};
using faiss_row_number_t = typename faiss_row_number<faiss::Index>::type;
static_assert(sizeof(faiss_row_number_t) == sizeof(std::int64_t) && std::is_signed_v<faiss_row_number_t>,
              "FAISS row numbers must be signed 64-bit integers, as the library's row tensors are");
}  // namespace detail

/// Which FAISS structure a FaissIndex builds.
enum class FaissKind {
  flat,  ///< IndexFlatL2: exact, the reference for the others
  ivf,   ///< IndexIVFFlat: k-means cells, `probe_cells` of them searched; fast, approximate
  hnsw,  ///< IndexHNSWFlat: a navigable graph; fastest queries, slow to build, approximate
};

/// How a FaissIndex is built and searched.
struct FaissIndexOptions {
  FaissKind kind = FaissKind::ivf;
  /// IVF cells; 0 picks about 4 sqrt(M), and never more than M / 39 (k-means needs ~39
  /// training points per cell).
  std::int64_t cells = 0;
  /// IVF: cells searched per probe; 0 searches a sixteenth of the cells (at least 16), about
  /// 6% of the rows whatever the gallery's size: recall@1 0.996 against exact search at 1M x
  /// 128 with 1,024 cells (64 searched; 16 gave 0.93), in a tenth of exact search's time
  /// (docs/performance.md).
  std::int64_t probe_cells = 0;
  int hnsw_links = 32;               ///< HNSW: M, links per node
  int hnsw_build_breadth = 40;       ///< HNSW: efConstruction
  int hnsw_search_breadth = 64;      ///< HNSW: efSearch
  /// IVF retrains its cells when the gallery has grown this many times since the last training.
  double retrain_growth = 4.0;
};

/// A VectorIndex on FAISS with Euclidean (L2) distances, for galleries of millions of
/// embeddings. Rows keep their gallery row numbers. Distances returned are exact Euclidean
/// distances of the rows found, clamped as EuclideanDistance does; with `ivf` and `hnsw` the
/// rows found may miss some nearer ones (measure recall with benchmarks/gallery_search).
class FaissIndex final : public VectorIndex {
 public:
  explicit FaissIndex(FaissIndexOptions options = {}) : options_(options) {
    if (options_.probe_cells < 0 || options_.hnsw_links < 2 || options_.hnsw_search_breadth < 1 ||
        options_.hnsw_build_breadth < 1 || options_.cells < 0 || !(options_.retrain_growth > 1.0)) {
      throw Error("FaissIndexOptions out of range");
    }
  }

  FaissIndex(const FaissIndex& other)
      : options_(other.options_), trained_rows_(other.trained_rows_), dim_(other.dim_),
        index_(other.index_ ? faiss::clone_index(other.index_.get()) : nullptr) {}

  void reset(const torch::Tensor& rows) override {
    dim_ = rows.size(1);
    index_ = build(rows);
  }

  void append(const torch::Tensor& all_rows, std::int64_t first_new) override {
    const auto total = all_rows.size(0);
    if (!index_ || !index_->is_trained || index_->ntotal != first_new ||
        (options_.kind == FaissKind::ivf && static_cast<double>(total) > options_.retrain_growth * std::max<std::int64_t>(trained_rows_, 1))) {
      reset(all_rows);
      return;
    }
    const auto added = all_rows.narrow(0, first_new, total - first_new).contiguous();
    guarded([&] { index_->add(added.size(0), added.data_ptr<float>()); });
  }

  Neighbours search(const torch::Tensor& probes, std::int64_t k) const override {
    if (!index_) throw Error("FaissIndex::search before reset(): the index holds no rows yet");
    const auto p = probes.contiguous();
    Neighbours out{torch::empty({p.size(0), k}, torch::kFloat32), torch::empty({p.size(0), k}, torch::kInt64)};
    guarded([&] {
      index_->search(p.size(0), p.data_ptr<float>(), k, out.distances.data_ptr<float>(),
                     reinterpret_cast<detail::faiss_row_number_t*>(out.rows.data_ptr<std::int64_t>()));
    });
    // FAISS gives squared distances and -1 rows (at +max float) when it finds fewer than k.
    const auto missing = out.rows.lt(0);
    out.distances = torch::sqrt(torch::clamp_min(out.distances, EuclideanDistance{}.eps))
                        .masked_fill(missing, std::numeric_limits<float>::infinity());
    return out;
  }

  std::unique_ptr<VectorIndex> clone() const override { return std::make_unique<FaissIndex>(*this); }

  std::string description() const override {
    switch (options_.kind) {
      case FaissKind::flat: return "faiss Flat";
      case FaissKind::ivf:
        return "faiss IVF" + std::to_string(ivf_cells()) + ",Flat nprobe " + std::to_string(probe_cells(ivf_cells()));
      case FaissKind::hnsw:
        return "faiss HNSW" + std::to_string(options_.hnsw_links) + " efSearch " + std::to_string(options_.hnsw_search_breadth);
    }
    return "faiss";
  }

  bool exact() const override { return options_.kind == FaissKind::flat; }

  /// Searches `cells` IVF cells per probe from now on (FaissIndexOptions::probe_cells), without
  /// building again: recall is traded for latency on a built index. Requires: cells >= 1.
  void set_probe_cells(std::int64_t cells) {
    if (cells < 1) throw Error("FaissIndex::set_probe_cells needs at least 1 cell, got " + std::to_string(cells));
    options_.probe_cells = cells;
    if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(index_.get())) ivf->nprobe = static_cast<std::size_t>(probe_cells(ivf_cells()));
  }

 private:
  template <class F>
  static void guarded(F f) {
    try {
      f();
    } catch (const faiss::FaissException& e) {
      throw Error(std::string("FAISS: ") + e.what());
    }
  }

  // The cells searched per probe among `cells` (FaissIndexOptions::probe_cells).
  std::int64_t probe_cells(std::int64_t cells) const {
    const auto wanted = options_.probe_cells > 0 ? options_.probe_cells : std::max<std::int64_t>(16, cells / 16);
    return std::max<std::int64_t>(1, std::min(wanted, cells));
  }

  std::int64_t ivf_cells() const {
    if (auto* ivf = dynamic_cast<const faiss::IndexIVF*>(index_.get())) return static_cast<std::int64_t>(ivf->nlist);
    return options_.cells;
  }

  std::unique_ptr<faiss::Index> build(const torch::Tensor& rows) {
    const auto data = rows.contiguous();
    const auto m = data.size(0);
    std::unique_ptr<faiss::Index> index;
    guarded([&] {
      switch (options_.kind) {
        case FaissKind::flat: index = std::make_unique<faiss::IndexFlatL2>(dim_); break;
        case FaissKind::hnsw: {
          auto hnsw = std::make_unique<faiss::IndexHNSWFlat>(dim_, options_.hnsw_links);
          hnsw->hnsw.efConstruction = options_.hnsw_build_breadth;
          hnsw->hnsw.efSearch = options_.hnsw_search_breadth;
          index = std::move(hnsw);
          break;
        }
        case FaissKind::ivf: {
          const auto wanted = options_.cells > 0 ? options_.cells : static_cast<std::int64_t>(4 * std::sqrt(static_cast<double>(m)));
          const auto cells = std::max<std::int64_t>(1, std::min<std::int64_t>(wanted, m / 39));
          // The index owns its quantizer only once it exists: should its constructor throw, the
          // quantizer is still ours to free.
          auto quantizer = std::make_unique<faiss::IndexFlatL2>(dim_);
          auto ivf = std::make_unique<faiss::IndexIVFFlat>(quantizer.get(), dim_, static_cast<std::size_t>(cells));
          quantizer.release();
          ivf->own_fields = true;
          ivf->nprobe = static_cast<std::size_t>(probe_cells(cells));
          ivf->cp.seed = 1234;  // reproducible cells
          ivf->cp.min_points_per_centroid = 1;  // small galleries: few cells, no warning
          if (m > 0) ivf->train(m, data.data_ptr<float>());
          trained_rows_ = m;
          index = std::move(ivf);
          break;
        }
      }
      if (m > 0) index->add(m, data.data_ptr<float>());
    });
    return index;
  }

  FaissIndexOptions options_;
  std::int64_t trained_rows_ = 0;
  std::int64_t dim_ = 0;
  std::unique_ptr<faiss::Index> index_;
};

}  // namespace siamese
