#pragma once

#include <siamese/errors.hpp>
#include <siamese/metadata.hpp>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include <string>
#include <vector>

namespace siamese {

/// Turns an 8-bit RGB image into the backbone's input: resized to spec.height x spec.width,
/// channels in spec.channel_order, `(pixel * scale - mean[c]) / std[c]` with mean and std in
/// that same channel order, HWC -> CHW.
/// Requires: `rgb` non-empty CV_8UC3 in RGB order.
/// Ensures: a contiguous float32 tensor [1,3,H,W] on the CPU that owns its memory.
inline torch::Tensor to_input_tensor(const cv::Mat& rgb, const InputSpec& spec) {
  if (rgb.empty() || rgb.type() != CV_8UC3) {
    throw ImageError("to_input_tensor needs a non-empty 8-bit 3-channel RGB image, got type " +
                     std::to_string(rgb.type()) + " size " + std::to_string(rgb.cols) + "x" +
                     std::to_string(rgb.rows));
  }
  cv::Mat resized;
  const bool shrinking = rgb.cols > spec.width || rgb.rows > spec.height;
  cv::resize(rgb, resized, cv::Size(spec.width, spec.height), 0, 0,
             shrinking ? cv::INTER_AREA : cv::INTER_LINEAR);
  if (spec.channel_order == ChannelOrder::bgr) cv::cvtColor(resized, resized, cv::COLOR_RGB2BGR);

  // from_blob only views OpenCV's memory; the float conversion below makes the owned copy.
  const auto view = torch::from_blob(resized.data, {resized.rows, resized.cols, 3},
                                     {static_cast<std::int64_t>(resized.step[0]), 3, 1},
                                     torch::kUInt8);
  auto chw = view.permute({2, 0, 1}).to(torch::kFloat32);
  const auto mean = torch::tensor(std::vector<double>(spec.mean.begin(), spec.mean.end()),
                                  torch::kFloat32).view({3, 1, 1});
  const auto stddev = torch::tensor(std::vector<double>(spec.std.begin(), spec.std.end()),
                                    torch::kFloat32).view({3, 1, 1});
  return ((chw * spec.scale - mean) / stddev).contiguous().unsqueeze(0);
}

/// Stacks several images into one batch [N,3,H,W]. Requires: at least one image.
inline torch::Tensor to_input_batch(const std::vector<cv::Mat>& images, const InputSpec& spec) {
  if (images.empty()) throw ImageError("to_input_batch needs at least one image");
  std::vector<torch::Tensor> tensors;
  tensors.reserve(images.size());
  for (const auto& image : images) tensors.push_back(to_input_tensor(image, spec));
  return torch::cat(tensors);
}

}  // namespace siamese
