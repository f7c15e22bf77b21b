#pragma once

#include <siamese/errors.hpp>
#include <siamese/eval/pairs.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <random>
#include <iterator>
#include <string>
#include <unordered_set>
#include <vector>

namespace siamese::train {

/// A folder of identities, `root/<person>/<image>`: people sorted by name, images by file
/// name, so that seeded sampling is reproducible across machines.
class IdentityFolder {
 public:
  struct Person {
    std::string name;
    std::vector<std::filesystem::path> images;
  };

  /// Keeps people with at least `min_images` images (.jpg, .jpeg, .png, .bmp).
  /// Throws FileError when `root` is not a folder, Error when no person qualifies.
  explicit IdentityFolder(const std::filesystem::path& root, std::size_t min_images = 1) {
    std::error_code ec;
    if (!std::filesystem::is_directory(root, ec)) {
      throw FileError("identity folder '" + root.string() + "' does not exist or is not a folder");
    }
    for (const auto& entry : folder_entries(root)) {
      if (!entry.is_directory(ec)) continue;  // files, and links that lead nowhere or in a loop
      Person person{entry.path().filename().string(), {}};
      for (const auto& file : folder_entries(entry.path())) {
        auto ext = file.path().extension().string();
        std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
        if (file.is_regular_file(ec) && (ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp")) {
          person.images.push_back(file.path());
        }
      }
      if (person.images.size() >= min_images) {
        std::sort(person.images.begin(), person.images.end());
        people_.push_back(std::move(person));
      }
    }
    std::sort(people_.begin(), people_.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    if (people_.empty()) {
      throw Error("identity folder '" + root.string() + "' has no person with at least " +
                  std::to_string(min_images) + " images");
    }
  }

  const std::vector<Person>& people() const { return people_; }

  /// Every image of every person, people in name order.
  std::vector<std::filesystem::path> images() const {
    std::vector<std::filesystem::path> all;
    for (const auto& person : people_) all.insert(all.end(), person.images.begin(), person.images.end());
    return all;
  }

  /// The folder without the people whose folder names are in `names` (e.g. the people of a
  /// test pair list, so that nothing trains on them). Throws Error when nobody is left.
  IdentityFolder excluding(const std::unordered_set<std::string>& names) const {
    std::vector<Person> kept;
    std::copy_if(people_.begin(), people_.end(), std::back_inserter(kept),
                 [&](const Person& person) { return names.count(person.name) == 0; });
    if (kept.empty()) throw Error("excluding " + std::to_string(names.size()) + " people leaves nobody");
    return IdentityFolder(std::move(kept));
  }

  /// Splits people (not images) into two folders' worth, e.g. train and validation, so that no
  /// person is in both. `fraction` of the people, chosen with `seed`, go to the first part.
  std::pair<IdentityFolder, IdentityFolder> split(double fraction, std::uint64_t seed) const {
    auto shuffled = people_;
    std::mt19937_64 rng(seed);
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    const auto cut = static_cast<std::size_t>(std::lround(fraction * static_cast<double>(shuffled.size())));
    if (cut == 0 || cut == shuffled.size()) throw Error("split leaves one side without people");
    return {IdentityFolder(std::vector<Person>(shuffled.begin(), shuffled.begin() + cut)),
            IdentityFolder(std::vector<Person>(shuffled.begin() + cut, shuffled.end()))};
  }

 private:
  // The entries of `folder`. Throws FileError naming it when it cannot be listed.
  static std::vector<std::filesystem::directory_entry> folder_entries(const std::filesystem::path& folder) {
    std::error_code ec;
    std::vector<std::filesystem::directory_entry> entries;
    for (std::filesystem::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) entries.push_back(*it);
    if (ec) throw FileError("cannot list folder '" + folder.string() + "': " + ec.message());
    return entries;
  }

  explicit IdentityFolder(std::vector<Person> people) : people_(std::move(people)) {
    std::sort(people_.begin(), people_.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  }
  std::vector<Person> people_;
};

/// Balanced, seeded pairs: half same-person (from people with 2+ images), half different.
/// Requires: at least one person with 2 images and at least 2 people.
inline std::vector<eval::ImagePair> sample_pairs(const IdentityFolder& folder, std::size_t count,
                                                 std::uint64_t seed) {
  const auto& people = folder.people();
  std::vector<std::size_t> with_two;
  for (std::size_t i = 0; i < people.size(); ++i) {
    if (people[i].images.size() >= 2) with_two.push_back(i);
  }
  if (with_two.empty() || people.size() < 2) {
    throw Error("sample_pairs needs a person with 2 images and at least 2 people");
  }
  std::mt19937_64 rng(seed);
  auto pick = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };
  std::vector<eval::ImagePair> pairs;
  pairs.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    if (i % 2 == 0) {
      const auto& p = people[with_two[pick(with_two.size())]];
      const auto a = pick(p.images.size());
      auto b = pick(p.images.size() - 1);
      if (b >= a) ++b;
      pairs.push_back({p.images[a], p.images[b], 1, 0});
    } else {
      const auto a = pick(people.size());
      auto b = pick(people.size() - 1);
      if (b >= a) ++b;
      pairs.push_back({people[a].images[pick(people[a].images.size())],
                       people[b].images[pick(people[b].images.size())], 0, 0});
    }
  }
  return pairs;
}

/// How triplet negatives are chosen.
enum class Mining {
  random,     ///< any other person's image
  semi_hard,  ///< the closest negative farther than the positive (FaceNet); else the hardest
  hard,       ///< the closest negative
};

/// For each (anchor, positive) of a batch, the index of its negative.
/// Requires: embeddings [M,D], labels [M] (person ids), anchors and positives indices into the
/// batch, each anchor with at least one other-person row. Ensures: one index per anchor, of a
/// row whose label differs from the anchor's.
inline std::vector<std::int64_t> select_negatives(const torch::Tensor& embeddings, const std::vector<std::int64_t>& labels,
                                                  const std::vector<std::int64_t>& anchors,
                                                  const std::vector<std::int64_t>& positives, Mining mining,
                                                  std::mt19937_64& rng) {
  if (embeddings.dim() != 2 || embeddings.size(0) != static_cast<std::int64_t>(labels.size()) ||
      anchors.size() != positives.size()) {
    throw ShapeError("select_negatives needs embeddings [M,D] with M labels and one positive per anchor");
  }
  torch::Tensor distances;
  {
    torch::NoGradGuard no_grad;
    distances = torch::cdist(embeddings.detach().to(torch::kFloat64), embeddings.detach().to(torch::kFloat64)).to(torch::kCPU);
  }
  const auto d = distances.accessor<double, 2>();
  std::vector<std::int64_t> negatives;
  for (std::size_t t = 0; t < anchors.size(); ++t) {
    const auto a = anchors[t];
    std::vector<std::int64_t> candidates;
    for (std::int64_t j = 0; j < static_cast<std::int64_t>(labels.size()); ++j) {
      if (labels[j] != labels[a]) candidates.push_back(j);
    }
    if (candidates.empty()) throw Error("select_negatives: anchor " + std::to_string(a) + " has no negative in the batch");
    auto closest = [&](auto accept) {
      std::int64_t best = -1;
      for (auto j : candidates) {
        if (accept(j) && (best < 0 || d[a][j] < d[a][best])) best = j;
      }
      return best;
    };
    std::int64_t chosen = -1;
    if (mining == Mining::random) {
      chosen = candidates[std::uniform_int_distribution<std::size_t>(0, candidates.size() - 1)(rng)];
    } else {
      if (mining == Mining::semi_hard) {
        const double positive = d[a][positives[t]];
        chosen = closest([&](std::int64_t j) { return d[a][j] > positive; });
      }
      if (chosen < 0) chosen = closest([](std::int64_t) { return true; });
    }
    negatives.push_back(chosen);
  }
  return negatives;
}

}  // namespace siamese::train
