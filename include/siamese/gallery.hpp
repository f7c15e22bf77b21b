#pragma once

#include <siamese/detail/files.hpp>
#include <siamese/detail/gallery_file.hpp>
#include <siamese/detail/gallery_rows.hpp>
#include <siamese/detail/format.hpp>
#include <siamese/device.hpp>
#include <siamese/distance.hpp>
#include <siamese/errors.hpp>
#include <siamese/gallery_database.hpp>
#include <siamese/gallery_store.hpp>
#include <siamese/index.hpp>
#include <siamese/open_set.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace siamese {

/// What a probe's distance to a person is.
enum class PersonDistance {
  /// To the person's template: the mean of their L2-normalised embeddings, at their mean
  /// length (person_template()). The default: with two photos enrolled per person on LFW, FNIR
  /// at FPIR 1% falls from 0.22 (nearest_photo) to 0.16 (docs/accuracy.md). With one photo
  /// per person both are the same.
  template_mean,
  /// To the nearest of the person's enrolled embeddings (best of k): for people enrolled in
  /// very different conditions (a profile and a frontal photo), where a mean sits between them.
  nearest_photo,
};

/// One candidate of an identification.
struct GalleryMatch {
  std::string person;
  double distance = 0.0;  ///< Euclidean distance to the person (PersonDistance: template or nearest photo)
};

/// The answer to "who is this?": the top-k people, and whether the nearest is the probe's
/// person by the decision applied. Whether the face is known is the flag `known`, never a
/// name: any name, "unknown" too, may be a person's.
struct Identification {
  std::vector<GalleryMatch> candidates;  ///< nearest first
  bool known = false;                    ///< the nearest passes `decision`
  double score = 0.0;                    ///< decision.score() of the nearest (and second-nearest) person
  OpenSetDecision decision;              ///< the rule and threshold applied, and what they were read for
  /// The person identified: the nearest candidate when known, else std::nullopt.
  std::optional<std::string> best() const {
    if (!known) return std::nullopt;
    return candidates.front().person;
  }
};

/// One template row [1, D] for a person from their embeddings [K, D]: the mean of the
/// L2-normalised rows, at the rows' mean length; what PersonDistance::template_mean measures
/// against, for callers who store or compare templates themselves.
/// Requires: K >= 1 rows.
inline torch::Tensor person_template(const torch::Tensor& embeddings) {
  auto rows = embeddings.dim() == 1 ? embeddings.unsqueeze(0) : embeddings;
  if (rows.dim() != 2 || rows.size(0) < 1) throw ShapeError("person_template needs [K, D] rows, got " + detail::shape_string(embeddings));
  detail::PersonTemplates templates;  // the gallery's own arithmetic, for one person
  templates.add(std::vector<std::string>(static_cast<std::size_t>(rows.size(0)), std::string()),
                rows.to(torch::kCPU, torch::kFloat32).contiguous());
  return templates.values.narrow(0, 0, 1).clone();
}

/// People and their face embeddings, for 1:N identification.
///
/// Each person holds one or more embeddings (one per enrolled photo); a probe's distance to a
/// person is its distance to their template (the default) or to the nearest of their
/// embeddings (set_person_distance()). With templates, the people are found by their nearest
/// embeddings (the max(k, 2) + 8 nearest people) and ranked by their templates. A gallery records the model it was made
/// with (name and embedding size) and refuses embeddings of any other. Search goes through a
/// VectorIndex: ExactIndex (matrix products) by default, an approximate FAISS index
/// (siamese/faiss_index.hpp) for millions of embeddings.
///
/// Storage: a gallery lives in memory (the constructor; save() and load() move it to and from
/// a single checksummed file), or in a gallery database (open(): a GalleryStore, a SQLite file
/// or a PostgreSQL server), where every enroll, remove and rename is a transaction of its own
/// and any number of processes, on one machine or several, may change and read one gallery at
/// once. A database-backed gallery keeps its index in memory, built from the database, and
/// brings it up to date before each read (identify, people, size) when the store says the
/// database may have changed (SQLite: its change counter moved; PostgreSQL: a commit was
/// announced, with no round trip otherwise): enrollments by other processes are appended,
/// removals and renames applied in order (or, where the store cannot list them, every row read
/// again). While a server cannot be reached, reads answer from the rows held and writes throw
/// GalleryUnavailableError; the store catches up once it reconnects.
///
/// Thread safety: any number of threads may identify() while one thread enrolls, removes or
/// renames; readers see the gallery before or after each change, never half of one. Readers
/// search a snapshot without holding a lock; a writer copies the index first when a reader
/// still holds it (copy-on-write).
class Gallery {
 public:
  static constexpr std::uint32_t format_version = detail::gallery_file_version;

