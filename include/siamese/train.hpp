#pragma once

// Training: losses, identity folders and samplers, head training, fine-tuning, distillation.
#include <siamese/train/chips.hpp>
#include <siamese/train/data.hpp>
#include <siamese/train/distill.hpp>
#include <siamese/train/finetune.hpp>
#include <siamese/train/head_training.hpp>
#include <siamese/train/losses.hpp>
#include <siamese/train/photo_chips.hpp>
