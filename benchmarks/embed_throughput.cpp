// embed_throughput: images per second through the library's backbone, against the same
// TorchScript model run from Python, and against what this CPU can do at most.
//
// For each model and batch size: the library as users get it (frozen and optimised at load),
// the library with optimisation off (the module as saved), and the optimised module fed
// channels_last input; on a CPU with AVX512-BF16 or AMX, the library in bfloat16
// (Precision::bfloat16), its speed over float32's and how far its embeddings fall from
// float32's (elsewhere it prints that it skipped bfloat16 and why). With --python,
// benchmarks/python_baseline.py runs the same file from Python (as saved, frozen, frozen and
// optimised; InceptionV3 also eager).
//
// The variants take turns, Python's included: round after round, each runs for a slice of
// --slice seconds (one call where a call takes longer), --seconds in all and at least 3 rounds,
// the library between its own forward and Python's fastest variant, so a noisy neighbour on a
// shared machine slows both sides of a comparison alike. Each row
// is a variant's median round (its slowest and fastest beside it); each ratio is the median of
// the ratios within a round, and against Python it is taken against the Python variant with
// the best median. With Python, it also checks that the library's optimised graph has the same
// operations as Python's frozen+optimised one.
//
// Achieved GFLOP/s come from the multiply-adds stored in the model's metadata (counted by
// forward hooks at export). The CPU's fp32 peak is measured, not derived from a clock: every
// thread runs independent chains of the widest vector FMA the CPU has (a clock measured from a
// chain of dependent adds is fooled by cores that retire such adds several per cycle, and by
// VMs: docs/performance.md). A large SGEMM gives the
// practical ceiling and the cross-check: where SGEMM beats the measured peak, the peak is wrong
// and no "% of peak" is printed. Last, the ceiling of this CPU's convolution kernels:
// the heaviest convolution shapes of InceptionV3 at batch 8, each alone, in the faster of NCHW
// and channels_last, against the same peak: no whole network runs faster than its layers do.
//
// Models needed: any siamese TorchScript backbone; tools/run-benchmarks.sh exports
// InceptionV3 at 299 and 224 and uses the face model from tools/setup-models.sh.
//
// Usage: embed_throughput --model FILE [--model FILE ...] [--batches 1,8,32] [--seconds 4]
//                         [--slice 0.2] [--threads N] [--python COMMAND]
//   COMMAND starts the Python side through /bin/sh, e.g.
//   --python "/usr/bin/python3 benchmarks/python_baseline.py --threads 2"

#include <siamese/backbone.hpp>
#include <siamese/detail/torchscript.hpp>

#include "bench_common.hpp"

