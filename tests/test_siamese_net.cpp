#include "fixtures.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <iostream>
#include <sstream>
#include <thread>

using Approx = Catch::Detail::Approx;
using siamese::TorchScriptBackbone;

namespace {

/// Wraps a backbone and counts how often it is called.
struct CountingBackbone {
  TorchScriptBackbone inner;
  std::shared_ptr<std::atomic<int>> calls = std::make_shared<std::atomic<int>>(0);

  torch::Tensor embed(const torch::Tensor& images) const {
    ++*calls;
    return inner.embed(images);
  }
  siamese::Device device() const { return inner.device(); }
};

}  // namespace

TEST_CASE("Both sides go through ONE backbone call when shapes match", "[net]") {
  fixtures::TempDir dir;
  CountingBackbone counting{TorchScriptBackbone(fixtures::save_tiny_backbone(dir),
                                                fixtures::cpu_options())};
  siamese::SiameseNet<CountingBackbone> net(counting);
  const auto a = fixtures::random_images(3, 1);
  const auto b = fixtures::random_images(3, 2);
  const auto out = net.forward(a, b);
  CHECK(*counting.calls == 1);
  CHECK(out.embeddings_a.sizes() == torch::IntArrayRef({3, fixtures::embedding_size}));
  CHECK(out.distances.sizes() == torch::IntArrayRef({3, 1}));
  CHECK(out.probabilities.sizes() == torch::IntArrayRef({3, 1}));
  // The concatenated call gives what separate calls give.
  CHECK(torch::allclose(out.embeddings_a, counting.inner.embed(a), 1e-5, 1e-6));
  CHECK(torch::allclose(out.embeddings_b, counting.inner.embed(b), 1e-5, 1e-6));
}

TEST_CASE("A SiameseNet holds its own copy of the head; the caller's is left as it was", "[net][device]") {
  fixtures::TempDir dir;
  siamese::SigmoidHead head(siamese::SigmoidHeadOptions{-2.0, 1.0});
  siamese::FaceVerifier net(TorchScriptBackbone(fixtures::save_tiny_backbone(dir), fixtures::cpu_options()),
                            siamese::EuclideanDistance(), head);
  CHECK(net.head().ptr() != head.ptr());
  CHECK(net.head()->weight.item<double>() == Approx(-2.0));
  head->weight.data().fill_(5.0);
  CHECK(net.head()->weight.item<double>() == Approx(-2.0));
}

TEST_CASE("One set of weights serves both sides", "[net]") {
  fixtures::TempDir dir;
  siamese::FaceVerifier net(TorchScriptBackbone(fixtures::save_tiny_backbone(dir),
                                                fixtures::cpu_options(/*optimize=*/false)));
  const auto images = fixtures::random_images(2);
  const auto a = images.narrow(0, 0, 1);
  const auto b = images.narrow(0, 1, 1);
  const auto same_input = net.forward(a, a.clone());
  CHECK(torch::equal(same_input.embeddings_a, same_input.embeddings_b));
  CHECK(same_input.distances.item<double>() == Approx(std::sqrt(1e-7)).epsilon(1e-4));

  const auto before = net.forward(a, b);
  {
    torch::NoGradGuard no_grad;
    for (auto parameter : net.backbone().module().parameters()) parameter.mul_(2.0);
  }
  const auto after = net.forward(a, b);
  // The fc and conv weights double, so ReLU features double and embeddings scale by 4 on
  // BOTH sides: a single shared module, not two copies.
  CHECK(torch::allclose(after.embeddings_a, before.embeddings_a * 4.0, 1e-4, 1e-5));
  CHECK(torch::allclose(after.embeddings_b, before.embeddings_b * 4.0, 1e-4, 1e-5));
}

