#include "fixtures.hpp"

#include <catch2/catch.hpp>

using siamese::TorchScriptBackbone;

TEST_CASE("A backbone loads with its metadata and embeds batches", "[backbone]") {
  fixtures::TempDir dir;
  const auto file = fixtures::save_tiny_backbone(dir);
  for (bool optimize : {false, true}) {
    TorchScriptBackbone backbone(file, fixtures::cpu_options(optimize));
    CHECK(backbone.metadata().name == "tiny-embedder");
    CHECK(backbone.has_metadata_file());
    CHECK(backbone.embedding_size() == fixtures::embedding_size);
    CHECK(backbone.device() == siamese::Device::cpu());
    const auto out = backbone.embed(fixtures::random_images(5));
    CHECK(out.sizes() == torch::IntArrayRef({5, fixtures::embedding_size}));
    CHECK(out.scalar_type() == torch::kFloat32);
    CHECK_FALSE(out.requires_grad());
  }
}

TEST_CASE("Optimised and plain loading give the same embeddings", "[backbone]") {
  fixtures::TempDir dir;
  const auto file = fixtures::save_tiny_backbone(dir);
  TorchScriptBackbone plain(file, fixtures::cpu_options(false));
  TorchScriptBackbone fast(file, fixtures::cpu_options(true));
  const auto images = fixtures::random_images(3);
  CHECK(torch::allclose(plain.embed(images), fast.embed(images), 1e-4, 1e-5));
  // The embedding is the module's own output: compare with calling it directly.
  const auto direct = fixtures::tiny_embedder().forward({images}).toTensor();
  CHECK(torch::allclose(plain.embed(images), direct));
}

TEST_CASE("A file without metadata loads when the caller gives the input spec", "[backbone]") {
  fixtures::TempDir dir;
  const auto file = dir / "bare.pt";
  fixtures::tiny_embedder().save(file.string());
  CHECK_THROWS_WITH(TorchScriptBackbone(file, fixtures::cpu_options()),
                    Catch::Contains("bare.pt") && Catch::Contains("no siamese.json"));
  auto options = fixtures::cpu_options();
  options.input_spec = fixtures::tiny_metadata().input;
  TorchScriptBackbone backbone(file, options);
  CHECK_FALSE(backbone.has_metadata_file());
  CHECK(backbone.embedding_size() == fixtures::embedding_size);
  CHECK_FALSE(backbone.metadata().pretrained);
}

TEST_CASE("Bad backbone files raise typed errors naming the file", "[backbone][errors]") {
  fixtures::TempDir dir;
  CHECK_THROWS_AS(TorchScriptBackbone(dir / "missing.pt", fixtures::cpu_options()),
                  siamese::FileError);
  CHECK_THROWS_AS(TorchScriptBackbone(dir.path(), fixtures::cpu_options()), siamese::FileError);

  fixtures::write_file(dir / "empty.pt", "");
  CHECK_THROWS_WITH(TorchScriptBackbone(dir / "empty.pt", fixtures::cpu_options()),
                    Catch::Contains("empty.pt") && Catch::Contains("empty"));

  fixtures::write_file(dir / "text.pt", "this is not a zip archive");
  CHECK_THROWS_AS(TorchScriptBackbone(dir / "text.pt", fixtures::cpu_options()),
                  siamese::ModelError);
  CHECK_THROWS_WITH(TorchScriptBackbone(dir / "text.pt", fixtures::cpu_options()),
                    Catch::Contains("text.pt") && Catch::Contains("TorchScript"));

  const auto good = fixtures::read_file(fixtures::save_tiny_backbone(dir));
  fixtures::write_file(dir / "cut.pt", good.substr(0, good.size() / 2));
  CHECK_THROWS_AS(TorchScriptBackbone(dir / "cut.pt", fixtures::cpu_options()),
                  siamese::ModelError);
}

TEST_CASE("Networks that are not embedders are refused at load", "[backbone][errors]") {
  fixtures::TempDir dir;
  const auto meta = fixtures::tiny_metadata();
  auto save = [&](const std::string& body, const std::string& name) {
    siamese::save_backbone(fixtures::module_returning(body), dir / name, meta);
    return dir / name;
  };
  CHECK_THROWS_WITH(TorchScriptBackbone(save("x.mean([2])", "rank3.pt"), fixtures::cpu_options()),
                    Catch::Contains("rank3.pt") && Catch::Contains("not an embedding network") &&
                        Catch::Contains("[1, 3, 8]"));
  CHECK_THROWS_WITH(TorchScriptBackbone(save("torch.mm(x, x)", "mm.pt"), fixtures::cpu_options()),
                    Catch::Contains("mm.pt") && Catch::Contains("self must be a matrix"));
  CHECK_THROWS_AS(TorchScriptBackbone(save("(x, x)", "tuple.pt"), fixtures::cpu_options()),
                  siamese::ModelError);
  CHECK_THROWS_AS(
      TorchScriptBackbone(save("x.mean([2, 3]) / 0.0 * 0.0", "nan.pt"), fixtures::cpu_options()),
      siamese::NumericError);
  CHECK_THROWS_AS(TorchScriptBackbone(save("torch.mm(x, x)", "fails.pt"), fixtures::cpu_options()),
                  siamese::ModelError);
}

