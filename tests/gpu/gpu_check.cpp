// gpu_check: the library on a CUDA device, checked against the CPU as reference, and its
// throughput. Built by tools/gpu-check.sh against siamese::core alone (no OpenCV), with the
// LibTorch the machine has.
//
// Models: a folder holding faceapi_recognition.pt and inception_v3.pt (tools/setup-models.sh,
// or the pack tools/gpu-check.sh makes); a model that is absent is skipped, saying so.
//
// Usage:
//   gpu_check checks MODELS WORK       every check below; exit 1 when one fails
//   gpu_check throughput MODELS BATCHES PRECISIONS SECONDS
//                                      CSV rows "model,precision,batch,images_per_s"
// Without CUDA, "checks" runs its CPU half (optimised against plain, bfloat16 where the CPU
// has it, training, checkpoints, device errors) and says that CUDA is absent.
//
// Bounds: the largest relative L2 error of an embedding row against the CPU's float32 one.
//   float32 on CUDA 1e-2 (cuDNN may run convolutions in TF32, 10-bit mantissa),
//   float16 2e-2, bfloat16 6e-2 (8-bit mantissa), optimised vs plain on the CPU 1e-4.

#include <siamese/core.hpp>

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using siamese::Device;
using siamese::Precision;

int failures = 0;

void check(bool ok, const std::string& what, const std::string& detail = "") {
  std::cout << (ok ? "PASS " : "FAIL ") << what << (detail.empty() ? "" : ": " + detail) << std::endl;
  if (!ok) ++failures;
}

/// Runs `body`, failing the check `what` when it throws.
void guarded(const std::string& what, const std::function<void()>& body) {
  try {
    body();
  } catch (const std::exception& e) {
    check(false, what, std::string("threw ") + e.what());
  }
}

std::string number(double value) {
  std::ostringstream out;
  out.precision(3);
  out << value;
  return out.str();
}

siamese::TorchScriptBackbone load(const fs::path& file, Device device, Precision precision, bool optimize) {
  siamese::BackboneOptions options;
  options.device = device;
  options.precision = precision;
  options.optimize = optimize;
  return siamese::TorchScriptBackbone(file, options);
}

/// A fixed batch in the range normalised inputs take.
torch::Tensor sample_batch(const siamese::InputSpec& spec, std::int64_t n, std::uint64_t seed) {
  torch::manual_seed(seed);
  return torch::rand({n, 3, spec.height, spec.width}) * 2 - 1;
}

/// The largest relative L2 error of a row of `value` against the same row of `reference`.
double relative_error(const torch::Tensor& value, const torch::Tensor& reference) {
  const auto v = value.to(torch::kCPU, torch::kFloat64), r = reference.to(torch::kCPU, torch::kFloat64);
  return ((v - r).norm(2, {1}) / r.norm(2, {1}).clamp_min(1e-12)).max().item<double>();
}

bool precision_runs_on(Precision precision, const Device& device) {
  if (precision == Precision::float16) return device.is_cuda();
  if (precision == Precision::bfloat16) {
    return device.is_cuda() ? siamese::cuda_has_native_bfloat16(device) : siamese::cpu_has_native_bfloat16();
  }
  return true;
}

double bound_of(Precision precision) {
  switch (precision) {
    case Precision::float16: return 2e-2;
    case Precision::bfloat16: return 6e-2;
    case Precision::float32: break;
  }
  return 1e-2;
}