  /// The gallery in the database at `location` (a SQLite file's path, or a postgresql:// URL:
  /// open_gallery_store()), created for this model when there is none. Throws GalleryError
  /// when the location holds something else, or a gallery of another model (naming both);
  /// FileError when a file cannot be created; GalleryLoginError or GalleryUnavailableError
  /// when a server refuses the login or cannot be reached.
  static Gallery open(const std::filesystem::path& location, const std::string& model_name, std::int64_t embedding_size,
                      GalleryStoreOptions options = {}) {
    return Gallery(open_gallery_store(location.string(), model_name, embedding_size, std::move(options)));
  }

  /// The gallery in the existing database at `location`, whatever its model. Throws FileError
  /// when there is no such file, otherwise as above.
  static Gallery open(const std::filesystem::path& location, GalleryStoreOptions options = {}) {
    return Gallery(open_gallery_store(location.string(), std::move(options)));
  }

  Gallery(std::string model_name, std::int64_t embedding_size)
      : model_name_(std::move(model_name)), embedding_size_(checked_size(embedding_size)), rows_(embedding_size_) {}

  /// A copy shares the rows and the index until either side changes (copy-on-write) and, for
  /// a database-backed gallery, the database. Copying locks `other` for reading.
  Gallery(const Gallery& other) : Gallery(other, std::shared_lock(other.mutex_)) {}

  /// Moving takes `other`'s rows, index and database; `other` is left an empty in-memory
  /// gallery of the same model. Moving locks `other` for writing.
  Gallery(Gallery&& other) : Gallery(std::move(other), std::unique_lock(other.mutex_)) {}

  Gallery& operator=(const Gallery& other) {
    if (this == &other) return *this;
    std::unique_lock mine(mutex_, std::defer_lock);
    std::shared_lock theirs(other.mutex_, std::defer_lock);
    std::lock(mine, theirs);
    model_name_ = other.model_name_;
    embedding_size_ = other.embedding_size_;
    rows_ = other.rows_;
    store_ = other.store_;
    known_ = other.known_;
    person_distance_ = other.person_distance_;
    return *this;
  }

  Gallery& operator=(Gallery&& other) {
    if (this == &other) return *this;
    std::unique_lock mine(mutex_, std::defer_lock);
    std::unique_lock theirs(other.mutex_, std::defer_lock);
    std::lock(mine, theirs);
    model_name_ = other.model_name_;
    embedding_size_ = other.embedding_size_;
    rows_ = std::exchange(other.rows_, detail::GalleryRows(other.embedding_size_));
    store_ = std::move(other.store_);
    known_ = std::exchange(other.known_, GalleryStoreVersion{});
    person_distance_ = other.person_distance_;
    return *this;
  }

  /// The database behind this gallery; null for an in-memory gallery.
  GalleryStore* store() const { return store_.get(); }

  /// Searches through `index` from now on, built from the enrolled embeddings.
  /// Requires: a non-null index.
  void set_index(std::unique_ptr<VectorIndex> index) {
    if (!index) throw Error("Gallery::set_index needs an index");
    std::unique_lock lock(mutex_);
    rows_.set_index(std::move(index));
  }

  /// How a probe's distance to a person is measured from now on (PersonDistance).
  void set_person_distance(PersonDistance distance) {
    std::unique_lock lock(mutex_);
    person_distance_ = distance;
  }
  PersonDistance person_distance() const {
    std::shared_lock lock(mutex_);
    return person_distance_;
  }

  /// What the gallery searches with.
  std::string index_description() const {
    std::shared_lock lock(mutex_);
    return rows_.index_description();
  }

  const std::string& model_name() const { return model_name_; }
  std::int64_t embedding_size() const { return embedding_size_; }

  /// Throws GalleryError naming both models when `model_name`/`embedding_size` differ from
  /// the gallery's.
  void check_model(const std::string& model_name, std::int64_t embedding_size) const {
    if (store_) return store_->check_model(model_name, embedding_size);
    detail::check_same_model("gallery", model_name_, embedding_size_, model_name, embedding_size);
  }

