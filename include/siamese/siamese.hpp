#pragma once

// The umbrella header: everything public in one include.
#include <siamese/align.hpp>
#include <siamese/backbone.hpp>
#include <siamese/core.hpp>
#include <siamese/decision.hpp>
#include <siamese/detect.hpp>
#include <siamese/device.hpp>
#include <siamese/distance.hpp>
#include <siamese/embed.hpp>
#include <siamese/errors.hpp>
#include <siamese/eval.hpp>
#include <siamese/face.hpp>
#include <siamese/faces.hpp>
#include <siamese/gallery.hpp>
#include <siamese/gallery_store.hpp>
#include <siamese/head.hpp>
#include <siamese/index.hpp>
#include <siamese/image.hpp>
#include <siamese/landmarks.hpp>
#include <siamese/metadata.hpp>
#include <siamese/open_set.hpp>
#include <siamese/preprocess.hpp>
#include <siamese/progress.hpp>
#include <siamese/siamese_net.hpp>
#include <siamese/train.hpp>
#include <siamese/version.hpp>
