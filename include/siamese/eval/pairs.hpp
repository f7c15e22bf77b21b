#pragma once

#include <siamese/errors.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <unordered_set>
#include <vector>

namespace siamese::eval {

/// A pair list line is malformed. `what()` names the file and the line number.
class PairListError : public Error {
 public:
  using Error::Error;
};

/// One labelled pair of images. Label convention, everywhere in the library: 1 = same person.
struct ImagePair {
  std::filesystem::path a;
  std::filesystem::path b;
  int label = 0;  ///< 1 same person, 0 different people
  int fold = 0;   ///< the LFW fold (0-based); 0 for lists without folds
};

/// A parsed pair list, with the number of folds it defines.
struct PairList {
  std::vector<ImagePair> pairs;
  int folds = 1;
};

/// Limits that keep a hostile list from exhausting memory.
struct PairListLimits {
  std::size_t max_pairs = 1'000'000;  ///< LFW has 6,000; a list past this is refused
  std::size_t max_line_bytes = 4096;
};

namespace detail {

inline std::vector<std::string> split(const std::string& line, char separator) {
  std::vector<std::string> fields;
  std::string field;
  std::istringstream in(line);
  if (separator == '\t') {
    while (in >> field) fields.push_back(field);  // LFW files use tabs; tolerate spaces
  } else {
    while (std::getline(in, field, separator)) fields.push_back(field);
  }
  return fields;
}

inline int parse_count(const std::string& text, const std::string& where, int min, int max) {
  std::size_t used = 0;
  long value = 0;
  try {
    value = std::stol(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty() || value < min || value > max) {
    throw PairListError(where + ": expected a number in " + std::to_string(min) + ".." +
                        std::to_string(max) + ", got '" + text + "'");
  }
  return static_cast<int>(value);
}

inline std::string strip(std::string s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

inline std::ifstream open_list(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw FileError("cannot open pair list '" + file.string() + "'");
  return in;
}

inline bool read_line(std::istream& in, std::string& line, const PairListLimits& limits,
                      const std::string& where) {
  if (!std::getline(in, line)) return false;
  if (line.size() > limits.max_line_bytes) {
    throw PairListError(where + ": line longer than " + std::to_string(limits.max_line_bytes) + " bytes");
  }
  line = strip(line);
  return true;
}

}  // namespace detail

/// LFW's image path convention: root/Name/Name_0001.jpg.
inline std::filesystem::path lfw_image(const std::filesystem::path& root, const std::string& name, int number) {
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "_%04d.jpg", number);
  return root / name / (name + suffix);
}

/// Parses an LFW pair file: View 2's pairs.txt (header "10<TAB>300": 10 folds of 300
/// same-person lines then 300 different-person lines) or View 1's pairsDevTrain.txt /
/// pairsDevTest.txt (header "N": N same then N different, one fold).
/// Same-person lines are `name n1 n2`, different-person lines `name1 n1 name2 n2`.
/// Throws FileError when the file cannot be opened, PairListError naming the line for a
/// malformed header or line, or a count that disagrees with the header.
/// This overload reads from `in`; `name` labels errors (a file name, "<stdin>", ...).
inline PairList parse_lfw_pairs(std::istream& in, const std::string& name, const std::filesystem::path& image_root,
                                const PairListLimits& limits = {}) {
  std::string line;
  if (!detail::read_line(in, line, limits, name + ":1")) throw PairListError(name + ": empty file");
  const auto header = detail::split(line, '\t');
  PairList list;
  int per_fold = 0;
  if (header.size() == 2) {
    list.folds = detail::parse_count(header[0], name + ":1 folds", 1, 100);
    per_fold = detail::parse_count(header[1], name + ":1 pairs per fold", 1, 1'000'000);
  } else if (header.size() == 1) {
    per_fold = detail::parse_count(header[0], name + ":1 pair count", 1, 1'000'000);
  } else {
    throw PairListError(name + ":1: header must be 'FOLDS<TAB>N' or 'N', got '" + line + "'");
  }
  const std::size_t expected = static_cast<std::size_t>(list.folds) * 2 * static_cast<std::size_t>(per_fold);
  if (expected > limits.max_pairs) {
    throw PairListError(name + ":1: header announces " + std::to_string(expected) +
                        " pairs, over the limit of " + std::to_string(limits.max_pairs));
  }
  list.pairs.reserve(expected);
  std::size_t line_number = 1;
  while (detail::read_line(in, line, limits, name + ":" + std::to_string(line_number + 1))) {
    ++line_number;
    if (line.empty()) continue;
    const std::string where = name + ":" + std::to_string(line_number);
    if (list.pairs.size() == expected) {
      throw PairListError(where + ": more pairs than the header's " + std::to_string(expected));
    }
    const auto index = list.pairs.size();
    const int fold = static_cast<int>(index / (2 * static_cast<std::size_t>(per_fold)));
    const bool same_expected = (index % (2 * static_cast<std::size_t>(per_fold))) < static_cast<std::size_t>(per_fold);
    const auto f = detail::split(line, '\t');
    ImagePair pair;
    pair.fold = fold;
    if (f.size() == 3) {
      pair.a = lfw_image(image_root, f[0], detail::parse_count(f[1], where, 1, 99999));
      pair.b = lfw_image(image_root, f[0], detail::parse_count(f[2], where, 1, 99999));
      pair.label = 1;
    } else if (f.size() == 4) {
      pair.a = lfw_image(image_root, f[0], detail::parse_count(f[1], where, 1, 99999));
      pair.b = lfw_image(image_root, f[2], detail::parse_count(f[3], where, 1, 99999));
      pair.label = 0;
    } else {
      throw PairListError(where + ": expected 'name n1 n2' or 'name1 n1 name2 n2', got " +
                          std::to_string(f.size()) + " fields");
    }
    if ((pair.label == 1) != same_expected) {
      throw PairListError(where + ": a " + (pair.label ? "same" : "different") +
                          "-person line where the header's layout puts " +
                          (same_expected ? "same" : "different") + "-person pairs");
    }
    list.pairs.push_back(std::move(pair));
  }
  if (list.pairs.size() != expected) {
    throw PairListError(name + ": header announces " + std::to_string(expected) + " pairs, file has " +
                        std::to_string(list.pairs.size()));
  }
  return list;
}

inline PairList parse_lfw_pairs(const std::filesystem::path& file, const std::filesystem::path& image_root,
                                const PairListLimits& limits = {}) {
  auto in = detail::open_list(file);
  return parse_lfw_pairs(in, file.string(), image_root, limits);
}

/// Parses a CSV pair list `path_a,path_b,label` (label 1 = same, 0 = different), paths relative
/// to `image_root` unless absolute. A first line `path_a,path_b,label` is skipped as a header.
/// Throws PairListError naming the line for malformed lines.
/// This overload reads from `in`; `name` labels errors.
inline PairList parse_csv_pairs(std::istream& in, const std::string& name, const std::filesystem::path& image_root,
                                const PairListLimits& limits = {}) {
  PairList list;
  std::string line;
  std::size_t line_number = 0;
  while (detail::read_line(in, line, limits, name + ":" + std::to_string(line_number + 1))) {
    ++line_number;
    if (line.empty() || (line_number == 1 && line.rfind("path_a,", 0) == 0)) continue;
    const std::string where = name + ":" + std::to_string(line_number);
    const auto f = detail::split(line, ',');
    if (f.size() != 3 || f[0].empty() || f[1].empty() || (f[2] != "0" && f[2] != "1")) {
      throw PairListError(where + ": expected 'path_a,path_b,label' with label 0 or 1, got '" + line + "'");
    }
    if (list.pairs.size() == limits.max_pairs) {
      throw PairListError(where + ": more than " + std::to_string(limits.max_pairs) + " pairs");
    }
    list.pairs.push_back({image_root / f[0], image_root / f[1], f[2] == "1" ? 1 : 0, 0});
  }
  if (list.pairs.empty()) throw PairListError(name + ": no pairs");
  return list;
}

inline PairList parse_csv_pairs(const std::filesystem::path& file, const std::filesystem::path& image_root,
                                const PairListLimits& limits = {}) {
  auto in = detail::open_list(file);
  return parse_csv_pairs(in, file.string(), image_root, limits);
}

/// Parses a pair list by its extension: .csv as CSV, anything else as LFW.
inline PairList parse_pairs(const std::filesystem::path& file, const std::filesystem::path& image_root,
                            const PairListLimits& limits = {}) {
  return file.extension() == ".csv" ? parse_csv_pairs(file, image_root, limits)
                                    : parse_lfw_pairs(file, image_root, limits);
}

/// Every distinct image of a list, in first-seen order.
inline std::vector<std::filesystem::path> distinct_images(const PairList& list) {
  std::vector<std::filesystem::path> images;
  std::unordered_set<std::string> seen;
  for (const auto& pair : list.pairs) {
    for (const auto* path : {&pair.a, &pair.b}) {
      if (seen.insert(path->string()).second) images.push_back(*path);
    }
  }
  return images;
}

/// The people of a list: the names of the folders its images are in (LFW's layout,
/// root/<person>/<image>), e.g. to keep them out of training.
inline std::unordered_set<std::string> people_in(const PairList& list) {
  std::unordered_set<std::string> people;
  for (const auto& pair : list.pairs) {
    people.insert(pair.a.parent_path().filename().string());
    people.insert(pair.b.parent_path().filename().string());
  }
  return people;
}

}  // namespace siamese::eval
