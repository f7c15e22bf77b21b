#pragma once

#include <siamese/detail/format.hpp>
#include <siamese/errors.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__GLIBC__)
#include <malloc.h>
#endif
// A CUDA build of LibTorch ships ATen's CUDA headers and puts the CUDA toolkit's on the
// include path; a CPU build (Debian's) has neither.
#if __has_include(<ATen/cuda/CUDAContext.h>) && __has_include(<cuda_runtime_api.h>)
#include <ATen/cuda/CUDAContext.h>
#define SIAMESE_HAS_CUDA_HEADERS 1
#else
#define SIAMESE_HAS_CUDA_HEADERS 0
#endif

namespace siamese {

/// Where tensors and modules live. Chosen once, then passed around as a value.
class Device {
 public:
  /// CUDA device 0 when `torch::cuda::is_available()`, else the CPU.
  static Device automatic() {
    return torch::cuda::is_available() ? Device(torch::Device(torch::kCUDA, 0)) : cpu();
  }

  static Device cpu() { return Device(torch::Device(torch::kCPU)); }

  /// Requires: a CUDA-enabled LibTorch and a visible device `index`; throws DeviceError otherwise.
  static Device cuda(int index = 0) {
    if (!torch::cuda::is_available()) {
      throw DeviceError("CUDA device " + std::to_string(index) +
                        " requested, but this LibTorch build or machine has no CUDA device");
    }
    // device_count() is size_t in LibTorch 1.x and c10::DeviceIndex in 2.x: compare as long long.
    const auto visible = static_cast<long long>(torch::cuda::device_count());
    if (index < 0 || index >= visible) {
      throw DeviceError("CUDA device " + std::to_string(index) + " requested, but only " + std::to_string(visible) +
                        " are visible");
    }
    return Device(torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index)));
  }

  /// Parses "auto", "cpu", "cuda" or "cuda:N" (as command-line flags spell them).
  static Device parse(const std::string& name) {
    if (name == "auto") return automatic();
    if (name == "cpu") return cpu();
    if (name == "cuda") return cuda(0);
    if (name.rfind("cuda:", 0) == 0) {
      const std::string index = name.substr(5);
      // std::isdigit on a plain char is undefined for bytes above 127: test the byte's value.
      const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
      if (!index.empty() && std::all_of(index.begin(), index.end(), is_digit) && index.size() < 4) {
        return cuda(std::stoi(index));
      }
    }
    throw DeviceError("unknown device '" + detail::printable(name.substr(0, 64)) + "' (expected auto, cpu, cuda or cuda:N)");
  }

  torch::Device torch_device() const { return device_; }
  bool is_cuda() const { return device_.is_cuda(); }
  std::string str() const { return device_.str(); }

  friend bool operator==(const Device& a, const Device& b) { return a.device_ == b.device_; }
  friend bool operator!=(const Device& a, const Device& b) { return !(a == b); }

 private:
  explicit Device(torch::Device device) : device_(device) {}
  torch::Device device_;
};

namespace detail {
/// `tensor` as `dtype` on `device` (Tensor::to), with LibTorch's refusal (a tensor without
/// data, on the meta device; a device this build or machine lacks) as DeviceError naming both
/// devices and `who` needs it.
inline torch::Tensor moved_to(const torch::Tensor& tensor, torch::Device device, torch::ScalarType dtype,
                              const std::string& who) {
  try {
    return tensor.to(device, dtype);
  } catch (const c10::Error& e) {
    throw DeviceError(who + " cannot move a tensor from " + tensor.device().str() + " to " + device.str() + ": " +
                      error_summary(e.what()));
  }
}

inline std::atomic<bool>& threads_chosen_by_user() {
  static std::atomic<bool> chosen{false};
  return chosen;
}
inline std::atomic<bool>& allocator_settings_kept() {
  static std::atomic<bool> kept{false};
  return kept;
}
}  // namespace detail

/// Sets LibTorch's intra-op thread count for the whole process; the library then leaves it alone.
/// Requires: count >= 1.
inline void set_num_threads(int count) {
  if (count < 1) throw Error("thread count must be at least 1, got " + std::to_string(count));
  torch::set_num_threads(count);
  detail::threads_chosen_by_user() = true;
}

