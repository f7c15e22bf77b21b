#pragma once

// Reading numbers from JSON the library did not necessarily write (metadata inside model files,
// calibration files, training checkpoints): every integer goes through json_integer(), every
// real number through json_number(). nlohmann's get<int>() and get<std::size_t>() convert a
// floating-point value such as 1e300 with a cast whose result is undefined; these refuse it.

#include <siamese/errors.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <string>

namespace siamese::detail {

/// An integer JSON value in [min, max]: a JSON integer, never a float, a string or a bool.
/// Throws MetadataError naming `what` and the value otherwise.
inline std::int64_t json_integer(const nlohmann::json& value, const std::string& what, std::int64_t min, std::int64_t max) {
  const bool in_range = (value.is_number_integer() && !value.is_number_unsigned() && value.get<std::int64_t>() >= min &&
                         value.get<std::int64_t>() <= max) ||
                        (value.is_number_unsigned() && value.get<std::uint64_t>() <= static_cast<std::uint64_t>(max) &&
                         static_cast<std::int64_t>(value.get<std::uint64_t>()) >= min);
  if (!in_range) {
    throw MetadataError(what + " must be an integer in " + std::to_string(min) + ".." + std::to_string(max) + ", got " +
                        value.dump().substr(0, 40));
  }
  return value.get<std::int64_t>();
}

/// A finite JSON number (an integer or a float). Throws MetadataError naming `what` otherwise.
inline double json_number(const nlohmann::json& value, const std::string& what) {
  if (!value.is_number() || !std::isfinite(value.get<double>())) {
    throw MetadataError(what + " must be a finite number, got " + value.dump().substr(0, 40));
  }
  return value.get<double>();
}

/// `text` parsed as a JSON object; `where` names its source ("calibration 'F'"). Throws
/// MetadataError when it is not valid JSON, or valid JSON but not an object.
inline nlohmann::json parse_json_object(const std::string& text, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw MetadataError(where + " is not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw MetadataError(where + " is not a JSON object");
  return j;
}

}  // namespace siamese::detail
