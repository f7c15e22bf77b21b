#include "fixtures.hpp"

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <fstream>
#include <sstream>
#include <unordered_set>

using Approx = Catch::Detail::Approx;
namespace train = siamese::train;
namespace eval = siamese::eval;

TEST_CASE("A chip source that gives the wrong shape is refused, naming the file", "[train][errors]") {
  const siamese::train::ChipSource wrong = [](const std::filesystem::path&, const siamese::InputSpec&) {
    return torch::zeros({3, 5, 5});
  };
  siamese::InputSpec spec;
  spec.height = spec.width = 8;
  CHECK_THROWS_AS(siamese::train::detail::checked_chip(wrong, "a/b.jpg", spec), siamese::ShapeError);
  CHECK_THROWS_WITH(siamese::train::detail::checked_chip(wrong, "a/b.jpg", spec),
                    Catch::Contains("'a/b.jpg'") && Catch::Contains("[3, 5, 5]") && Catch::Contains("[3,8,8]"));
}

TEST_CASE("Losses match hand-computed values", "[train][losses]") {
  const auto d = torch::tensor({0.5, 2.0, 0.3});
  const auto y = torch::tensor({1.0, 0.0, 0.0});
  // Contrastive, margin 1: 0.25 + 0 + 0.49 -> mean 0.74 / 3.
  CHECK(train::contrastive_loss(d, y, 1.0).item<double>() == Approx(0.74 / 3));
  // Triplet, margin 0.2: max(0.5 - 0.9 + 0.2, 0) = 0, max(0.8 - 0.3 + 0.2, 0) = 0.7.
  CHECK(train::triplet_loss(torch::tensor({0.5, 0.8}), torch::tensor({0.9, 0.3}), 0.2).item<double>() == Approx(0.35));
  // BCE on logits 0 and 2 with labels 1 and 0: (ln 2 + ln(1 + e^2)) / 2.
  CHECK(train::binary_cross_entropy(torch::tensor({0.0, 2.0}), torch::tensor({1.0, 0.0})).item<double>() ==
        Approx((std::log(2.0) + std::log(1.0 + std::exp(2.0))) / 2));
  CHECK_THROWS_AS(train::triplet_loss(torch::zeros({2}), torch::zeros({3}), 0.2), siamese::ShapeError);
  CHECK_THROWS_AS(train::contrastive_loss(d, y, 0.0), siamese::Error);
}

TEST_CASE("Training the head on distances improves it", "[train][head]") {
  std::vector<double> d;
  std::vector<int> y;
  for (int i = 0; i < 200; ++i) {
    d.push_back(i % 2 ? 1.0 + 0.002 * i : 0.2 + 0.002 * i);
    y.push_back(i % 2 ? 0 : 1);
  }
  siamese::SigmoidHead head(siamese::SigmoidHeadOptions{-1.0, 0.0});  // starts poor: p < 0.5 for all
  auto loss_of = [&](siamese::SigmoidHead& h) {
    torch::NoGradGuard no_grad;
    return train::binary_cross_entropy(h->logits(torch::tensor(d).to(torch::kFloat32)),
                                       torch::tensor(std::vector<float>(y.begin(), y.end())))
        .item<double>();
  };
  const double before = loss_of(head);
  const double after = train::train_head(head, d, y);
  CHECK(after < before / 3);
  CHECK(head->distance_at(0.5) > 0.6);
  CHECK(head->distance_at(0.5) < 1.0);
}