/// Embeddings on `device` in every precision it runs, plain and optimised, against the CPU's
/// float32 plain reference.
void check_embeddings(const fs::path& model, const Device& device) {
  const auto name = model.filename().string();
  guarded(name + " embeddings", [&] {
    const auto reference_net = load(model, Device::cpu(), Precision::float32, false);
    const auto batch = sample_batch(reference_net.input_spec(), 4, 7);
    const auto reference = reference_net.embed(batch);
    const auto cpu_optimised = load(model, Device::cpu(), Precision::float32, true);
    const double optimised_error = relative_error(cpu_optimised.embed(batch), reference);
    check(optimised_error <= 1e-4, name + " optimised against plain, float32 on the CPU",
          "relative error " + number(optimised_error) + " (bound 1e-4)");
    for (const auto precision : {Precision::float32, Precision::float16, Precision::bfloat16}) {
      if (!precision_runs_on(precision, device)) {
        std::cout << "skip " << name << " " << siamese::precision_name(precision) << " on " << device.str()
                  << ": not supported there" << std::endl;
        continue;
      }
      if (!device.is_cuda() && precision == Precision::float32) continue;  // the reference itself
      for (const bool optimise : {false, true}) {
        const auto net = load(model, device, precision, optimise);
        const auto embeddings = net.embed(batch);
        const double error = relative_error(embeddings, reference);
        check(embeddings.device() == device.torch_device() && error <= bound_of(precision),
              name + " " + siamese::precision_name(precision) + (optimise && net.is_optimized() ? " optimised" : " plain") +
                  " on " + device.str() + " against float32 on the CPU",
              "relative error " + number(error) + " (bound " + number(bound_of(precision)) + ")");
      }
    }
  });
}

/// SiameseNet::verify on `device` against the CPU; the caller's head stays where it was.
void check_verify(const fs::path& model, const Device& device) {
  guarded("SiameseNet::verify", [&] {
    siamese::SigmoidHead head(siamese::SigmoidHeadOptions::centered_at(0.6));
    siamese::FaceVerifier on_device(load(model, device, Precision::float32, true), siamese::EuclideanDistance(), head);
    siamese::FaceVerifier on_cpu(load(model, Device::cpu(), Precision::float32, false), siamese::EuclideanDistance(), head);
    const auto a = sample_batch(on_cpu.backbone().input_spec(), 2, 11), b = sample_batch(on_cpu.backbone().input_spec(), 2, 12);
    const auto expected = on_cpu.verify_batch(a, b);
    const auto got = on_device.verify_batch(a, b);
    double worst = 0.0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      worst = std::max(worst, std::abs(got[i].distance - expected[i].distance) / std::max(1e-12, expected[i].distance));
    }
    check(worst <= 1e-2, "SiameseNet::verify on " + device.str() + " against the CPU", "distance relative error " + number(worst));
    check(head->weight.device().is_cpu() && on_device.head()->weight.device() == device.torch_device(),
          "SiameseNet holds its own head on " + device.str() + ", the caller's stays on the CPU");
  });
}

/// train_head on `device`; the head saved there loads on the CPU.
void check_train_head(const Device& device, const fs::path& work) {
  guarded("train_head", [&] {
    std::vector<double> distances;
    std::vector<int> labels;
    for (int i = 0; i < 200; ++i) {
      const bool same = i % 2 == 0;
      distances.push_back((same ? 0.45 : 0.85) + 0.1 * std::sin(i * 1.7));
      labels.push_back(same ? 1 : 0);
    }
    siamese::SigmoidHead head(siamese::SigmoidHeadOptions{-1.0, 0.0});
    head->to(device.torch_device());
    siamese::train::HeadTrainingOptions few;
    few.epochs = 1;
    const double first = siamese::train::train_head(head, distances, labels, few);
    const double last = siamese::train::train_head(head, distances, labels);
    check(last < first && head->weight.device() == device.torch_device(), "train_head on " + device.str(),
          "loss " + number(first) + " -> " + number(last));
    const auto file = work / "head.pt";
    siamese::save_head(head, file);
    const auto loaded = siamese::load_head(file);
    check(loaded->weight.device().is_cpu() &&
              std::abs(loaded->weight.item<double>() - head->weight.to(torch::kCPU).item<double>()) < 1e-6,
          "a head saved on " + device.str() + " loads on the CPU");
  });
}

/// Identities made of files that need not be photos: the chips are drawn from the names, one
/// pattern per person and a little noise per file, so no image library is needed.
siamese::train::ChipSource synthetic_chips() {
  return [](const fs::path& file, const siamese::InputSpec& spec) {
    const auto person = std::hash<std::string>{}(file.parent_path().filename().string());
    const auto photo = std::hash<std::string>{}(file.string());
    auto generator = at::detail::createCPUGenerator(person % 1000003);
    auto pattern = torch::randn({3, spec.height, spec.width}, generator) * 0.5;
    auto noise_generator = at::detail::createCPUGenerator(photo % 1000003);
    return (pattern + torch::randn({3, spec.height, spec.width}, noise_generator) * 0.2).clamp(-1, 1);
  };
}

