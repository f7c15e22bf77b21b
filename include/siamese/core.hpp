#pragma once

// The core's umbrella header (target siamese::core: LibTorch and nlohmann_json, no OpenCV or
// SQLite): backbones, SiameseNet, heads, distances, indexes, evaluation and training on tensors.
// siamese.hpp includes everything, photos and galleries too.
#include <siamese/backbone.hpp>
#include <siamese/decision.hpp>
#include <siamese/device.hpp>
#include <siamese/distance.hpp>
#include <siamese/errors.hpp>
#include <siamese/eval.hpp>
#include <siamese/head.hpp>
#include <siamese/index.hpp>
#include <siamese/metadata.hpp>
#include <siamese/open_set.hpp>
#include <siamese/progress.hpp>
#include <siamese/siamese_net.hpp>
#include <siamese/train/chips.hpp>
#include <siamese/train/data.hpp>
#include <siamese/train/distill.hpp>
#include <siamese/train/finetune.hpp>
#include <siamese/train/head_training.hpp>
#include <siamese/train/losses.hpp>
#include <siamese/version.hpp>
