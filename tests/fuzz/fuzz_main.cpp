// libFuzzer entry point; SIAMESE_FUZZ_TARGET names the target of targets.hpp it drives.
#include "targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  siamese::fuzz::SIAMESE_FUZZ_TARGET(data, size);
  return 0;
}
