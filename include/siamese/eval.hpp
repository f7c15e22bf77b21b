#pragma once

// Evaluation: pair lists, verification metrics, calibration.
#include <siamese/eval/calibration.hpp>
#include <siamese/eval/metrics.hpp>
#include <siamese/eval/open_set.hpp>
#include <siamese/eval/pairs.hpp>