  /// Adds embeddings [K, D] (or one [D]) for `person` (a non-empty UTF-8 name of at most
  /// 1024 bytes, no control characters); `photos`, when given, says where each row came from
  /// (kept by a database, ignored in memory). In a database, a photo whose content hash the
  /// person already has is skipped (GalleryStore::enroll). Throws ShapeError for the wrong
  /// size, NumericError for non-finite values, Error for a bad name or a `photos` list of the
  /// wrong length. Ensures: returns the rows added.
  std::size_t enroll(const std::string& person, const torch::Tensor& embeddings, std::vector<EnrolledPhoto> photos = {}) {
    return enroll(std::vector<Enrollment>{{person, embeddings, std::move(photos)}});
  }

  /// Adds several people's embeddings at once, each checked as enroll() checks one: in a
  /// database, one transaction for all of them (all or none). Returns the rows added.
  std::size_t enroll(const std::vector<Enrollment>& batch) {
    std::vector<Enrollment> checked;
    checked.reserve(batch.size());
    for (const auto& enrollment : batch) checked.push_back(check_enrollment(enrollment));
    if (store_) {
      const auto added = store_->enroll(checked);
      sync();
      return added;
    }
    std::vector<std::string> owners;
    std::vector<torch::Tensor> rows;
    for (const auto& enrollment : checked) {
      owners.insert(owners.end(), static_cast<std::size_t>(enrollment.embeddings.size(0)), enrollment.person);
      rows.push_back(enrollment.embeddings);
    }
    std::unique_lock lock(mutex_);
    rows_.append(owners, torch::cat(rows));  // one copy of the matrix for the whole batch
    return owners.size();
  }

  /// The enrolled person, other than `person`, whom one of `embeddings` [K, D] (or [D]) is
  /// identified as under `decision`, if any: what enrolling them as `person` would confuse
  /// (the same face under two names, or two people the gallery cannot tell apart). Callers
  /// refuse such an enrollment unless told the two are different people (twins, look-alikes).
  std::optional<GalleryMatch> conflicting_person(const std::string& person, const torch::Tensor& embeddings,
                                                 const OpenSetDecision& decision) const {
    for (const auto& found : identify(embeddings, 1, decision)) {
      if (found.known && found.candidates.front().person != person) return found.candidates.front();
    }
    return std::nullopt;
  }

  /// Every person's embeddings, in order of enrollment (photo records are not kept in
  /// memory): what enroll() takes, to copy a gallery into another (an in-memory gallery into
  /// a database, or back).
  std::vector<Enrollment> enrollments() const {
    sync();
    std::shared_lock lock(mutex_);
    return detail::group_by_person(rows_.owners(), rows_.embeddings());
  }

  /// Removes a person; returns false when there was none.
  bool remove(const std::string& person) {
    if (store_) {
      const bool removed = store_->remove(person);
      sync();
      return removed;
    }
    std::unique_lock lock(mutex_);
    return rows_.remove(person);
  }

  /// Renames a person; returns false when there was none. Throws Error when `to` is taken.
  bool rename(const std::string& from, const std::string& to) {
    check_name(to);
    if (store_) {
      const bool renamed = store_->rename(from, to);
      sync();
      return renamed;
    }
    std::unique_lock lock(mutex_);
    return rows_.rename(from, to);
  }

  /// People and how many embeddings each has, sorted by name.
  std::vector<std::pair<std::string, std::size_t>> people() const {
    sync();
    std::shared_lock lock(mutex_);
    std::vector<std::pair<std::string, std::size_t>> list;
    for (const auto& [person, rows] : rows_.rows_per_person()) list.emplace_back(person, static_cast<std::size_t>(rows));
    std::sort(list.begin(), list.end());
    return list;
  }

  std::size_t size() const {
    sync();
    std::shared_lock lock(mutex_);
    return rows_.size();
  }

  /// Identifies probes [P, D] (or one [D]) against a fixed distance `threshold` on the nearest
  /// person (the 1:1 rule, whatever the gallery's size): identify(probes, k,
  /// OpenSetDecision::distance_at_most(threshold)).
  std::vector<Identification> identify(const torch::Tensor& probes, std::size_t k, double threshold) const {
    return identify(probes, k, OpenSetDecision::distance_at_most(threshold));
  }

