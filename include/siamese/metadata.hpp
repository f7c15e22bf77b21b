#pragma once

#include <siamese/detail/json.hpp>
#include <siamese/errors.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

namespace siamese {

/// The order of colour channels a network expects in its input tensor.
enum class ChannelOrder { rgb, bgr };

/// How an 8-bit image becomes the network's input tensor: for each channel c,
/// `x = (pixel * scale - mean[c]) / std[c]`, with `pixel` in [0, 255].
struct InputSpec {
  int height = 0;
  int width = 0;
  ChannelOrder channel_order = ChannelOrder::rgb;
  double scale = 1.0 / 255.0;
  std::array<double, 3> mean{0.0, 0.0, 0.0};
  std::array<double, 3> std{1.0, 1.0, 1.0};

  friend bool operator==(const InputSpec& a, const InputSpec& b) {
    return a.height == b.height && a.width == b.width && a.channel_order == b.channel_order &&
           a.scale == b.scale && a.mean == b.mean && a.std == b.std;
  }
  friend bool operator!=(const InputSpec& a, const InputSpec& b) { return !(a == b); }
};

/// What a backbone file says about itself: stored as `siamese.json` inside the TorchScript
/// archive (an "extra file"), written by tools/ and by save_backbone().
struct BackboneMetadata {
  static constexpr int current_format_version = 1;

  int format_version = current_format_version;
  std::string name;                   ///< e.g. "faceapi-resnet34-128"
  std::string architecture;           ///< e.g. "inception_v3", "dlib_resnet"
  InputSpec input;
  std::int64_t embedding_size = 0;    ///< D of the [N, D] output
  bool pretrained = false;            ///< false: random weights, useless for real faces
  std::string weights;                ///< where the weights came from, in words
  std::string license;
  std::optional<double> distance_threshold;  ///< the source's same-person threshold, if any
  std::string alignment;              ///< face template the network was trained on, if any
  std::optional<double> multiply_adds;       ///< per image at `input` size, if measured
};

/// The file name of the metadata inside a TorchScript archive.
inline constexpr const char* metadata_file_name = "siamese.json";

namespace detail {

inline std::string channel_order_name(ChannelOrder order) {
  return order == ChannelOrder::rgb ? "RGB" : "BGR";
}

/// Checks the invariants every InputSpec must hold; `where` names the source for the message.
inline void validate_input_spec(const InputSpec& spec, const std::string& where) {
  constexpr int max_side = 8192;
  if (spec.height < 1 || spec.width < 1 || spec.height > max_side || spec.width > max_side) {
    throw MetadataError(where + ": input size " + std::to_string(spec.height) + "x" +
                        std::to_string(spec.width) + " is outside 1.." + std::to_string(max_side));
  }
  if (!std::isfinite(spec.scale) || spec.scale == 0.0) {
    throw MetadataError(where + ": input scale must be finite and non-zero, got " +
                        std::to_string(spec.scale));
  }
  for (int c = 0; c < 3; ++c) {
    if (!std::isfinite(spec.mean[c]) || !std::isfinite(spec.std[c]) || spec.std[c] == 0.0) {
      throw MetadataError(where + ": input mean/std of channel " + std::to_string(c) +
                          " must be finite with a non-zero std");
    }
  }
}

}  // namespace detail

/// Serialises metadata to the JSON text stored in the archive.
inline std::string to_json_string(const BackboneMetadata& m) {
  nlohmann::json j;
  j["format_version"] = m.format_version;
  j["name"] = m.name;
  j["architecture"] = m.architecture;
  j["input"] = {{"height", m.input.height},
                {"width", m.input.width},
                {"channel_order", detail::channel_order_name(m.input.channel_order)},
                {"scale", m.input.scale},
                {"mean", m.input.mean},
                {"std", m.input.std}};
  j["embedding_size"] = m.embedding_size;
  j["pretrained"] = m.pretrained;
  j["weights"] = m.weights;
  j["license"] = m.license;
  if (m.distance_threshold) j["distance_threshold"] = *m.distance_threshold;
  if (!m.alignment.empty()) j["alignment"] = m.alignment;
  if (m.multiply_adds) j["multiply_adds"] = *m.multiply_adds;
  return j.dump(2);
}

/// Parses and validates metadata JSON. `source` names the file for error messages.
/// Ensures: the result passes validate_input_spec and has embedding_size >= 1.
/// Throws MetadataError on malformed JSON, missing or mistyped keys, or bad values.
inline BackboneMetadata parse_metadata(const std::string& text, const std::string& source) {
  const std::string where = "metadata of '" + source + "'";
  const auto j = detail::parse_json_object(text, where);
  BackboneMetadata m;
  try {
    m.format_version = static_cast<int>(detail::json_integer(j.at("format_version"), where + ": format_version", 0, 1 << 20));
    if (m.format_version < 1 || m.format_version > BackboneMetadata::current_format_version) {
      throw MetadataError(where + ": unsupported format_version " +
                          std::to_string(m.format_version) + " (this library reads 1.." +
                          std::to_string(BackboneMetadata::current_format_version) + ")");
    }
    m.name = j.at("name").get<std::string>();
    m.architecture = j.value("architecture", std::string{});
    const auto& input = j.at("input");
    m.input.height = static_cast<int>(detail::json_integer(input.at("height"), where + ": input height", 0, 1 << 20));
    m.input.width = static_cast<int>(detail::json_integer(input.at("width"), where + ": input width", 0, 1 << 20));
    const auto order = input.value("channel_order", std::string{"RGB"});
    if (order != "RGB" && order != "BGR") {
      throw MetadataError(where + ": channel_order must be RGB or BGR, got '" + order + "'");
    }
    m.input.channel_order = order == "RGB" ? ChannelOrder::rgb : ChannelOrder::bgr;
    m.input.scale = input.at("scale").get<double>();
    m.input.mean = input.at("mean").get<std::array<double, 3>>();
    m.input.std = input.at("std").get<std::array<double, 3>>();
    m.embedding_size = detail::json_integer(j.at("embedding_size"), where + ": embedding_size", 0, std::int64_t{1} << 40);
    m.pretrained = j.at("pretrained").get<bool>();
    m.weights = j.value("weights", std::string{});
    m.license = j.value("license", std::string{});
    if (j.contains("distance_threshold")) {
      m.distance_threshold = j["distance_threshold"].get<double>();
    }
    m.alignment = j.value("alignment", std::string{});
    if (j.contains("multiply_adds")) m.multiply_adds = j["multiply_adds"].get<double>();
  } catch (const nlohmann::json::exception& e) {
    throw MetadataError(where + " has a missing or mistyped field: " + e.what());
  }
  detail::validate_input_spec(m.input, where);
  if (m.embedding_size < 1) {
    throw MetadataError(where + ": embedding_size must be at least 1, got " +
                        std::to_string(m.embedding_size));
  }
  if (m.distance_threshold && !(std::isfinite(*m.distance_threshold) && *m.distance_threshold > 0)) {
    throw MetadataError(where + ": distance_threshold must be finite and positive");
  }
  return m;
}

}  // namespace siamese