TEST_CASE("Metadata that contradicts the network is refused, saying both", "[backbone][errors]") {
  fixtures::TempDir dir;
  siamese::save_backbone(fixtures::tiny_embedder(), dir / "liar.pt", fixtures::tiny_metadata(128));
  CHECK_THROWS_AS(TorchScriptBackbone(dir / "liar.pt", fixtures::cpu_options()),
                  siamese::MetadataError);
  CHECK_THROWS_WITH(TorchScriptBackbone(dir / "liar.pt", fixtures::cpu_options()),
                    Catch::Contains("embedding_size 128") && Catch::Contains("[1, 4]"));
}

TEST_CASE("Wrong image tensors raise ShapeError with the shapes", "[backbone][errors]") {
  fixtures::TempDir dir;
  TorchScriptBackbone backbone(fixtures::save_tiny_backbone(dir), fixtures::cpu_options());
  CHECK_THROWS_WITH(backbone.embed(torch::zeros({2, 3, 9, 8})),
                    Catch::Contains("[N,3,8,8]") && Catch::Contains("[2, 3, 9, 8]"));
  CHECK_THROWS_AS(backbone.embed(torch::zeros({3, 8, 8})), siamese::ShapeError);
  CHECK_THROWS_AS(backbone.embed(torch::zeros({0, 3, 8, 8})), siamese::ShapeError);
  CHECK_THROWS_AS(backbone.embed(torch::zeros({1, 1, 8, 8})), siamese::ShapeError);
  CHECK_THROWS_AS(backbone.embed(torch::Tensor()), siamese::ShapeError);
  CHECK_THROWS_WITH(backbone.embed(torch::zeros({1, 3, 8, 8}, torch::kFloat64)),
                    Catch::Contains("float32") && Catch::Contains("Double"));
  CHECK_THROWS_AS(backbone.embed(torch::full({1, 3, 8, 8}, NAN)), siamese::NumericError);
}

TEST_CASE("Reduced precision: float16 needs CUDA, bfloat16 a CPU that has it; both refused by name",
          "[backbone][device][errors]") {
  fixtures::TempDir dir;
  const auto file = fixtures::save_tiny_backbone(dir);
  auto options = fixtures::cpu_options(/*optimize=*/true);
  options.precision = siamese::Precision::float16;
  CHECK_THROWS_WITH(TorchScriptBackbone(file, options),
                    Catch::Contains("float16 precision needs a CUDA device") && Catch::Contains("cpu"));
  CHECK_THROWS_AS(TorchScriptBackbone(file, options), siamese::DeviceError);

  options.precision = siamese::Precision::bfloat16;
  if (!siamese::cpu_has_native_bfloat16()) {
    CHECK_THROWS_WITH(TorchScriptBackbone(file, options),
                      Catch::Contains("bfloat16 precision for '" + file.string()) && Catch::Contains("AVX512-BF16"));
    return;
  }
  const TorchScriptBackbone reduced(file, options), reference(file, fixtures::cpu_options(true));
  CHECK(reduced.precision() == siamese::Precision::bfloat16);
  const auto images = fixtures::random_images(3);
  const auto embeddings = reduced.embed(images);
  const auto expected = reference.embed(images);
  CHECK(embeddings.scalar_type() == torch::kFloat32);
  CHECK(embeddings.sizes() == expected.sizes());
  // bfloat16 keeps 8 significant bits: about 2 decimal digits.
  CHECK(torch::allclose(embeddings, expected, /*rtol=*/0.05, /*atol=*/0.05 * expected.abs().max().item<double>()));
  CHECK_FALSE(torch::equal(embeddings, expected));
}

TEST_CASE("Precision names parse back, anything else is refused by name", "[backbone][errors]") {
  for (const auto precision : {siamese::Precision::float32, siamese::Precision::bfloat16, siamese::Precision::float16}) {
    CHECK(siamese::parse_precision(siamese::precision_name(precision)) == precision);
  }
  CHECK(std::string(siamese::precision_name(siamese::Precision::bfloat16)) == "bfloat16");
  CHECK_THROWS_WITH(siamese::parse_precision("fp8"), Catch::Contains("unknown precision 'fp8'"));
}