fs::path make_identity_folder(const fs::path& root, int people, int photos) {
  for (int p = 0; p < people; ++p) {
    fs::create_directories(root / ("person" + std::to_string(p)));
    for (int i = 0; i < photos; ++i) std::ofstream(root / ("person" + std::to_string(p)) / (std::to_string(i) + ".jpg"));
  }
  return root;
}

/// A few FineTuner and Distiller steps on `device`: the loss falls, the weights stay finite,
/// and the checkpoints (model and optimiser state) load and resume on the CPU.
void check_training(const fs::path& model, const Device& device, const fs::path& work) {
  const auto people_root = make_identity_folder(work / "people", 6, 3);
  const siamese::train::IdentityFolder people(people_root, 2);
  guarded("FineTuner", [&] {
    siamese::train::FineTuneOptions options;
    options.trainable = {"blocks.13", "fc"};
    options.learning_rate = 1e-3;
    options.epochs = 3;
    options.patience = 3;
    options.steps_per_epoch = 3;
    options.people_per_batch = 6;
    options.checkpoint_dir = work / "finetune";
    options.device = device;
    siamese::train::FineTuner tuner(model, synthetic_chips(), people, {}, options);
    const auto reports = tuner.run();
    bool finite = true;
    for (const auto& parameter : tuner.backbone().module().parameters()) finite = finite && torch::isfinite(parameter).all().item<bool>();
    check(reports.size() == 3 && reports.back().loss < reports.front().loss && finite, "FineTuner on " + device.str(),
          "loss " + number(reports.front().loss) + " -> " + number(reports.back().loss));
    const auto reloaded = load(options.checkpoint_dir / "last.pt", Device::cpu(), Precision::float32, false);
    const auto e = reloaded.embed(sample_batch(reloaded.input_spec(), 1, 3));
    check(torch::isfinite(e).all().item<bool>(), "a FineTuner checkpoint written on " + device.str() + " loads on the CPU");
    options.device = Device::cpu();
    options.epochs = 4;
    options.patience = 4;
    siamese::train::FineTuner resumed(model, synthetic_chips(), people, {}, options);
    check(resumed.epochs_done() == 3 && resumed.run().size() == 1,
          "FineTuner resumes on the CPU from the optimiser state saved on " + device.str());
  });
  guarded("Distiller", [&] {
    siamese::train::DistillOptions options;
    options.trainable = {"projection"};
    options.learning_rate = 1e-2;
    options.epochs = 3;
    options.patience = 3;
    options.batch_size = 6;
    options.mirror = true;
    options.checkpoint_dir = work / "distill";
    options.device = device;
    const auto teacher = load(model, device, Precision::float32, true);
    siamese::train::Distiller distiller(model, teacher, synthetic_chips(), people.images(), {}, options);
    const auto reports = distiller.run();
    check(reports.size() == 3 && reports.back().loss < reports.front().loss, "Distiller on " + device.str(),
          "loss " + number(reports.front().loss) + " -> " + number(reports.back().loss));
    const auto reloaded = load(options.checkpoint_dir / "best.pt", Device::cpu(), Precision::float32, false);
    check(torch::isfinite(reloaded.embed(sample_batch(reloaded.input_spec(), 1, 3))).all().item<bool>(),
          "a Distiller checkpoint written on " + device.str() + " loads on the CPU");
  });
}

template <class Body>
bool throws_device_error(Body body) {
  try {
    body();
  } catch (const siamese::DeviceError&) {
    return true;
  } catch (const std::exception&) {
  }
  return false;
}