TEST_CASE("Identity folders, seeded pairs and negatives mining", "[train][data]") {
  fixtures::TempDir dir;
  for (const char* person : {"carol", "alice", "bob", "dave"}) {
    std::filesystem::create_directories(dir / person);
    const int count = std::string(person) == "dave" ? 1 : 3;
    for (int i = 0; i < count; ++i) {
      REQUIRE(cv::imwrite((dir / person / (std::to_string(i) + ".png")).string(), cv::Mat(4, 4, CV_8UC3, cv::Scalar::all(i))));
    }
  }
  fixtures::write_file(dir / "alice" / "notes.txt", "not an image");
  train::IdentityFolder folder(dir.path());
  REQUIRE(folder.people().size() == 4);
  CHECK(folder.people()[0].name == "alice");
  CHECK(folder.people()[0].images.size() == 3);
  CHECK(train::IdentityFolder(dir.path(), 2).people().size() == 3);
  CHECK_THROWS_AS(train::IdentityFolder(dir / "nowhere"), siamese::FileError);
  CHECK_THROWS_AS(train::IdentityFolder(dir.path(), 10), siamese::Error);

  const auto pairs = train::sample_pairs(folder, 40, 11);
  REQUIRE(pairs.size() == 40);
  int same = 0;
  for (const auto& p : pairs) {
    same += p.label;
    CHECK(p.a != p.b);
    CHECK((p.a.parent_path() == p.b.parent_path()) == (p.label == 1));
  }
  CHECK(same == 20);
  const auto again = train::sample_pairs(folder, 40, 11);
  CHECK(again[7].a == pairs[7].a);  // seeded: reproducible

  const auto [left, right] = folder.split(0.5, 3);
  CHECK(left.people().size() + right.people().size() == 4);
  for (const auto& p : left.people())
    for (const auto& q : right.people()) CHECK(p.name != q.name);

  // Embeddings on a line: person 0 at 0 and 1, person 1 at 0.5 and 3, person 2 at 5.
  const auto e = torch::tensor({0.0, 1.0, 0.5, 3.0, 5.0}).unsqueeze(1);
  const std::vector<std::int64_t> labels = {0, 0, 1, 1, 2};
  std::mt19937_64 rng(1);
  // Anchor 0, positive 1 (d = 1): hardest negative is row 2 (0.5); semi-hard is row 3 (3 > 1).
  CHECK(train::select_negatives(e, labels, {0}, {1}, train::Mining::hard, rng)[0] == 2);
  CHECK(train::select_negatives(e, labels, {0}, {1}, train::Mining::semi_hard, rng)[0] == 3);
  for (int i = 0; i < 10; ++i) {
    const auto n = train::select_negatives(e, labels, {0}, {1}, train::Mining::random, rng)[0];
    CHECK(labels[n] != 0);
  }
}

namespace {

// dir/people/p<P>/<I>.png: `people` people of `images` 8x8 photos each, every photo its own colour.
train::IdentityFolder people_folder(const fixtures::TempDir& dir, int people, int images) {
  for (int p = 0; p < people; ++p) {
    std::filesystem::create_directories(dir / "people" / ("p" + std::to_string(p)));
    for (int i = 0; i < images; ++i) {
      cv::Mat image(8, 8, CV_8UC3, cv::Scalar(30 * p + 9 * i, 210 - 30 * p, 13 * i + 7 * p));
      REQUIRE(cv::imwrite((dir / "people" / ("p" + std::to_string(p)) / (std::to_string(i) + ".png")).string(), image));
    }
  }
  return train::IdentityFolder(dir / "people");
}

}  // namespace

TEST_CASE("Fine-tuning trains only the named parameters and resumes from checkpoints", "[train][finetune]") {
  fixtures::TempDir dir;
  const auto model = fixtures::save_tiny_backbone(dir);
  const auto people = people_folder(dir, 4, 3);
  const auto validation = train::sample_pairs(people, 8, 2);
  train::FineTuneOptions options;
  options.trainable = {"fc_weight"};
  options.epochs = 2;
  options.steps_per_epoch = 3;
  options.people_per_batch = 4;
  options.learning_rate = 0.05;
  options.margin = 100.0;  // far beyond the tiny embedder's distances: every triplet has a loss
  options.checkpoint_dir = dir / "checkpoints";
  const auto before = fixtures::tiny_embedder().attr("conv_weight").toTensor().clone();
  const auto fc_before = fixtures::tiny_embedder().attr("fc_weight").toTensor().clone();
  {
    train::FineTuner tuner(model, train::photo_chips(nullptr), people, validation, options);
    CHECK(tuner.trainable_parameter_count() == 6 * fixtures::embedding_size);
    int calls = 0;
    std::string note;
    const auto reports = tuner.run([&](const siamese::ProgressReport& p) {
      ++calls;
      CHECK(p.total == 6);  // 2 epochs of 3 steps
      CHECK(p.done == static_cast<std::size_t>(calls));
      note = p.note;
    });
    CHECK(calls > 0);
    CHECK_THAT(note, Catch::StartsWith("epoch ") && Catch::Contains(", loss "));
    CHECK(!reports.empty());
    auto& module = tuner.backbone().module();
    CHECK(torch::equal(module.attr("conv_weight").toTensor(), before));  // frozen
    CHECK_FALSE(torch::equal(module.attr("fc_weight").toTensor(), fc_before));  // trained
  }
  CHECK(std::filesystem::exists(dir / "checkpoints" / "last.pt"));
  CHECK(std::filesystem::exists(dir / "checkpoints" / "best.pt"));
  // The checkpoint is an ordinary backbone file.
  siamese::TorchScriptBackbone saved(dir / "checkpoints" / "last.pt", fixtures::cpu_options());
  CHECK(saved.metadata().name == "tiny-embedder");
  // A new tuner on the same folder resumes: with all epochs done, run() trains nothing more.
  train::FineTuner resumed(model, train::photo_chips(nullptr), people, validation, options);
  CHECK(resumed.epochs_done() == 2);
  CHECK(resumed.run().empty());
  options.trainable = {"no_such_parameter"};
  options.checkpoint_dir = dir / "other";
  CHECK_THROWS_AS(train::FineTuner(model, siamese::train::photo_chips(nullptr), people, validation, options), siamese::Error);
}

