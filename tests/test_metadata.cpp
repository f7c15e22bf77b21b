#include "fixtures.hpp"

#include <catch2/catch.hpp>

using siamese::MetadataError;

TEST_CASE("Metadata round-trips through JSON", "[metadata]") {
  auto m = fixtures::tiny_metadata();
  m.input.channel_order = siamese::ChannelOrder::bgr;
  m.distance_threshold = 0.6;
  m.alignment = "dlib-150";
  m.multiply_adds = 1.5e9;
  const auto back = siamese::parse_metadata(siamese::to_json_string(m), "test");
  CHECK(back.name == m.name);
  CHECK(back.architecture == m.architecture);
  CHECK(back.input == m.input);
  CHECK(back.embedding_size == m.embedding_size);
  CHECK(back.pretrained == m.pretrained);
  CHECK(back.weights == m.weights);
  CHECK(back.license == m.license);
  CHECK(back.distance_threshold == m.distance_threshold);
  CHECK(back.alignment == m.alignment);
  CHECK(back.multiply_adds == m.multiply_adds);
}

TEST_CASE("Malformed metadata is refused with the source named", "[metadata][errors]") {
  const auto good = nlohmann::json::parse(siamese::to_json_string(fixtures::tiny_metadata()));
  auto with = [&](auto edit) {
    auto j = good;
    edit(j);
    return j.dump();
  };
  // Found by fuzz_metadata: a float too large for int made nlohmann's conversion undefined.
  CHECK_THROWS_WITH(siamese::parse_metadata(with([](auto& j) { j["format_version"] = 1.5e111; }), "m"),
                    Catch::Contains("format_version must be an integer"));
  CHECK_THROWS_AS(siamese::parse_metadata(with([](auto& j) { j["input"]["width"] = 150.5; }), "m"), MetadataError);
  CHECK_THROWS_AS(siamese::parse_metadata(with([](auto& j) { j["embedding_size"] = 18446744073709551615ULL; }), "m"),
                  MetadataError);
  CHECK_THROWS_WITH(siamese::parse_metadata("{not json", "model.pt"),
                    Catch::Contains("model.pt") && Catch::Contains("not valid JSON"));
  CHECK_THROWS_AS(siamese::parse_metadata(with([](auto& j) { j.erase("input"); }), "m"),
                  MetadataError);
  CHECK_THROWS_AS(siamese::parse_metadata(with([](auto& j) { j["name"] = 5; }), "m"),
                  MetadataError);
  CHECK_THROWS_WITH(
      siamese::parse_metadata(with([](auto& j) { j["input"]["height"] = 0; }), "m"),
      Catch::Contains("input size 0x8"));
  CHECK_THROWS_AS(
      siamese::parse_metadata(with([](auto& j) { j["input"]["height"] = 100000; }), "m"),
      MetadataError);
  CHECK_THROWS_AS(
      siamese::parse_metadata(with([](auto& j) { j["input"]["std"] = {1, 0, 1}; }), "m"),
      MetadataError);
  CHECK_THROWS_AS(
      siamese::parse_metadata(with([](auto& j) { j["input"]["mean"] = {1, 2}; }), "m"),
      MetadataError);
  CHECK_THROWS_AS(
      siamese::parse_metadata(with([](auto& j) { j["input"]["channel_order"] = "RGBA"; }), "m"),
      MetadataError);
  CHECK_THROWS_AS(siamese::parse_metadata(with([](auto& j) { j["embedding_size"] = 0; }), "m"),
                  MetadataError);
  CHECK_THROWS_WITH(
      siamese::parse_metadata(with([](auto& j) { j["format_version"] = 99; }), "m"),
      Catch::Contains("unsupported format_version 99"));
  CHECK_THROWS_AS(
      siamese::parse_metadata(with([](auto& j) { j["distance_threshold"] = -1.0; }), "m"),
      MetadataError);
  CHECK_NOTHROW(siamese::parse_metadata(with([](auto& j) { j["unknown_key"] = 1; }), "m"));
}