#include <immintrin.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// Seconds per call of `f` over at least `budget` seconds and `min_calls` calls. The caller
// warms `f` up first.
double seconds_per_call(const std::function<void()>& f, double budget, int min_calls) {
  int calls = 0;
  const auto start = Clock::now();
  double elapsed = 0;
  while (calls < min_calls || elapsed < budget) {
    f();
    ++calls;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  }
  return elapsed / calls;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const auto n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// benchmarks/python_baseline.py, started once through /bin/sh and asked one line at a time
// (its docstring lists the requests), so that it runs only while this process waits for it.
class PythonPeer {
 public:
  explicit PythonPeer(std::string command) : command_(std::move(command)) {
    int requests[2], replies[2];
    if (pipe(requests) != 0 || pipe(replies) != 0) throw std::runtime_error("cannot make pipes for " + command_);
    std::signal(SIGPIPE, SIG_IGN);  // a peer that died shows as a missing reply, not a signal
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("cannot start " + command_);
    if (pid_ == 0) {
      dup2(requests[0], STDIN_FILENO);
      dup2(replies[1], STDOUT_FILENO);
      for (const int fd : {requests[0], requests[1], replies[0], replies[1]}) close(fd);
      execl("/bin/sh", "sh", "-c", command_.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(requests[0]);
    close(replies[1]);
    requests_ = fdopen(requests[1], "w");
    replies_ = fdopen(replies[0], "r");
  }
  PythonPeer(const PythonPeer&) = delete;
  PythonPeer& operator=(const PythonPeer&) = delete;
  ~PythonPeer() {
    std::fclose(requests_);  // end of input: the peer exits
    std::fclose(replies_);
    waitpid(pid_, nullptr, 0);
  }

  // Sends one request and returns the reply line; throws when the peer fails or has exited.
  std::string ask(const std::string& request) {
    std::fprintf(requests_, "%s\n", request.c_str());
    std::fflush(requests_);
    char* line = nullptr;
    std::size_t capacity = 0;
    const auto length = getline(&line, &capacity, replies_);
    std::string reply = length > 0 ? std::string(line, static_cast<std::size_t>(length)) : "";
    std::free(line);
    if (!reply.empty() && reply.back() == '\n') reply.pop_back();
    if (length <= 0) throw std::runtime_error("'" + command_ + "' exited before answering '" + request + "'");
    if (reply.rfind("error ", 0) == 0) {
      throw std::runtime_error("'" + command_ + "' could not do '" + request + "': " + reply.substr(6));
    }
    return reply;
  }

  // Sends a "run" request and returns the images/s it answers.
  double ask_rate(const std::string& request) {
    const auto reply = ask(request);
    char* end = nullptr;
    const double rate = std::strtod(reply.c_str(), &end);
    if (end == reply.c_str() || *end != '\0' || !(rate > 0)) {
      throw std::runtime_error("'" + command_ + "' answered '" + reply + "' to '" + request + "', not images/s");
    }
    return rate;
  }

 private:
  std::string command_;
  pid_t pid_ = -1;
  FILE* requests_ = nullptr;
  FILE* replies_ = nullptr;
};

// The kinds of a graph's nodes in order, nested blocks included. python_baseline.py lists the
// same for its frozen+optimised module: equal lists mean both sides run the same operations.
void list_operations(const torch::jit::Block* block, std::vector<std::string>& kinds) {
  for (const auto* node : block->nodes()) {
    kinds.emplace_back(node->kind().toQualString());
    for (const auto* inner : node->blocks()) list_operations(inner, kinds);
  }
}

// "the same 254 operations" or where the library's optimised graph and Python's part.
std::string compare_graphs(const std::vector<std::string>& ours, const std::vector<std::string>& theirs) {
  const auto mismatch = std::mismatch(ours.begin(), ours.end(), theirs.begin(), theirs.end());
  if (mismatch.first == ours.end() && mismatch.second == theirs.end()) {
    return "the same " + std::to_string(ours.size()) + " operations";
  }
  const auto at = static_cast<std::size_t>(mismatch.first - ours.begin());
  return "different: " + std::to_string(ours.size()) + " against " + std::to_string(theirs.size()) +
         " operations, first difference at operation " + std::to_string(at + 1) + " (" +
         (at < ours.size() ? ours[at] : "end") + " against " + (at < theirs.size() ? theirs[at] : "end") + ")";
}

// One way of running a model at a batch size: a name and its images/s over a slice of seconds.
struct Variant {
  std::string name;
  std::function<double(double)> images_per_second;
  bool python = false;
};

// Images/s of each variant in each round, variants[v] in rates[v]. They run in `order`, then
// in reverse every other round, so both sides of a ratio see the same stretch of the
// machine's load, the closer the nearer they stand in `order`.
std::vector<std::vector<double>> rates_in_turns(const std::vector<Variant>& variants, const std::vector<std::size_t>& order,
                                                int rounds, double slice) {
  std::vector<std::vector<double>> rates(variants.size());
  for (int round = 0; round < rounds; ++round) {
    for (std::size_t k = 0; k < order.size(); ++k) {
      const auto v = order[round % 2 ? order.size() - 1 - k : k];
      rates[v].push_back(variants[v].images_per_second(slice));
    }
  }
  return rates;
}

// Dense FMA throughput on one thread: `rounds` rounds of 16 independent chains (enough to
// cover a 4-cycle FMA latency on two pipes), each step one fused multiply-add per lane.
// Returns the flops done; `sink` keeps the compiler from dropping the work.
constexpr int fma_chains = 16;

__attribute__((target("avx512f"))) double fma_flops_avx512(long rounds, float& sink) {
  __m512 acc[fma_chains];
  for (int c = 0; c < fma_chains; ++c) acc[c] = _mm512_set1_ps(1.0F + 0.001F * static_cast<float>(c));
  const __m512 scale = _mm512_set1_ps(0.9999999F), shift = _mm512_set1_ps(1e-7F);
  for (long r = 0; r < rounds; ++r) {
    for (int c = 0; c < fma_chains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], scale, shift);
  }
  alignas(64) float lanes[16];
  for (int c = 1; c < fma_chains; ++c) acc[0] = _mm512_add_ps(acc[0], acc[c]);
  _mm512_store_ps(lanes, acc[0]);
  for (float lane : lanes) sink += lane;
  return 2.0 * 16 * fma_chains * static_cast<double>(rounds);
}

__attribute__((target("avx2,fma"))) double fma_flops_avx2(long rounds, float& sink) {
  __m256 acc[fma_chains];
  for (int c = 0; c < fma_chains; ++c) acc[c] = _mm256_set1_ps(1.0F + 0.001F * static_cast<float>(c));
  const __m256 scale = _mm256_set1_ps(0.9999999F), shift = _mm256_set1_ps(1e-7F);
  for (long r = 0; r < rounds; ++r) {
    for (int c = 0; c < fma_chains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], scale, shift);
  }
  alignas(32) float lanes[8];
  for (int c = 1; c < fma_chains; ++c) acc[0] = _mm256_add_ps(acc[0], acc[c]);
  _mm256_store_ps(lanes, acc[0]);
  for (float lane : lanes) sink += lane;
  return 2.0 * 8 * fma_chains * static_cast<double>(rounds);
}

// The CPU's fp32 peak in GFLOP/s on `threads` threads at once, measured with the widest FMA
// the CPU runs (AVX-512, else AVX2; 0 without FMA). The best of three tries, each about 0.3 s.
// What it measures is what the cores do now: Zen 4's double-pumped AVX-512, a VM's steal time,
// a lower all-core clock are all in it, as they are in the networks' times.
double measured_fp32_peak_gflops(int threads) {
  const bool avx512 = __builtin_cpu_supports("avx512f"), avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (!avx512 && !avx2) return 0.0;
  const auto run = [&](long rounds, float& sink) { return avx512 ? fma_flops_avx512(rounds, sink) : fma_flops_avx2(rounds, sink); };
  // Size the work for ~0.3 s a thread from a short calibration run.
  float sink = 0;
  auto start = Clock::now();
  const double calibration_flops = run(2'000'000, sink);
  const double one_thread_rate = calibration_flops / std::chrono::duration<double>(Clock::now() - start).count();
  const long rounds = static_cast<long>(2'000'000 * (0.3 * one_thread_rate / calibration_flops));
  double best = 0.0;
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::vector<float> sinks(static_cast<std::size_t>(threads));
    std::vector<double> flops(static_cast<std::size_t>(threads));
    std::vector<std::thread> workers;
    start = Clock::now();
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] { flops[static_cast<std::size_t>(t)] = run(rounds, sinks[static_cast<std::size_t>(t)]); });
    }
    for (auto& worker : workers) worker.join();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    double total = 0;
    for (double f : flops) total += f;
    for (float s : sinks) sink += s;
    best = std::max(best, total / seconds / 1e9);
  }
  const volatile float keep = sink;  // the sums are used: the FMAs cannot be dropped
  (void)keep;
  return best;
}