TEST_CASE("A run stopped and resumed trains exactly as the run that never stopped", "[train][finetune]") {
  fixtures::TempDir dir;
  const auto model = fixtures::save_tiny_backbone(dir);
  const auto people = people_folder(dir, 6, 4);
  const auto validation = train::sample_pairs(people, 8, 2);
  train::FineTuneOptions options;
  options.trainable = {"fc_weight"};
  options.epochs = 3;
  options.patience = 100;  // no early stop: every epoch runs
  options.steps_per_epoch = 2;
  options.people_per_batch = 3;  // which people each step takes is drawn from the generator
  options.learning_rate = 0.05;
  options.margin = 100.0;
  options.mining = train::Mining::random;
  options.seed = 42;

  options.checkpoint_dir = dir / "straight";
  train::FineTuner straight(model, train::photo_chips(nullptr), people, validation, options);
  const auto straight_reports = straight.run();
  REQUIRE(straight_reports.size() == 3);

  options.checkpoint_dir = dir / "interrupted";
  auto first_part = options;
  first_part.epochs = 1;
  train::FineTuner(model, siamese::train::photo_chips(nullptr), people, validation, first_part).run();
  train::FineTuner resumed(model, train::photo_chips(nullptr), people, validation, options);
  REQUIRE(resumed.epochs_done() == 1);
  const auto resumed_reports = resumed.run();
  REQUIRE(resumed_reports.size() == 2);
  for (std::size_t i = 0; i < 2; ++i) {
    INFO("epoch " << resumed_reports[i].epoch);
    CHECK(resumed_reports[i].epoch == straight_reports[i + 1].epoch);
    CHECK(resumed_reports[i].loss == Approx(straight_reports[i + 1].loss).epsilon(1e-6));
  }
  CHECK(torch::allclose(resumed.backbone().module().attr("fc_weight").toTensor(),
                        straight.backbone().module().attr("fc_weight").toTensor(), 1e-6, 1e-7));
}

namespace {

/// The tiny embedder cut in two, as tools/convert_keras_tfjs.py --split writes a network:
/// forward(x) == top(stem(x)), stem [N,3,8,8] -> [N,6,8,8], top -> [N,5].
torch::jit::Module split_student() {
  const auto whole = fixtures::tiny_embedder(5, 11);
  torch::jit::Module stem("Stem"), top("Top"), split("Split");
  stem.register_parameter("conv_weight", whole.attr("conv_weight").toTensor(), false);
  stem.register_parameter("conv_bias", whole.attr("conv_bias").toTensor(), false);
  stem.define(R"JIT(
    def forward(self, x):
        return torch.relu(torch.conv2d(x, self.conv_weight, self.conv_bias, [1, 1], [1, 1]))
  )JIT");
  top.register_parameter("fc_weight", whole.attr("fc_weight").toTensor(), false);
  top.define("def forward(self, x):\n    return torch.mm(x.mean([2, 3]), self.fc_weight.t())\n");
  split.register_module("stem", stem);
  split.register_module("top", top);
  split.define("def forward(self, x):\n    return self.top.forward(self.stem.forward(x))\n");
  return split;
}

}  // namespace