  /// Identifies probes [P, D] (or one [D]) with the threshold that keeps strangers out at
  /// `target_fpir` for this gallery's size now (threshold_for(calibration, rule, people,
  /// target_fpir)): the decision each Identification carries says which size and FPIR.
  /// Throws MetadataError naming both models when `calibration` was made for another model;
  /// Error for a target FPIR outside the calibration's; GalleryError for an empty gallery.
  std::vector<Identification> identify(const torch::Tensor& probes, std::size_t k, const OpenSetCalibration& calibration,
                                       double target_fpir = 0.01, OpenSetRule rule = OpenSetRule::distance_ratio) const {
    if (calibration.model_name != model_name_) {
      throw MetadataError("the open-set calibration of '" + calibration.model_name + "' cannot serve a gallery of '" +
                          model_name_ + "'");
    }
    const auto search = take_snapshot();
    return identify_in(search, probes, k, threshold_for(calibration, rule, search.rows.people, target_fpir));
  }

  /// Identifies probes [P, D] (or one [D]) in one search of the whole gallery (one matrix
  /// product with the exact index).
  /// Ensures: one Identification per probe, at most `k` distinct people each, nearest first;
  /// `known` when `decision` accepts the nearest person's distance (and the second-nearest's,
  /// for OpenSetRule::distance_ratio). With an approximate index the people found may miss a
  /// nearer one; their distances are exact.
  std::vector<Identification> identify(const torch::Tensor& probes, std::size_t k, const OpenSetDecision& decision) const {
    return identify_in(take_snapshot(), probes, k, decision);
  }

  /// Saves to `file` atomically (detail::replace_file: a temporary of its own, flushed to
  /// disk, then renamed over the old file), so a crash or a full disk leaves the previous
  /// gallery intact. The format: detail::encode_gallery_file().
  void save(const std::filesystem::path& file) const {
    std::string bytes;
    {
      std::shared_lock lock(mutex_);
      bytes = detail::encode_gallery_file(model_name_, embedding_size_, rows_.owners(), rows_.embeddings());
    }
    detail::write_file_atomically(file, bytes, "gallery");
  }