// "NN%" of `peak`, or "n/a" where no trustworthy peak was measured.
std::string share_of_peak(double gflops, double peak) {
  if (!(peak > 0)) return "n/a";
  char text[16];
  std::snprintf(text, sizeof text, "%.0f%%", 100 * gflops / peak);
  return text;
}

// One convolution shape of InceptionV3 at 299: channels, kernel, output size (stride 1).
struct ConvShape {
  const char* name;
  std::int64_t in, out, kernel_h, kernel_w, height, width;
};

// The stem's three heaviest convolutions (1.29 of the 5.71 GMAC) and shapes from each kind of
// Mixed block.
constexpr ConvShape inception_convs[] = {
    {"Conv2d_2a 32->32 3x3 @147", 32, 32, 3, 3, 147, 147},
    {"Conv2d_2b 32->64 3x3 @147", 32, 64, 3, 3, 147, 147},
    {"Conv2d_4a 80->192 3x3 @71", 80, 192, 3, 3, 71, 71},
    {"Mixed_5 64->96 3x3 @35", 64, 96, 3, 3, 35, 35},
    {"Mixed_5 48->64 5x5 @35", 48, 64, 5, 5, 35, 35},
    {"Mixed_6 768->192 1x1 @17", 768, 192, 1, 1, 17, 17},
    {"Mixed_6 192->192 1x7 @17", 192, 192, 1, 7, 17, 17},
    {"Mixed_7 448->384 3x3 @8", 448, 384, 3, 3, 8, 8},
    {"Mixed_7 1280->320 1x1 @8", 1280, 320, 1, 1, 8, 8},
};