TEST_CASE("Distances and probabilities follow the parts", "[net]") {
  fixtures::TempDir dir;
  siamese::FaceVerifier net(
      TorchScriptBackbone(fixtures::save_tiny_backbone(dir), fixtures::cpu_options()),
      siamese::EuclideanDistance{}, siamese::SigmoidHead(siamese::SigmoidHeadOptions{-1.5, 0.5}));
  const auto a = fixtures::random_images(4, 5);
  const auto b = fixtures::random_images(4, 6);
  const auto out = net.forward(a, b);
  const auto expected_d = torch::sqrt(
      torch::clamp_min((out.embeddings_a - out.embeddings_b).pow(2).sum(1, true), 1e-7));
  CHECK(torch::allclose(out.distances, expected_d));
  CHECK(torch::allclose(out.probabilities, torch::sigmoid(-1.5 * expected_d + 0.5)));

  const auto results = net.verify_batch(a, b);
  REQUIRE(results.size() == 4);
  for (std::size_t i = 0; i < results.size(); ++i) {
    CHECK(results[i].distance == Approx(expected_d[i][0].item<double>()));
    CHECK(results[i].same == (results[i].probability >= 0.5));
  }
}

TEST_CASE("verify: one pair, a threshold on probability, and shape errors", "[net][errors]") {
  fixtures::TempDir dir;
  auto net = siamese::load_face_verifier(fixtures::save_tiny_backbone(dir), fixtures::cpu_options());
  const auto a = fixtures::random_images(1, 1)[0];
  const auto b = fixtures::random_images(1, 2)[0];
  const auto same = net.verify(a, a);
  CHECK(same.same);
  CHECK(same.probability > 0.99);
  const auto result = net.verify(a, b);
  CHECK(result.distance > same.distance);
  CHECK(result.probability < same.probability);

  net.set_decision_threshold(std::nextafter(result.probability, 1.0));
  CHECK_FALSE(net.verify(a, b).same);
  net.set_decision_threshold(result.probability);
  CHECK(net.verify(a, b).same);
  CHECK_THROWS_AS(net.set_decision_threshold(1.0), siamese::Error);

  CHECK_THROWS_AS(net.verify(fixtures::random_images(2), fixtures::random_images(2)),
                  siamese::ShapeError);
  CHECK_THROWS_WITH(net.forward(fixtures::random_images(2), fixtures::random_images(3)),
                    Catch::Contains("[2, 3, 8, 8]") && Catch::Contains("[3, 3, 8, 8]"));
}

TEST_CASE("Pairs on two devices are a DeviceError naming both", "[net][errors]") {
  fixtures::TempDir dir;
  auto net = siamese::load_face_verifier(fixtures::save_tiny_backbone(dir), fixtures::cpu_options());
  // The meta device exists in every LibTorch build: a second device on a CPU-only machine.
  const auto on_meta = torch::empty({1, 3, fixtures::input_side, fixtures::input_side}, torch::device(torch::kMeta));
  CHECK_THROWS_AS(net.forward(fixtures::random_images(1), on_meta), siamese::DeviceError);
  CHECK_THROWS_WITH(net.forward(fixtures::random_images(1), on_meta), Catch::Contains("cpu") && Catch::Contains("meta"));
  CHECK_THROWS_AS(net.verify(on_meta[0], fixtures::random_images(1)[0]), siamese::DeviceError);
}

