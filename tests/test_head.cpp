#include "fixtures.hpp"

#include <catch2/catch.hpp>

using Approx = Catch::Detail::Approx;

TEST_CASE("Sigmoid head computes sigmoid(w*d + b)", "[head]") {
  siamese::SigmoidHead head(siamese::SigmoidHeadOptions{-2.0, 1.0});
  const auto d = torch::tensor({0.0f, 0.5f, 3.0f}).unsqueeze(1);
  const auto p = head(d);
  REQUIRE(p.sizes() == torch::IntArrayRef({3, 1}));
  CHECK(p[0][0].item<double>() == Approx(1.0 / (1.0 + std::exp(-1.0))));
  CHECK(p[1][0].item<double>() == Approx(0.5));
  CHECK(p[2][0].item<double>() == Approx(1.0 / (1.0 + std::exp(5.0))));
}

TEST_CASE("Default head: larger distance gives lower probability", "[head]") {
  siamese::SigmoidHead head;
  CHECK(head->weight.item<double>() < 0.0);
  const auto d = torch::linspace(0.0, 2.0, 50).unsqueeze(1);
  const auto p = head(d).squeeze(1);
  CHECK((p.slice(0, 1) < p.slice(0, 0, -1)).all().item<bool>());
  CHECK(head->distance_at(0.5) == Approx(0.6));
  CHECK(head->weight.requires_grad());
  CHECK(head->parameters().size() == 2);
}

TEST_CASE("Head centred at a threshold gives 0.5 there", "[head]") {
  siamese::SigmoidHead head(siamese::SigmoidHeadOptions::centered_at(1.1, -4.0));
  CHECK(head(torch::tensor({1.1f}))[0].item<double>() == Approx(0.5));
  CHECK(head->distance_at(0.5) == Approx(1.1));
  CHECK_THROWS_AS(siamese::SigmoidHeadOptions::centered_at(1.0, 0.0), siamese::Error);
  CHECK_THROWS_AS(head->distance_at(1.0), siamese::Error);
}

TEST_CASE("Head parameters survive save and load", "[head]") {
  fixtures::TempDir dir;
  siamese::SigmoidHead head(siamese::SigmoidHeadOptions{-3.5, 2.25});
  siamese::save_head(head, dir / "head.pt");
  const auto loaded = siamese::load_head(dir / "head.pt");
  CHECK(loaded->weight.item<double>() == Approx(-3.5));
  CHECK(loaded->bias.item<double>() == Approx(2.25));
}

TEST_CASE("A head refuses distances on another device, naming both", "[head][device][errors]") {
  siamese::SigmoidHead head;
  const auto elsewhere = torch::zeros({2, 1}, torch::TensorOptions(torch::kMeta));
  CHECK_THROWS_AS(head(elsewhere), siamese::DeviceError);
  CHECK_THROWS_WITH(head(elsewhere), Catch::Contains("cpu") && Catch::Contains("meta"));
}

TEST_CASE("A saved head loads onto the device asked for, the CPU by default", "[head][device]") {
  fixtures::TempDir dir;
  siamese::SigmoidHead head(siamese::SigmoidHeadOptions{-3.5, 2.25});
  siamese::save_head(head, dir / "head.pt");
  CHECK(siamese::load_head(dir / "head.pt")->weight.device().is_cpu());
  CHECK(siamese::load_head(dir / "head.pt", torch::kCPU)->bias.item<double>() == Approx(2.25));
  // Saving copies the head to the CPU first; the caller's head is untouched.
  CHECK(head->weight.item<double>() == Approx(-3.5));
}

TEST_CASE("train_head trains on the head's device", "[head][train][device]") {
  // Distances that are not float-exact (0.1) reach the head as float32 on its device.
  siamese::SigmoidHead head(siamese::SigmoidHeadOptions{-1.0, 0.0});
  const double loss = siamese::train::train_head(head, {0.1, 0.2, 0.9, 1.0}, {1, 1, 0, 0});
  CHECK(std::isfinite(loss));
  CHECK(head->weight.device().is_cpu());
  CHECK(head->weight.item<double>() < -1.0);
}

TEST_CASE("Loading a head from a bad file raises typed errors", "[head][errors]") {
  fixtures::TempDir dir;
  CHECK_THROWS_AS(siamese::load_head(dir / "missing.pt"), siamese::FileError);
  fixtures::write_file(dir / "junk.pt", "not a torch archive");
  CHECK_THROWS_WITH(siamese::load_head(dir / "junk.pt"),
                    Catch::Contains("junk.pt") && Catch::Contains("not a saved SigmoidHead"));
  CHECK_THROWS_AS(siamese::load_head(dir / "junk.pt"), siamese::ModelError);
  CHECK_THROWS_AS(siamese::SigmoidHead{}(torch::zeros({2, 1}, torch::kInt64)), siamese::ShapeError);
}

TEST_CASE("A head file with parameters of another shape, or a zero weight, is refused by name", "[head][errors]") {
  fixtures::TempDir dir;
  // A module with the head's parameter names but two numbers each: torch::load takes them.
  struct WideHeadImpl : torch::nn::Module {
    WideHeadImpl() {
      register_parameter("weight", torch::tensor({-1.0F, -2.0F}));
      register_parameter("bias", torch::tensor({1.0F, 2.0F}));
    }
  };
  auto wide = std::make_shared<WideHeadImpl>();
  torch::save(wide, (dir / "wide.pt").string());
  CHECK_THROWS_AS(siamese::load_head(dir / "wide.pt"), siamese::ModelError);
  CHECK_THROWS_WITH(siamese::load_head(dir / "wide.pt"), Catch::Contains("wide.pt") && Catch::Contains("[2]"));
  siamese::save_head(siamese::SigmoidHead(siamese::SigmoidHeadOptions{0.0, 1.0}), dir / "flat.pt");
  CHECK_THROWS_AS(siamese::load_head(dir / "flat.pt"), siamese::NumericError);
  CHECK_THROWS_WITH(siamese::load_head(dir / "flat.pt"), Catch::Contains("flat.pt") && Catch::Contains("zero weight"));
}
