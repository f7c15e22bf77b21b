#include <siamese/device.hpp>

#include <catch2/catch.hpp>

TEST_CASE("Device selection on a CPU machine", "[device]") {
  CHECK(siamese::Device::cpu().str() == "cpu");
  CHECK(siamese::Device::parse("cpu") == siamese::Device::cpu());
  if (!torch::cuda::is_available()) {
    CHECK(siamese::Device::automatic() == siamese::Device::cpu());
    CHECK(siamese::Device::parse("auto") == siamese::Device::cpu());
    CHECK_THROWS_AS(siamese::Device::cuda(), siamese::DeviceError);
    CHECK_THROWS_AS(siamese::Device::parse("cuda:0"), siamese::DeviceError);
  } else {
    CHECK(siamese::Device::automatic().is_cuda());
  }
  CHECK_THROWS_WITH(siamese::Device::parse("tpu"), Catch::Contains("unknown device 'tpu'"));
  CHECK_THROWS_AS(siamese::Device::parse("cuda:x"), siamese::DeviceError);
}

TEST_CASE("Thread count: a sensible default, and the user's choice is kept", "[device]") {
  CHECK(siamese::default_num_threads() >= 1);
  siamese::detail::apply_default_threads();
  CHECK(torch::get_num_threads() == siamese::default_num_threads());
  siamese::set_num_threads(1);
  siamese::detail::apply_default_threads();
  CHECK(torch::get_num_threads() == 1);
  CHECK_THROWS_AS(siamese::set_num_threads(0), siamese::Error);
  siamese::set_num_threads(siamese::default_num_threads());
}
