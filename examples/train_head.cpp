// train_head: fit the sigmoid head on your own people, with the backbone frozen.
//
// Splits a folder of identities (ROOT/<person>/<image>) by person into training and
// validation people, samples balanced same/different pairs from each (seeded), embeds every
// image once (cached on disk, keyed by model and image content), and trains the head
// p = sigmoid(w*d + b) with binary cross-entropy on the distances: seconds, not hours.
// Prints validation accuracy (at p >= 0.5) of the untrained and the trained head, and saves
// the head, which verify_pair loads with --head.
//
// Models needed: the backbone, and the detector and landmark models beside it
// (tools/setup-models.sh).
//
// Usage: train_head --model M --people ROOT --out HEAD.pt [--pairs N] [--seed S]
//                   [--cache FILE] [--cropped]
// (train_head --help lists every option with its default.)

#include "example_main.hpp"

#include <iomanip>
#include <iostream>

namespace {

struct Arguments {
  std::string model, people, out, cache, device = "auto";
  std::size_t pairs = 2000;
  std::uint64_t seed = 1;
  bool cropped = false;
};

void add_arguments(CLI::App& app, Arguments& a) {
  app.add_option("--model", a.model, "backbone file (frozen)")->required();
  app.add_option("--people", a.people, "folder of identities, ROOT/<person>/<image>")->required();
  app.add_option("--out", a.out, "where the trained head goes (verify_pair --head)")->required();
  app.add_option("--pairs", a.pairs, "training pairs (validation gets a quarter as many)")->check(CLI::Range(2, 10000000));
  app.add_option("--seed", a.seed, "seed of the people split and the pair sampling");
  app.add_option("--cache", a.cache, "embedding cache file (default: OUT.embeddings)");
  app.add_flag("--cropped", a.cropped, "images are aligned face crops: no detection");
  example::add_device_option(app, a.device);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("Trains the sigmoid head p = sigmoid(w*d + b) on your people, the backbone frozen.", "train_head");
  example::configure(app);
  Arguments args;
  add_arguments(app, args);
  return example::run_main(app, argc, argv, [&] {
    using namespace siamese;
    if (args.cache.empty()) args.cache = args.out + ".embeddings";
    const train::IdentityFolder everyone(args.people);
    const auto [train_people, validation_people] = everyone.split(0.75, args.seed);
    const auto train_pairs = train::sample_pairs(train_people, args.pairs, args.seed);
    const auto validation_pairs = train::sample_pairs(validation_people, std::max<std::size_t>(2, args.pairs / 4), args.seed + 1);

    // Any backbone: training a head is how one without a fitted decision gets its first.
    BackboneOptions backbone_options;
    backbone_options.device = Device::parse(args.device);
    const TorchScriptBackbone backbone(args.model, backbone_options);
    std::optional<FacePipeline> pipeline;
    if (!args.cropped) {
      FacePipelineOptions options;
      options.chip_size = backbone.input_spec().height;
      options.center_fallback = true;
      options.policy = FacePolicy::central;  // identity folders hold face-dataset photos
      pipeline.emplace(FacePipeline::from_models(std::filesystem::path(args.model).parent_path(), options, backbone.device()));
    }
    ImageEmbedder embedder(backbone, std::move(pipeline));
    embedder.set_progress(stderr_progress());
    const auto cached = embedder.load_cache(args.cache, backbone.metadata().name);
    auto distances_of = [&](const std::vector<eval::ImagePair>& pairs) {
      std::vector<std::filesystem::path> a, b;
      for (const auto& p : pairs) {
        a.push_back(p.a);
        b.push_back(p.b);
      }
      const auto d = EuclideanDistance{}(embedder.embed_files(a), embedder.embed_files(b)).squeeze(1).to(torch::kFloat64).contiguous();
      return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
    };
    auto labels_of = [](const std::vector<eval::ImagePair>& pairs) {
      std::vector<int> y;
      for (const auto& p : pairs) y.push_back(p.label);
      return y;
    };
    const auto train_d = distances_of(train_pairs);
    const auto validation_d = distances_of(validation_pairs);
    embedder.save_cache(args.cache, backbone.metadata().name);
    const auto train_y = labels_of(train_pairs);
    const auto validation_y = labels_of(validation_pairs);
    auto accuracy = [&](SigmoidHead& head) {
      torch::NoGradGuard no_grad;
      const auto p = head(torch::tensor(validation_d).to(torch::kFloat32));
      std::size_t correct = 0;
      for (std::size_t i = 0; i < validation_y.size(); ++i) correct += (p[i].item<double>() >= 0.5) == (validation_y[i] == 1);
      return static_cast<double>(correct) / static_cast<double>(validation_y.size());
    };
    // A fresh Dense(1) knows nothing of the distances' scale: w = -1, b = 0 says "different"
    // to every pair. The model's own head (its calibration or published threshold) is the one
    // to beat, where it has one.
    SigmoidHead untrained(SigmoidHeadOptions{-1.0, 0.0});
    const auto own = fitted_decision(args.model, backbone.metadata());
    SigmoidHead own_head(own ? own->head : SigmoidHeadOptions{});
    SigmoidHead head(SigmoidHeadOptions{-1.0, 0.0});
    const double before = accuracy(untrained);
    const double own_accuracy = accuracy(own_head);
    const double loss = train::train_head(head, train_d, train_y);
    const double after = accuracy(head);
    save_head(head, args.out);
    const auto& stats = embedder.stats();
    std::cout << std::fixed << std::setprecision(4)
              << "people           " << train_people.people().size() << " training, " << validation_people.people().size()
              << " validation (no person in both)\n"
              << "pairs            " << train_pairs.size() << " training, " << validation_pairs.size() << " validation\n"
              << "embeddings       " << stats.embedded << " computed, " << stats.cache_hits << " from cache (" << cached
              << " loaded from " << args.cache << ")\n"
              << "untrained head   w " << untrained->weight.item<double>() << ", b " << untrained->bias.item<double>()
              << ": validation accuracy " << before << '\n'
              << "model's own head ";
    if (own) {
      std::cout << "w " << own->head.weight << ", b " << own->head.bias << ": validation accuracy " << own_accuracy << " ("
                << own->source << ")\n";
    } else {
      std::cout << "none: no calibration or published threshold for this model\n";
    }
    std::cout << "trained head     w " << head->weight.item<double>() << ", b " << head->bias.item<double>()
              << ": validation accuracy " << after << " (training loss " << loss << ")\n"
              << "saved            " << args.out << " (verify_pair --head " << args.out << ")\n";
    return 0;
  });
}