// Prints each shape's GFLOP/s at batch 8 (best of NCHW and channels_last) and the ceiling of
// the set: its multiply-adds over the sum of its best times.
void print_convolution_ceiling(double peak, double budget) {
  std::printf("\nconvolution kernels alone (InceptionV3's heaviest shapes, batch 8, best of NCHW / channels_last):\n");
  double total_flop = 0, total_seconds = 0;
  torch::InferenceMode guard;
  for (const auto& c : inception_convs) {
    const auto input = torch::rand({8, c.in, c.height + c.kernel_h - 1, c.width + c.kernel_w - 1});
    const auto weight = torch::rand({c.out, c.in, c.kernel_h, c.kernel_w});
    const auto bias = torch::rand({c.out});
    double best = 1e30;
    for (const auto format : {torch::MemoryFormat::Contiguous, torch::MemoryFormat::ChannelsLast}) {
      const auto x = input.contiguous(format);
      const auto w = weight.contiguous(format);
      const auto convolve = [&] { (void)torch::conv2d(x, w, bias); };
      convolve();
      best = std::min(best, seconds_per_call(convolve, budget / 4, 3));
    }
    const double flop = 2.0 * 8 * c.out * c.in * c.kernel_h * c.kernel_w * c.height * c.width;
    total_flop += flop;
    total_seconds += best;
    std::printf("  %-28s %7.1f GFLOP/s %6s of peak\n", c.name, flop / best / 1e9, share_of_peak(flop / best / 1e9, peak).c_str());
  }
  std::printf("  all of the above, in sequence: %.1f GFLOP/s, %s of peak\n", total_flop / total_seconds / 1e9,
              share_of_peak(total_flop / total_seconds / 1e9, peak).c_str());
}

}  // namespace

