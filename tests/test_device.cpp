#include <siamese/device.hpp>

#include <catch2/catch.hpp>

#include <cstdlib>

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
  // Bytes above 127 (a command line in another encoding) are refused, and printed escaped.
  for (const std::string name : {"cuda:\xb9", "cuda:1\xff", "cuda:\xd9\xa1", "cpu\x1b[2J"}) {
    CHECK_THROWS_AS(siamese::Device::parse(name), siamese::DeviceError);
  }
  CHECK_THROWS_WITH(siamese::Device::parse("cpu\x1b[2J"), Catch::Contains("'cpu\\x1b[2J'"));
}

TEST_CASE("Thread count: a sensible default, and the user's choice is kept", "[device]") {
  CHECK(siamese::default_num_threads() >= 1);
  siamese::detail::apply_process_defaults(siamese::Device::cpu());
  CHECK(torch::get_num_threads() == siamese::default_num_threads());
  siamese::set_num_threads(1);
  siamese::detail::apply_process_defaults(siamese::Device::cpu());
  CHECK(torch::get_num_threads() == 1);
  CHECK_THROWS_AS(siamese::set_num_threads(0), siamese::Error);
  siamese::set_num_threads(siamese::default_num_threads());
}

TEST_CASE("The first network's load tunes glibc's allocator: large blocks come from its heap", "[device]") {
#if defined(__GLIBC__)
  siamese::detail::apply_process_defaults(siamese::Device::cpu());
  // Above glibc's largest dynamic mmap threshold (32 MiB): mapped afresh by default.
  constexpr std::size_t block = std::size_t{64} << 20;
  const auto mapped_before = ::mallinfo2().hblkhd;
  void* memory = std::malloc(block);
  REQUIRE(memory != nullptr);
  const auto mapped_with_block = ::mallinfo2().hblkhd;
  std::free(memory);
  CHECK(mapped_with_block - mapped_before < block);
#endif
}