/// Inputs on another device than their partner or the module are refused with DeviceError.
void check_wrong_devices(const Device& device) {
  const auto other = device.is_cuda() ? torch::Device(torch::kCPU) : torch::Device(torch::kMeta);
  const auto here = torch::zeros({2, 8}, torch::TensorOptions(device.torch_device()));
  const auto there = torch::zeros({2, 8}, torch::TensorOptions(other));
  check(throws_device_error([&] { siamese::EuclideanDistance{}(here, there); }),
        "a distance of embeddings on " + device.str() + " and " + other.str() + " is refused");
  siamese::SigmoidHead head;
  head->to(device.torch_device());
  check(throws_device_error([&] { head(torch::zeros({2, 1}, torch::TensorOptions(other))); }),
        "a head on " + device.str() + " refuses distances on " + other.str());
}

int checks(const fs::path& models, const fs::path& work) {
  const bool cuda = torch::cuda::is_available();
  const auto device = cuda ? Device::cuda(0) : Device::cpu();
  std::cout << "gpu_check: LibTorch " << TORCH_VERSION << ", "
            << (cuda ? "CUDA with " + std::to_string(torch::cuda::device_count()) + " device(s): checking on cuda:0 against the CPU"
                     : std::string("CUDA absent: the CPU half only"))
            << std::endl;
  fs::remove_all(work);
  fs::create_directories(work);
  const auto face = models / "faceapi_recognition.pt", inception = models / "inception_v3.pt";
  for (const auto& model : {face, inception}) {
    if (fs::exists(model)) {
      check_embeddings(model, device);
    } else {
      std::cout << "skip " << model.string() << ": absent" << std::endl;
    }
  }
  if (fs::exists(face)) {
    check_verify(face, device);
    check_training(face, device, work);
  }
  check_train_head(device, work);
  check_wrong_devices(device);
  std::cout << "gpu_check: " << (failures ? std::to_string(failures) + " check(s) failed" : std::string("every check passed"))
            << (cuda ? "" : " (CUDA absent: the CUDA half did not run)") << std::endl;
  return failures ? 1 : 0;
}

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> items;
  std::istringstream in(list);
  for (std::string item; std::getline(in, item, ',');) items.push_back(item);
  return items;
}

/// Images per second of embed() for every model, precision and batch, each measured for about
/// `seconds` after a warm-up, on CUDA device 0 when there is one.
int throughput(const fs::path& models, const std::string& batches, const std::string& precisions, double seconds) {
  const auto device = torch::cuda::is_available() ? Device::cuda(0) : Device::cpu();
  for (const auto* name : {"faceapi_recognition.pt", "inception_v3.pt"}) {
    if (!fs::exists(models / name)) continue;
    for (const auto& precision_name : split(precisions)) {
      const auto precision = siamese::parse_precision(precision_name);
      if (!precision_runs_on(precision, device)) continue;
      const auto net = load(models / name, device, precision, true);
      for (const auto& batch_text : split(batches)) {
        const auto batch = std::stoll(batch_text);
        const auto input = sample_batch(net.input_spec(), batch, 5).to(device.torch_device());
        for (int i = 0; i < 3; ++i) net.embed(input);
        std::size_t images = 0;
        const auto start = std::chrono::steady_clock::now();
        double elapsed = 0.0;
        for (int calls = 0; calls < 3 || elapsed < seconds; ++calls) {
          net.embed(input);  // returns after reading the result back: every call is complete
          images += static_cast<std::size_t>(batch);
          elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        }
        std::cout << name << ',' << precision_name << ',' << batch << ',' << images / elapsed << std::endl;
      }
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string usage =
      "usage: gpu_check checks MODELS WORK\n"
      "       gpu_check throughput MODELS BATCHES PRECISIONS SECONDS   (e.g. 1,32,256 float32,float16,bfloat16 2)\n";
  try {
    const std::vector<std::string> args(argv + 1, argv + argc);
    if (args.size() == 3 && args[0] == "checks") return checks(args[1], args[2]);
    if (args.size() == 5 && args[0] == "throughput") return throughput(args[1], args[2], args[3], std::stod(args[4]));
    std::cerr << usage;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "gpu_check: " << e.what() << '\n' << usage;
    return 1;
  }
}