/// The thread count the library chooses when the caller has not: every hardware thread.
/// Debian's LibTorch starts with one intra-op thread on small machines, which halves throughput
/// on a 2-core machine; loading a backbone applies this default unless set_num_threads() ran or
/// the process was started with OMP_NUM_THREADS (the owner's choice, which OpenMP applied).
inline int default_num_threads() {
  return static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
}

/// Whether this CPU computes bfloat16 in hardware: AVX512-BF16 (with the operating system
/// saving AVX-512 state) or AMX-BF16. Elsewhere LibTorch emulates bfloat16, an order of
/// magnitude slower than float32, which is why Precision::bfloat16 needs it on the CPU.
inline bool cpu_has_native_bfloat16() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || (ecx & bit_OSXSAVE) == 0) return false;
  unsigned xcr0_low = 0, xcr0_high = 0;
  __asm__("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
  const bool os_saves_avx512 = (xcr0_low & 0xE6U) == 0xE6U;      // SSE, AVX, opmask, ZMM state
  const bool os_saves_tiles = (xcr0_low & 0x60000U) == 0x60000U;  // AMX tile config and data
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  const bool amx_bf16 = (edx & (1U << 22)) != 0;
  const unsigned max_subleaf = eax;
  bool avx512_bf16 = false;
  if (max_subleaf >= 1 && __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx)) avx512_bf16 = (eax & (1U << 5)) != 0;
  return (avx512_bf16 && os_saves_avx512) || (amx_bf16 && os_saves_tiles);
#else
  return false;
#endif
}

/// Whether `device`, a CUDA device, computes bfloat16 in hardware: compute capability 8.0
/// (Ampere) or later; older GPUs emulate it. Built against a LibTorch without CUDA headers
/// (where no CUDA device can exist) it answers from the device type alone.
inline bool cuda_has_native_bfloat16(const Device& device) {
  if (!device.is_cuda()) return false;
#if SIAMESE_HAS_CUDA_HEADERS
  return at::cuda::getDeviceProperties(device.torch_device().index())->major >= 8;
#else
  return true;
#endif
}

/// Asks the library to leave the C library's allocator settings as they are. Call it before
/// the first network loads; without it, that load tunes glibc's malloc for tensors, once per
/// process: blocks of up to 1 GiB come from its heaps instead of a fresh mmap() each, and up
/// to 1 GiB of freed memory stays mapped for the next call instead of going back at once
/// (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD). A batch's activations, tens to hundreds of MB, are
/// otherwise new pages that fault one by one on every call: with the tuning, LFW ran 1.4x-2.0x
/// faster end to end and InceptionV3 at 299, batch 32, 2.3x (docs/performance.md). The cost:
/// memory stays near its peak between calls (ImageEmbedder still hands it back every
/// EmbedderOptions::release_memory_every photos). Without glibc the library sets nothing.
inline void keep_allocator_settings() { detail::allocator_settings_kept() = true; }

namespace detail {
/// The library's process-wide defaults, applied once each: when the first network loads onto
/// the CPU, default_num_threads() unless the user chose a count, by set_num_threads() or by
/// starting the process with OMP_NUM_THREADS (a network on a GPU leaves the count alone: its
/// host threads only feed the device); when the first network loads anywhere,
/// the allocator tuning that keep_allocator_settings() describes unless the user declined it.
inline void apply_process_defaults(const Device& device) {
  static std::atomic<bool> threads_applied{false};
  if (!device.is_cuda() && !threads_applied.exchange(true) && !threads_chosen_by_user() && std::getenv("OMP_NUM_THREADS") == nullptr) {
    torch::set_num_threads(default_num_threads());
  }
  static std::atomic<bool> allocator_applied{false};
  if (allocator_applied.exchange(true)) return;
#if defined(__GLIBC__)
  if (!allocator_settings_kept()) {
    constexpr int one_gibibyte = 1 << 30;
    ::mallopt(M_MMAP_THRESHOLD, one_gibibyte);
    ::mallopt(M_TRIM_THRESHOLD, one_gibibyte);
  }
#endif
}

/// Returns the free memory of the C library's heaps to the system where it can (glibc's
/// malloc_trim, which also releases whole free pages inside its heaps); elsewhere nothing.
inline void release_free_memory() {
#if defined(__GLIBC__)
  ::malloc_trim(0);
#endif
}
}  // namespace detail

}  // namespace siamese