TEST_CASE("Distillation trains the student's top towards the teacher's embeddings and resumes", "[train][distill]") {
  fixtures::TempDir dir;
  const auto teacher_file = fixtures::save_tiny_backbone(dir, "teacher.pt");
  auto metadata = fixtures::tiny_metadata(5);
  metadata.name = "student";
  siamese::save_backbone(split_student(), dir / "student.pt", metadata);
  std::vector<std::filesystem::path> images;
  for (int i = 0; i < 6; ++i) {
    cv::Mat image(8, 8, CV_8UC3, cv::Scalar(30 * i, 200 - 25 * i, 11 * i));
    image.at<cv::Vec3b>(1, 2) = cv::Vec3b(255, 0, 0);  // not mirror-symmetric
    images.push_back(dir / (std::to_string(i) + ".png"));
    REQUIRE(cv::imwrite(images.back().string(), image));
  }
  const std::vector<eval::ImagePair> validation{{images[0], images[1], 1, 0}, {images[0], images[4], 0, 0},
                                                {images[2], images[3], 1, 0}, {images[2], images[5], 0, 0}};
  const siamese::TorchScriptBackbone teacher(teacher_file, fixtures::cpu_options());
  train::DistillOptions options;
  options.epochs = 4;
  options.batch_size = 4;
  options.learning_rate = 0.02;
  options.patience = 10;
  options.checkpoint_dir = dir / "run";

  std::vector<train::EpochReport> reports;
  {
    train::Distiller distiller(dir / "student.pt", teacher, train::photo_chips(nullptr), images, validation, options);
    CHECK(distiller.sample_count() == 12);  // each image and its mirror
    CHECK(distiller.caches_stem());
    CHECK(distiller.trainable_parameter_count() == 5 * 6 + 4 * 5 + 4);  // top, projection weight and bias
    auto& module = distiller.backbone().module();
    const auto stem_before = module.attr("stem").toModule().attr("conv_weight").toTensor().clone();
    const auto top_before = module.attr("top").toModule().attr("fc_weight").toTensor().clone();
    reports = distiller.run();
    REQUIRE(reports.size() == 4);
    CHECK(reports.back().loss < 0.5 * reports.front().loss);
    CHECK(torch::equal(module.attr("stem").toModule().attr("conv_weight").toTensor(), stem_before));
    CHECK_FALSE(torch::equal(module.attr("top").toModule().attr("fc_weight").toTensor(), top_before));
  }
  // best.pt is an ordinary backbone file with the teacher's embedding size.
  const siamese::TorchScriptBackbone best(dir / "run" / "best.pt", fixtures::cpu_options(true));
  CHECK(best.embedding_size() == 4);
  CHECK(best.metadata().name == "student-distilled");
  CHECK_THAT(best.metadata().weights, Catch::Contains("distilled from 'tiny-embedder' on 6 face photos"));
  // Resuming: every epoch is done, nothing more to train.
  train::Distiller resumed(dir / "student.pt", teacher, train::photo_chips(nullptr), images, validation, options);
  CHECK(resumed.epochs_done() == 4);
  CHECK(resumed.run().empty());

  SECTION("a trainable stem is not cached, and trains") {
    options.trainable = {"stem", "projection"};
    options.epochs = 1;
    options.checkpoint_dir = dir / "stem";
    train::Distiller distiller(dir / "student.pt", teacher, train::photo_chips(nullptr), images, validation, options);
    CHECK_FALSE(distiller.caches_stem());
    auto stem = distiller.backbone().module().attr("stem").toModule();
    const auto before = stem.attr("conv_weight").toTensor().clone();
    distiller.run();
    CHECK_FALSE(torch::equal(stem.attr("conv_weight").toTensor(), before));
  }
  SECTION("a student without a stem trains whole, with a projection") {
    options.trainable = {"top"};
    options.epochs = 1;
    options.checkpoint_dir = dir / "whole";
    train::Distiller distiller(teacher_file, teacher, train::photo_chips(nullptr), images, validation, options);
    CHECK_FALSE(distiller.caches_stem());
    CHECK(distiller.run().size() == 1);
  }
  SECTION("the training set is exported for training elsewhere, the student untouched") {
    options.checkpoint_dir = dir / "export";
    train::Distiller distiller(dir / "student.pt", teacher, train::photo_chips(nullptr), images, validation, options);
    const auto folder = dir / "samples";
    train::export_samples(distiller, nullptr, folder);
    for (std::size_t i = 0; i < images.size(); ++i) {  // no pipeline: the chips are the images, lossless
      const auto chip = cv::imread((folder / "chips" / ("00000" + std::to_string(i) + ".png")).string());
      REQUIRE_FALSE(chip.empty());
      CHECK(cv::norm(chip, cv::imread(images[i].string()), cv::NORM_INF) == 0);
    }
    std::ifstream samples(folder / "samples.tsv");
    std::string line;
    std::vector<std::string> lines;
    while (std::getline(samples, line)) lines.push_back(line);
    REQUIRE(lines.size() == 6);
    CHECK(lines[5] == "5\t" + images[5].parent_path().filename().string() + "\t" + images[5].string());
    // [images, chip and mirror, D] float16: image 3's chip and mirror image, the teacher's embeddings of
    // the image and of its flip.
    auto targets = torch::empty({6, 2, 4}, torch::kHalf);
    std::ifstream(folder / "targets.f16", std::ios::binary)
        .read(static_cast<char*>(targets.data_ptr()), static_cast<std::streamsize>(targets.nbytes()));
    REQUIRE(std::filesystem::file_size(folder / "targets.f16") == targets.nbytes());
    const auto image = siamese::read_image(images[3]);
    cv::Mat flipped;
    cv::flip(image, flipped, 1);
    const auto expected = teacher.embed(siamese::to_input_batch({image, flipped}, teacher.input_spec()));
    CHECK(torch::allclose(targets[3].to(torch::kFloat32), expected, 2e-3, 1e-4));
    const auto facts = nlohmann::json::parse(std::ifstream(folder / "samples.json"));
    CHECK(facts["images"] == 6);
    CHECK(facts["mirror"] == true);
    CHECK(facts["embedding_size"] == 4);
    CHECK(facts["side"] == 8);
    CHECK(facts["extension"] == ".png");
    CHECK(facts["teacher"] == "tiny-embedder");
    CHECK_FALSE(std::filesystem::exists(dir / "export" / "last.pt"));
    // Where nothing can be written, a FileError names the place.
    CHECK_THROWS_WITH(train::export_samples(distiller, nullptr, dir / "student.pt" / "samples"),
                      Catch::Contains("cannot create distillation samples folder '") && Catch::Contains("student.pt"));
    std::filesystem::create_directories(dir / "blocked" / "chips" / "000000.png");  // a folder where a chip goes
    CHECK_THROWS_WITH(train::export_samples(distiller, nullptr, dir / "blocked"), Catch::Contains("cannot write the chip '"));
    CHECK_THROWS_AS(train::export_samples(distiller, nullptr, dir / "blocked"), siamese::FileError);
  }
  SECTION("bad options are refused") {
    options.checkpoint_dir = dir / "bad";
    CHECK_THROWS_AS(train::Distiller(dir / "student.pt", teacher, train::photo_chips(nullptr), {}, validation, options), siamese::Error);
    options.batch_size = 0;
    CHECK_THROWS_AS(train::Distiller(dir / "student.pt", teacher, train::photo_chips(nullptr), images, validation, options), siamese::Error);
    options.batch_size = 4;
    options.trainable = {"no_such_parameter"};
    CHECK_THROWS_AS(train::Distiller(dir / "student.pt", teacher, train::photo_chips(nullptr), images, validation, options), siamese::Error);
  }
}

TEST_CASE("Identity folders leave out the people of a pair list", "[train][data]") {
  fixtures::TempDir dir;
  for (const char* person : {"Ann", "Bob", "Cid"}) {
    std::filesystem::create_directories(dir / person);
    for (int i = 1; i <= 2; ++i) {
      REQUIRE(cv::imwrite((dir / person / (std::string(person) + "_000" + std::to_string(i) + ".jpg")).string(),
                          cv::Mat(4, 4, CV_8UC3, cv::Scalar(i, 2, 3))));
    }
  }
  std::istringstream list("1\nAnn\t1\t2\nAnn\t1\tBob\t2\n");
  const auto people = eval::people_in(eval::parse_lfw_pairs(list, "list", dir.path()));
  CHECK(people == std::unordered_set<std::string>{"Ann", "Bob"});
  const auto kept = train::IdentityFolder(dir.path()).excluding(people);
  REQUIRE(kept.people().size() == 1);
  CHECK(kept.people()[0].name == "Cid");
  CHECK(kept.images().size() == 2);
  CHECK_THROWS_AS(train::IdentityFolder(dir.path()).excluding({"Ann", "Bob", "Cid"}), siamese::Error);
}