int main(int argc, char** argv) try {
  std::vector<std::string> models;
  std::vector<std::int64_t> batches = {1, 8, 32};
  double budget = 4.0;
  double slice = 0.2;
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  std::string python_command;
  const bool bf16 = siamese::cpu_has_native_bfloat16();
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--model") models.push_back(argv[i + 1]);
    else if (flag == "--batches") batches = bench::parse_list(argv[i + 1]);
    else if (flag == "--seconds") budget = std::stod(argv[i + 1]);
    else if (flag == "--slice") slice = std::stod(argv[i + 1]);
    else if (flag == "--threads") threads = std::stoi(argv[i + 1]);
    else if (flag == "--python") python_command = argv[i + 1];
    else models.clear(), i = argc;
  }
  if (models.empty() || !(slice > 0) || !(budget > 0)) {
    std::cerr << "usage: embed_throughput --model FILE [--model FILE ...] [--batches 1,8,32] [--seconds 4]\n"
                 "                        [--slice 0.2] [--threads N] [--python COMMAND]\n";
    return 2;
  }
  siamese::set_num_threads(threads);

  // The CPU's peak, measured with dense FMAs on every thread, checked against SGEMM: no
  // matrix product runs faster than the FMA units, so an SGEMM above the peak (5% for noise)
  // means the peak is wrong, and every "% of peak" is left out rather than printed wrong.
  const auto features = bench::cpu_features();
  const double measured_peak = measured_fp32_peak_gflops(threads);
  const auto a = torch::randn({2048, 2048}), b = torch::randn({2048, 2048});
  const auto multiply = [&] { (void)torch::mm(a, b); };
  multiply();
  const double sgemm = 2.0 * 2048 * 2048 * 2048 / seconds_per_call(multiply, 1.0, 3) / 1e9;
  const bool peak_holds = measured_peak > 0 && sgemm <= 1.05 * measured_peak;
  const double peak = peak_holds ? measured_peak : 0.0;
  const int lanes = __builtin_cpu_supports("avx512f") ? 16 : 8;
  std::printf("threads %d, fp32 peak %.0f GFLOP/s (measured: %d-lane FMAs on every thread; %.2f GHz if 2 FMA pipes), "
              "SGEMM 2048 %.0f GFLOP/s (%s of peak)%s\n",
              threads, measured_peak, lanes, measured_peak / (threads * 2.0 * lanes * 2.0), sgemm,
              share_of_peak(sgemm, peak).c_str(),
              peak_holds ? "" : ": SGEMM exceeds the measured peak, so no % of peak is printed in this run");
  std::printf("%s\n", features.c_str());
  if (!bf16) {
    std::printf("bfloat16: skipped, this CPU has neither AVX512-BF16 nor AMX-BF16: LibTorch would emulate it, "
                "slower than float32, and the library refuses Precision::bfloat16 here\n");
  }
  std::printf("variants%s take turns in slices of %.2f s (one call where a call is longer), %.1f s each "
              "and at least 3 rounds per row\n\n",
              python_command.empty() ? "" : ", Python's included,", slice, budget);

  std::unique_ptr<PythonPeer> python;
  if (!python_command.empty()) python = std::make_unique<PythonPeer>(python_command);

  std::printf("%-34s %5s %5s  %-26s %8s %9s %8s %6s  %s\n", "model", "side", "batch", "variant", "img/s", "ms/batch",
              "GFLOP/s", "%peak", "rounds: slowest-fastest img/s");
  std::vector<std::string> ratios;
  std::vector<double> over_forward, over_python, over_eager, bf16_over_fp32;  // each row's median ratio
  for (const auto& file : models) {
    siamese::BackboneOptions plain_options, library_options;
    plain_options.device = library_options.device = siamese::Device::cpu();
    plain_options.optimize = false;
    const siamese::TorchScriptBackbone library(file, library_options), plain(file, plain_options);
    const auto& metadata = library.metadata();
    const auto side = metadata.input.height;
    const double gflop_per_image = 2.0 * metadata.multiply_adds.value_or(0.0) / 1e9;
    auto module = library.module();
    std::optional<siamese::TorchScriptBackbone> reduced;
    if (bf16) {
      auto options = library_options;
      options.precision = siamese::Precision::bfloat16;
      reduced.emplace(file, options);
    }
    std::vector<std::string> python_variants;
    if (python) {
      std::istringstream names(python->ask("variants " + file));
      for (std::string name; names >> name;) python_variants.push_back(name);
      std::vector<std::string> ours, theirs;
      list_operations(module.get_method("forward").graph()->block(), ours);
      std::istringstream kinds(python->ask("graph " + file));
      for (std::string kind; kinds >> kind;) theirs.push_back(kind);
      std::printf("%s: the library's optimised graph and Python's frozen+optimised one: %s\n", metadata.name.c_str(),
                  compare_graphs(ours, theirs).c_str());
    }
    for (const auto batch : batches) {
      const auto images = torch::rand({batch, 3, side, metadata.input.width});
      const auto channels_last = images.contiguous(torch::MemoryFormat::ChannelsLast);
      std::vector<std::pair<std::string, std::function<void()>>> runs = {
          {"library (frozen+optimised)", [&] { (void)library.embed(images); }},
          {"its module's forward alone", [&] {
             torch::InferenceMode guard;
             (void)module.forward({images});
           }},
          {"library, optimisation off", [&] { (void)plain.embed(images); }},
          {"optimised, channels_last in", [&] {
             torch::InferenceMode guard;
             (void)module.forward({channels_last});
           }},
      };
      if (reduced) {
        runs.emplace_back("library, bfloat16", [&] { (void)reduced->embed(images); });
        const auto reference = library.embed(images);
        const auto rounded = reduced->embed(images);
        std::printf("bfloat16 embeddings vs float32, batch %lld: max abs diff %.3g, largest float32 value %.3g\n",
                    static_cast<long long>(batch), (rounded - reference).abs().max().item<double>(),
                    reference.abs().max().item<double>());
      }
      std::vector<Variant> variants;
      double warm_up_seconds = 0;
      for (const auto& [name, run] : runs) {
        // Untimed: the first call profiles the graph and the second compiles it; oneDNN picks
        // and caches its kernels on the first.
        warm_up_seconds = std::max(warm_up_seconds, seconds_per_call(run, 0, 2));
        variants.push_back({name, [&, run = run](double slice) {
                              return static_cast<double>(batch) / seconds_per_call(run, slice, 1);
                            }});
      }
      for (const auto& name : python_variants) {
        const auto request = "run " + file + " " + std::to_string(batch) + " " + name + " ";
        variants.push_back({"python " + name, [&, request](double slice) {
                              return python->ask_rate(request + std::to_string(slice));
                            },
                            true});
      }
      const int rounds = std::max(3, static_cast<int>(budget / std::max(slice, warm_up_seconds)));
      // The library (0) runs between its own forward (1) and Python's fastest variant, which
      // python_baseline.py lists first: the library's variants in reverse, then Python's.
      std::vector<std::size_t> order(runs.size());
      for (std::size_t v = 0; v < runs.size(); ++v) order[v] = runs.size() - 1 - v;
      for (std::size_t v = runs.size(); v < variants.size(); ++v) order.push_back(v);
      const auto rates = rates_in_turns(variants, order, rounds, slice);
      for (std::size_t v = 0; v < variants.size(); ++v) {
        const double rate = median(rates[v]);
        std::printf("%-34s %5lld %5lld  %-26s %8.1f %9.1f %8.1f %6s  %.1f-%.1f\n", metadata.name.substr(0, 34).c_str(),
                    static_cast<long long>(side), static_cast<long long>(batch), variants[v].name.c_str(), rate,
                    1e3 * static_cast<double>(batch) / rate, rate * gflop_per_image,
                    share_of_peak(rate * gflop_per_image, peak).c_str(),
                    *std::min_element(rates[v].begin(), rates[v].end()),
                    *std::max_element(rates[v].begin(), rates[v].end()));
        std::fflush(stdout);
      }
      // The library over its own module's forward (the cost of its checks), over the Python
      // TorchScript variant with the best median, and over Python eager; the library in
      // bfloat16 over the library.
      std::size_t best_python = 0, eager = 0, bfloat16 = 0;  // 0, the library's own index, stands for none
      for (std::size_t v = 0; v < variants.size(); ++v) {
        if (variants[v].name == "python eager") eager = v;
        else if (variants[v].name == "library, bfloat16") bfloat16 = v;
        else if (variants[v].python && (!best_python || median(rates[v]) > median(rates[best_python]))) best_python = v;
      }
      const auto ratio = [&](std::size_t top, std::size_t bottom, std::vector<double>& row_medians) {
        if (!top && !bottom) return std::string("-");
        std::vector<double> within_rounds;
        for (int round = 0; round < rounds; ++round) within_rounds.push_back(rates[top][round] / rates[bottom][round]);
        row_medians.push_back(median(within_rounds));
        char text[96];
        std::snprintf(text, sizeof text, "%.2fx (rounds %.2f-%.2f)", median(within_rounds),
                      *std::min_element(within_rounds.begin(), within_rounds.end()),
                      *std::max_element(within_rounds.begin(), within_rounds.end()));
        return std::string(text);
      };
      const auto versus = [&](std::size_t other, std::vector<double>& row_medians) { return ratio(0, other, row_medians); };
      char line[480];
      std::snprintf(line, sizeof line,
                    "%-34s %5lld %5lld  %2d rounds  library/forward-alone %s  library/%s %s  library/python-eager %s  "
                    "bfloat16/float32 %s",
                    metadata.name.substr(0, 34).c_str(), static_cast<long long>(side), static_cast<long long>(batch), rounds,
                    versus(1, over_forward).c_str(), best_python ? variants[best_python].name.c_str() : "python",
                    versus(best_python, over_python).c_str(), versus(eager, over_eager).c_str(),
                    ratio(bfloat16, 0, bf16_over_fp32).c_str());
      ratios.emplace_back(line);
    }
  }
  std::printf("\nratios: the median of the ratios within each round (variants taking turns), and their range:\n");
  for (const auto& line : ratios) std::printf("%s\n", line.c_str());
  // The library against its own forward does the same work (plus microseconds of checks):
  // its spread is this machine's noise, the yardstick for the other ratios.
  const auto geometric_mean = [](const std::vector<double>& values) {
    double log_sum = 0;
    for (const double v : values) log_sum += std::log(v);
    return values.empty() ? 0.0 : std::exp(log_sum / static_cast<double>(values.size()));
  };
  std::printf("geometric mean over the rows: library/forward-alone %.3fx (the noise yardstick)", geometric_mean(over_forward));
  if (!over_python.empty()) std::printf(", library/best-python-TorchScript %.3fx", geometric_mean(over_python));
  if (!over_eager.empty()) std::printf(", library/python-eager %.3fx", geometric_mean(over_eager));
  if (!bf16_over_fp32.empty()) std::printf(", library bfloat16/float32 %.3fx", geometric_mean(bf16_over_fp32));
  std::printf("\n");
  print_convolution_ceiling(peak, budget);
  return 0;
} catch (const std::exception& e) {
  std::cerr << "embed_throughput: " << e.what() << "\n";
  return 1;
}