  /// Loads a gallery saved by save(). Reads at most `max_bytes`; checks the checksum before
  /// trusting any count, so a truncated, tampered or hostile file raises GalleryError (naming
  /// the file) without allocating what it claims.
  static Gallery load(const std::filesystem::path& file, std::uintmax_t max_bytes = 8ULL << 30) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec)) throw FileError("gallery file '" + file.string() + "' does not exist");
    const auto size = std::filesystem::file_size(file, ec);
    const std::string name = "gallery '" + file.string() + "'";
    if (ec || size > max_bytes) throw GalleryError(name + " is larger than the limit of " + std::to_string(max_bytes) + " bytes");
    std::string bytes(static_cast<std::size_t>(size), '\0');
    std::ifstream in(file, std::ios::binary);
    if (!in.read(bytes.data(), static_cast<std::streamsize>(size))) throw FileError("cannot read " + name);
    return parse(bytes, name);
  }

  /// A gallery from the bytes of a gallery file; `name` labels errors. Throws as load().
  static Gallery parse(const std::string& bytes, const std::string& name) {
    auto contents = detail::decode_gallery_file(bytes, name);
    Gallery gallery(contents.model_name, contents.embedding_size);
    gallery.rows_.replace(std::move(contents.owners), contents.embeddings);  // not shared yet: no lock needed
    return gallery;
  }

 private:
  explicit Gallery(std::unique_ptr<GalleryStore> store) : Gallery(store->model_name(), store->embedding_size()) {
    store_ = std::move(store);
    sync();
  }

  // The copy and the move, made while the caller's lock on `other` lives (until the end of
  // the delegating constructor's full expression).
  Gallery(const Gallery& other, const std::shared_lock<std::shared_mutex>&)
      : model_name_(other.model_name_), embedding_size_(other.embedding_size_), rows_(other.rows_),
        store_(other.store_), known_(other.known_), person_distance_(other.person_distance_) {}
  Gallery(Gallery&& other, const std::unique_lock<std::shared_mutex>&)
      : model_name_(other.model_name_),
        embedding_size_(other.embedding_size_),
        rows_(std::exchange(other.rows_, detail::GalleryRows(other.embedding_size_))),
        store_(std::move(other.store_)),
        known_(std::exchange(other.known_, GalleryStoreVersion{})),
        person_distance_(other.person_distance_) {}

  struct Search {
    detail::GalleryRows::Snapshot rows;  ///< searched without the lock: writers never change it
    PersonDistance person_distance = PersonDistance::template_mean;
  };

  Search take_snapshot() const {
    sync();
    std::shared_lock lock(mutex_);
    return {rows_.snapshot(), person_distance_};
  }

  std::vector<Identification> identify_in(const Search& search, const torch::Tensor& probes, std::size_t k,
                                          const OpenSetDecision& decision) const {
    auto rows = probes.defined() && probes.dim() == 1 ? probes.unsqueeze(0) : probes;
    if (!rows.defined() || rows.dim() != 2 || rows.size(1) != embedding_size_) {
      throw ShapeError("gallery of " + std::to_string(embedding_size_) + "-d embeddings cannot search " +
                       detail::shape_string(probes));
    }
    const auto& snapshot = search.rows;
    const auto& owners = snapshot.owners;
    std::vector<Identification> results(static_cast<std::size_t>(rows.size(0)));
    for (auto& result : results) result.decision = decision;
    if (owners->empty() || k == 0) return results;
    const bool templates = search.person_distance == PersonDistance::template_mean;
    // The ratio rule needs the second-nearest person too; templates re-rank a few more people.
    const std::size_t wanted = std::max<std::size_t>(k, decision.rule == OpenSetRule::distance_ratio ? 2 : 1);
    const std::size_t searched = templates ? std::max<std::size_t>(wanted, 2) + 8 : wanted;
    torch::NoGradGuard no_grad;
    // If no person has more than R rows, the k*R nearest rows hold at least k people, and the
    // first time a person appears in them is at that person's nearest row: exact top-k people.
    // k * most_rows can pass every row (or overflow) for a large k: then every row is searched.
    const auto rows_held = static_cast<std::int64_t>(owners->size());
    const auto per_person = std::max<std::int64_t>(snapshot.most_rows, 1);
    const auto take = searched <= static_cast<std::size_t>(rows_held / per_person) ? static_cast<std::int64_t>(searched) * per_person
                                                                                   : rows_held;
    const auto probe_rows = detail::moved_to(rows, torch::kCPU, torch::kFloat32, "Gallery::identify").contiguous();
    const auto found = snapshot.index->search(probe_rows, take);
    const auto v = found.distances.to(torch::kFloat64).contiguous();
    const auto ix = found.rows.contiguous();
    for (std::int64_t p = 0; p < rows.size(0); ++p) {
      auto& result = results[static_cast<std::size_t>(p)];
      for (std::int64_t j = 0; j < take && result.candidates.size() < searched; ++j) {
        const auto row = ix.data_ptr<std::int64_t>()[p * take + j];
        if (row < 0) break;
        const auto& person = (*owners)[static_cast<std::size_t>(row)];
        const bool seen = std::any_of(result.candidates.begin(), result.candidates.end(),
                                      [&](const GalleryMatch& m) { return m.person == person; });
        if (!seen) result.candidates.push_back({person, v.data_ptr<double>()[p * take + j]});
      }
      if (result.candidates.empty()) continue;
      if (templates) rank_by_templates(*snapshot.templates, probe_rows[p], result.candidates);
      result.candidates.resize(std::min(result.candidates.size(), wanted));
      const double second = result.candidates.size() > 1 ? result.candidates[1].distance : std::numeric_limits<double>::infinity();
      result.score = decision.score(result.candidates.front().distance, second);
      result.known = decision.accepts(result.score);
      result.candidates.resize(std::min(result.candidates.size(), k));
    }
    return results;
  }

  // Gives each candidate its distance to the person's template, nearest first.
  static void rank_by_templates(const detail::PersonTemplates& templates, const torch::Tensor& probe,
                                std::vector<GalleryMatch>& candidates) {
    std::vector<std::int64_t> slots;
    for (const auto& c : candidates) slots.push_back(templates.slot.at(c.person));
    const auto distances = EuclideanDistance{}(templates.values.index_select(0, torch::tensor(slots)),
                                               probe.unsqueeze(0).expand({static_cast<std::int64_t>(slots.size()), -1}))
                               .to(torch::kFloat64)
                               .contiguous();
    for (std::size_t i = 0; i < candidates.size(); ++i) candidates[i].distance = distances.data_ptr<double>()[i];
    std::stable_sort(candidates.begin(), candidates.end(),
                     [](const GalleryMatch& a, const GalleryMatch& b) { return a.distance < b.distance; });
  }

  static std::int64_t checked_size(std::int64_t embedding_size) {
    detail::check_embedding_size(embedding_size);
    return embedding_size;
  }

  Enrollment check_enrollment(const Enrollment& enrollment) const {
    check_name(enrollment.person);
    const auto& embeddings = enrollment.embeddings;
    auto rows = embeddings.defined() && embeddings.dim() == 1 ? embeddings.unsqueeze(0) : embeddings;
    if (!rows.defined() || rows.dim() != 2 || rows.size(1) != embedding_size_ || rows.size(0) < 1) {
      throw ShapeError("gallery of " + std::to_string(embedding_size_) + "-d embeddings cannot enroll " +
                       detail::shape_string(embeddings));
    }
    rows = detail::moved_to(rows.detach(), torch::kCPU, torch::kFloat32, "enrolling '" + enrollment.person + "'").contiguous();
    if (!torch::isfinite(rows).all().item<bool>()) {
      throw NumericError("cannot enroll non-finite embeddings for '" + enrollment.person + "'");
    }
    if (!enrollment.photos.empty() && enrollment.photos.size() != static_cast<std::size_t>(rows.size(0))) {
      throw Error("enrolling '" + enrollment.person + "': " + std::to_string(enrollment.photos.size()) + " photo records for " +
                  std::to_string(rows.size(0)) + " embeddings");
    }
    return {enrollment.person, rows, enrollment.photos};
  }

  // Brings a database-backed gallery up to date with its database (see the class comment).
  void sync() const {
    if (!store_) return;
    std::lock_guard syncing(sync_mutex_);
    if (!store_->may_have_changed()) return;
    std::optional<GalleryStoreRows> changes;
    try {
      changes = store_->changes_since(known_);
    } catch (const GalleryUnavailableError&) {
      if (known_.generation < 0) throw;
      return;  // answered from the rows held; caught up after the store reconnects
    }
    if (!changes) return;
    std::unique_lock lock(mutex_);
    if (changes->complete) {
      rows_.replace(std::move(changes->owners), changes->embeddings);
    } else if (changes->rewrites.empty()) {
      rows_.append(changes->owners, changes->embeddings);
    } else {
      apply_in_order(*changes);
    }
    known_ = changes->version;
  }

  // Appends new rows and applies removals and renames in the order they were committed: a
  // row enrolled after its person's removal stays, one enrolled before goes. Requires: one
  // generation per row (changes.row_generations).
  void apply_in_order(const GalleryStoreRows& changes) const {
    const auto& owners = changes.owners;
    std::size_t next = 0;
    const auto append_before = [&](std::int64_t generation) {
      auto end = next;
      while (end < owners.size() && changes.row_generations[end] < generation) ++end;
      if (end == next) return;
      rows_.append({owners.begin() + static_cast<std::ptrdiff_t>(next), owners.begin() + static_cast<std::ptrdiff_t>(end)},
                   changes.embeddings.narrow(0, static_cast<std::int64_t>(next), static_cast<std::int64_t>(end - next)));
      next = end;
    };
    for (const auto& rewrite : changes.rewrites) {
      append_before(rewrite.generation);
      if (rewrite.renamed_to) rows_.rename(rewrite.person, *rewrite.renamed_to); else rows_.remove(rewrite.person);
    }
    append_before(std::numeric_limits<std::int64_t>::max());
  }

  static void check_name(const std::string& person) {
    if (!detail::is_valid_name(person)) {
      throw Error("a person's name must be 1..1024 bytes without control characters, got '" +
                  detail::printable(person.substr(0, 64)) + "'");
    }
  }

  mutable std::shared_mutex mutex_;
  std::string model_name_;
  std::int64_t embedding_size_ = 0;
  // For a database-backed gallery a cache of the database, which readers (const) bring up to
  // date, hence mutable.
  mutable detail::GalleryRows rows_;
  std::shared_ptr<GalleryStore> store_;  ///< the database, or null in memory
  mutable std::mutex sync_mutex_;        ///< one sync() at a time
  mutable GalleryStoreVersion known_;    ///< the database version the rows reflect
  PersonDistance person_distance_ = PersonDistance::template_mean;
};

}  // namespace siamese