TEST_CASE("load_face_verifier refuses a backbone with no head or threshold fitted to it, saying what to run", "[net][errors]") {
  fixtures::TempDir dir;
  auto meta = fixtures::tiny_metadata();
  meta.distance_threshold.reset();  // like the pretrained InceptionV3: never fitted to faces
  siamese::save_backbone(fixtures::tiny_embedder(), dir / "plain.pt", meta);
  CHECK_THROWS_AS(siamese::load_face_verifier(dir / "plain.pt", fixtures::cpu_options()), siamese::UncalibratedModelError);
  CHECK_THROWS_WITH(siamese::load_face_verifier(dir / "plain.pt", fixtures::cpu_options()), Catch::Contains("plain.pt") && Catch::Contains("evaluate --model") &&
                                      Catch::Contains("--calibrate") && Catch::Contains("train_head") &&
                                      Catch::Contains("distill"));
  CHECK_FALSE(siamese::fitted_decision(dir / "plain.pt", meta).has_value());
  // A calibration beside it is what makes a verdict.
  siamese::eval::Calibration c;
  c.model_name = meta.name;
  c.weight = -8.0;
  c.bias = 4.0;
  c.distance_threshold = 0.5;
  siamese::eval::save_calibration(c, siamese::eval::calibration_path_for(dir / "plain.pt"));
  const auto decision = siamese::fitted_decision(dir / "plain.pt", meta);
  REQUIRE(decision.has_value());
  CHECK(decision->distance_threshold == 0.5);
  CHECK_THAT(decision->source, Catch::StartsWith("calibration '"));
  auto net = siamese::load_face_verifier(dir / "plain.pt", fixtures::cpu_options());
  CHECK(net.head()->distance_at(net.decision_threshold()) == Approx(0.5));
  // A head from train_head decides at p = 0.5.
  const auto from_head = siamese::decision_from_head(siamese::SigmoidHead(siamese::SigmoidHeadOptions{-4.0, 2.0}), "h.pt");
  CHECK(from_head.distance_threshold == Approx(0.5));
}

TEST_CASE("load_face_verifier centres the head on the metadata's threshold", "[net]") {
  fixtures::TempDir dir;
  auto meta = fixtures::tiny_metadata();
  meta.distance_threshold = 0.9;
  siamese::save_backbone(fixtures::tiny_embedder(), dir / "t.pt", meta);
  auto net = siamese::load_face_verifier(dir / "t.pt", fixtures::cpu_options());
  CHECK(net.head()->distance_at(0.5) == Approx(0.9));
}

TEST_CASE("Random-weight backbones are announced loudly, once", "[net]") {
  fixtures::TempDir dir;
  auto meta = fixtures::tiny_metadata();
  meta.name = "random-for-warning-test";
  meta.pretrained = false;
  siamese::save_backbone(fixtures::tiny_embedder(), dir / "random.pt", meta);
  siamese::FaceVerifier net(TorchScriptBackbone(dir / "random.pt", fixtures::cpu_options()));

  std::ostringstream captured;
  auto* old = std::cerr.rdbuf(captured.rdbuf());
  const auto image = fixtures::random_images(1)[0];
  net.verify(image, image);
  net.verify(image, image);
  std::cerr.rdbuf(old);
  const auto text = captured.str();
  CHECK_THAT(text, Catch::Contains("RANDOM") && Catch::Contains("random-for-warning-test"));
  CHECK(text.find("RANDOM") == text.rfind("RANDOM"));  // once
}

TEST_CASE("Eight threads verifying on one shared net get the single-threaded answers", "[net][concurrency]") {
  fixtures::TempDir dir;
  const siamese::FaceVerifier net(TorchScriptBackbone(fixtures::save_tiny_backbone(dir), fixtures::cpu_options(true)));
  constexpr int pairs = 16;
  const auto a = fixtures::random_images(pairs, 11);
  const auto b = fixtures::random_images(pairs, 12);
  std::vector<siamese::VerifyResult> expected;
  for (int i = 0; i < pairs; ++i) expected.push_back(net.verify(a[i], b[i]));

  std::atomic<int> mismatches{0}, failures{0}, done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      try {
        for (int round = 0; round < 20; ++round) {
          const int i = (t * 7 + round) % pairs;
          const auto r = net.verify(a[i], b[i]);
          if (r.distance != Approx(expected[i].distance).epsilon(1e-5) || r.same != expected[i].same) ++mismatches;
          ++done;
        }
      } catch (...) {
        ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(failures == 0);
  CHECK(mismatches == 0);
  CHECK(done == 8 * 20);
}
