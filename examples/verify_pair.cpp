// verify_pair: are the faces in two photos the same person?
//
// Loads a TorchScript backbone with its siamese.json metadata (for instance the face model that
// tools/setup_models.sh converts into models/), embeds both photos with ONE shared network,
// and prints the Euclidean distance, the head's probability and the verdict.
//
// Models needed: a backbone file, and OpenCV's Haar cascade (Debian's opencv-data) to find the
// face in each photo. With --cropped, the photos are taken as face crops and only resized.
//
// Usage: verify_pair MODEL.pt IMAGE_A IMAGE_B [--cropped] [--device auto|cpu|cuda[:N]]

#include <siamese/siamese.hpp>

#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace {

struct Arguments {
  std::string model;
  std::string image_a;
  std::string image_b;
  std::string device = "auto";
  bool cropped = false;
};

constexpr const char* usage =
    "usage: verify_pair MODEL.pt IMAGE_A IMAGE_B [--cropped] [--device auto|cpu|cuda[:N]]\n"
    "  Finds the largest face in each photo and prints the distance between the two faces,\n"
    "  the probability that they are the same person, and the verdict.\n"
    "  --cropped   the images are face crops already: skip detection\n"
    "  Exit code 0 on success, 2 on bad arguments, 1 on errors (3 when no face is found).\n";

Arguments parse_arguments(int argc, char** argv) {
  std::vector<std::string> positional;
  Arguments args;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--device" && i + 1 < argc) {
      args.device = argv[++i];
    } else if (arg == "--cropped") {
      args.cropped = true;
    } else if (arg == "-h" || arg == "--help") {
      std::cout << usage;
      std::exit(0);
    } else if (!arg.empty() && arg[0] == '-') {
      throw std::invalid_argument("unknown option '" + arg + "'");
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 3) {
    throw std::invalid_argument("expected MODEL IMAGE_A IMAGE_B, got " +
                                std::to_string(positional.size()) + " arguments");
  }
  args.model = positional[0];
  args.image_a = positional[1];
  args.image_b = positional[2];
  return args;
}

}  // namespace

int main(int argc, char** argv) {
  Arguments args;
  try {
    args = parse_arguments(argc, argv);
  } catch (const std::invalid_argument& e) {
    std::cerr << "verify_pair: " << e.what() << '\n' << usage;
    return 2;
  }
  try {
    siamese::BackboneOptions options;
    options.device = siamese::Device::parse(args.device);
    const auto net = siamese::load_face_verifier(args.model, options);
    const auto& spec = net.backbone().input_spec();
    std::optional<siamese::HaarFaceDetector> detector;
    if (!args.cropped) detector.emplace();
    auto face_tensor = [&](const std::string& file) {
      const auto image = siamese::read_image(file);
      return siamese::to_input_tensor(
          detector ? siamese::find_and_crop_face(*detector, image, file) : image, spec);
    };
    const auto result = net.verify(face_tensor(args.image_a), face_tensor(args.image_b));

    std::cout << std::fixed << std::setprecision(4)
              << "model:       " << net.backbone().metadata().name << " ("
              << (net.backbone().metadata().pretrained ? "pretrained" : "RANDOM weights")
              << ", device " << options.device.str() << ", " << torch::get_num_threads()
              << " threads)\n"
              << "distance:    " << result.distance << '\n'
              << "probability: " << result.probability << '\n'
              << "verdict:     " << (result.same ? "same person" : "different people") << '\n';
    return 0;
  } catch (const siamese::NoFaceFound& e) {
    std::cerr << "verify_pair: " << e.what() << " (use --cropped for face crops)\n";
    return 3;
  } catch (const std::exception& e) {
    std::cerr << "verify_pair: " << e.what() << '\n';
    return 1;
  }
}
