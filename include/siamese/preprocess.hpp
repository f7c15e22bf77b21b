#pragma once

#include <siamese/errors.hpp>
#include <siamese/metadata.hpp>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace siamese {

namespace detail {

inline void check_input_image(const cv::Mat& rgb) {
  if (rgb.empty() || rgb.type() != CV_8UC3) {
    throw ImageError("to_input_tensor needs a non-empty 8-bit 3-channel RGB image, got type " +
                     std::to_string(rgb.type()) + " size " + std::to_string(rgb.cols) + "x" +
                     std::to_string(rgb.rows));
  }
}

/// `image` at `size`: area averaging when it shrinks, bilinear otherwise; `image` itself when it
/// already has that size.
inline cv::Mat resized_for_input(const cv::Mat& image, cv::Size size) {
  if (image.size() == size) return image;
  cv::Mat resized;
  const bool shrinking = image.cols > size.width || image.rows > size.height;
  cv::resize(image, resized, size, 0, 0, shrinking ? cv::INTER_AREA : cv::INTER_LINEAR);
  return resized;
}

}  // namespace detail

/// Stacks several images into one batch: each resized to spec.height x spec.width, channels
/// in spec.channel_order, `(pixel * scale - mean[c]) / std[c]` with mean and std in that same
/// channel order, HWC -> CHW.
/// Requires: at least one image, each non-empty CV_8UC3 in RGB order.
/// Ensures: a contiguous float32 tensor [N,3,H,W] on the CPU that owns its memory.
inline torch::Tensor to_input_batch(const std::vector<cv::Mat>& images, const InputSpec& spec) {
  if (images.empty()) throw ImageError("to_input_batch needs at least one image");
  for (const auto& image : images) detail::check_input_image(image);
  const int height = spec.height, width = spec.width;
  auto batch = torch::empty({static_cast<std::int64_t>(images.size()), 3, height, width}, torch::kFloat32);
  // One multiply-add per value into memory the tensor owns: a chain of tensor operations per
  // image costs more than the arithmetic at the small sizes of detector and landmark inputs.
  std::array<float, 3> gain{}, offset{};
  for (int c = 0; c < 3; ++c) {
    gain[c] = static_cast<float>(spec.scale / spec.std[c]);
    offset[c] = static_cast<float>(-spec.mean[c] / spec.std[c]);
  }
  float* out = batch.data_ptr<float>();
  const std::size_t plane = static_cast<std::size_t>(height) * width;
  for (const auto& image : images) {
    const cv::Mat source = detail::resized_for_input(image, cv::Size(width, height));
    for (int c = 0; c < 3; ++c) {
      const int channel = spec.channel_order == ChannelOrder::rgb ? c : 2 - c;
      float* target = out + c * plane;
      for (int y = 0; y < height; ++y) {
        const std::uint8_t* row = source.ptr<std::uint8_t>(y) + channel;
        for (int x = 0; x < width; ++x) target[y * width + x] = row[3 * x] * gain[c] + offset[c];
      }
    }
    out += 3 * plane;
  }
  return batch;
}

/// One image as a batch of one: to_input_batch({rgb}, spec), float32 [1,3,H,W].
inline torch::Tensor to_input_tensor(const cv::Mat& rgb, const InputSpec& spec) {
  return to_input_batch({rgb}, spec);
}

}  // namespace siamese
