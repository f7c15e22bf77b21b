#!/usr/bin/python3
"""Converts three networks of the npm package @vladmandic/face-api to TorchScript:

  faceapi_recognition.pt   face descriptor, [N,3,150,150] -> [N,128]
  faceapi_landmarks68.pt   68 landmarks, [N,3,112,112] -> [N,136] (x0,y0,x1,...; 0..1 of the input)
  faceapi_tiny_detector.pt tiny face detector, [N,3,416,416] -> [N,25,13,13]
                           (5 anchors x (x, y, w, h, score) per grid cell, before sigmoid/exp)

Each architecture follows the package's src/ exactly; the notes below are about the
recognition network, the others are described at their classes.

Recognition:
The network is the dlib face-recognition ResNet (150x150 RGB in, 128-d descriptor out), as
face-api's src/faceRecognitionNet/ runs it: each conv is conv + bias, a per-channel scale
layer (multiply, add) and ReLU; stride-2 convs use 'valid' padding, stride-1 3x3 convs 'same'
(symmetric 1); down-sampling blocks add a 2x2/2 average pool of the input, with zero channels
appended, and zero-pad the conv branch by one row (bottom) and column (right) where sizes differ.

Input normalisation lives in the metadata, not the network: face-api 1.7.15 feeds
`(RGB - [122.782, 117.001, 104.298]) / 255`.

Usage: convert_faceapi.py PACKAGE_DIR OUT_DIR
  PACKAGE_DIR is the unpacked npm package (the folder holding model/ and package.json).
"""
import argparse
import json
import pathlib
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import siamese_metadata  # noqa: E402
import tfjs_weights  # noqa: E402

MEAN_RGB = (122.782, 117.001, 104.298)
INPUT_SIDE = 150


def _filters(weights, name):
    """HWIO (TensorFlow) -> OIHW (PyTorch)."""
    return torch.from_numpy(weights[name].copy()).permute(3, 2, 0, 1).contiguous()


def _vector(weights, name):
    return torch.from_numpy(weights[name].copy())


def tf_same_pad(x, kernel: int, stride: int):
    """TensorFlow's 'same' padding: the odd pixel goes to the bottom and right. PyTorch's
    symmetric padding gives the same output size and different values at stride 2."""
    height, width = x.shape[2], x.shape[3]
    pad_h = max(((height + stride - 1) // stride - 1) * stride + kernel - height, 0)
    pad_w = max(((width + stride - 1) // stride - 1) * stride + kernel - width, 0)
    return F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])


def symmetric_same(kernel: int, stride: int) -> bool:
    """Whether TF's 'same' padding is the same on both sides for every input size, so the
    convolution can pad by itself instead of through a padded copy of its input: at stride 1
    with an odd kernel it is kernel // 2 on each side."""
    return stride == 1 and kernel % 2 == 1


def tf_leaky(x):
    """face-api's leaky ReLU, relu(x - 0.1x) + 0.1x: the same function as a leaky ReLU with
    slope 0.1, which runs as one fused pass instead of four over the largest feature maps
    (the outputs differ by float rounding only; the golden test checks them)."""
    return F.leaky_relu(x, 0.10000000149011612)


class SeparableConv(torch.nn.Module):
    """TensorFlow separableConv2d (depthwise k x k at `stride`, then pointwise 1x1) + bias.
    `tf_same` selects TF 'same' padding (by the convolution where it is symmetric, else
    through a padded copy); otherwise the input is padded by 1 on every side, as tinyYolov2's
    depthwiseSeparableConv does, by the convolution itself."""

    def __init__(self, weights, prefix, stride: int, tf_same: bool):
        super().__init__()
        depthwise = torch.from_numpy(weights[f"{prefix}/depthwise_filter"].copy())
        pointwise = torch.from_numpy(weights[f"{prefix}/pointwise_filter"].copy())
        channels = depthwise.shape[2]
        self.kernel = depthwise.shape[0]
        self.stride = stride
        self.explicit_pad = tf_same and not symmetric_same(self.kernel, stride)
        padding = 0 if self.explicit_pad else (self.kernel // 2 if tf_same else 1)
        self.depthwise = torch.nn.Conv2d(channels, channels, self.kernel, stride,
                                         padding=padding, groups=channels, bias=False)
        self.pointwise = torch.nn.Conv2d(channels, pointwise.shape[3], 1)
        with torch.no_grad():
            self.depthwise.weight.copy_(depthwise.permute(2, 3, 0, 1))
            self.pointwise.weight.copy_(pointwise.permute(3, 2, 0, 1))
            self.pointwise.bias.copy_(_vector(weights, f"{prefix}/bias"))

    def forward(self, x):
        if self.explicit_pad:
            x = tf_same_pad(x, self.kernel, self.stride)
        return self.pointwise(self.depthwise(x))


class PlainConv(torch.nn.Module):
    """TensorFlow conv2d + bias, 'same' (TF rule, padded as SeparableConv pads) or 'valid'."""

    def __init__(self, weights, prefix, stride: int, tf_same: bool):
        super().__init__()
        filters = _filters(weights, f"{prefix}/filters")
        self.kernel = filters.shape[2]
        self.stride = stride
        self.explicit_pad = tf_same and not symmetric_same(self.kernel, stride)
        padding = self.kernel // 2 if tf_same and not self.explicit_pad else 0
        self.conv = torch.nn.Conv2d(filters.shape[1], filters.shape[0], self.kernel, stride, padding=padding)
        with torch.no_grad():
            self.conv.weight.copy_(filters)
            self.conv.bias.copy_(_vector(weights, f"{prefix}/bias"))

    def forward(self, x):
        if self.explicit_pad:
            x = tf_same_pad(x, self.kernel, self.stride)
        return self.conv(x)


class DenseBlock4(torch.nn.Module):
    """faceFeatureExtractor/denseBlock.ts denseBlock4 with isScaleDown: four convs whose
    outputs are summed densely, the first at stride 2."""

    def __init__(self, weights, prefix, first: bool):
        super().__init__()
        if first:
            self.conv0 = PlainConv(weights, f"{prefix}/conv0", 2, True)
        else:
            self.conv0 = SeparableConv(weights, f"{prefix}/conv0", 2, True)
        self.conv1 = SeparableConv(weights, f"{prefix}/conv1", 1, True)
        self.conv2 = SeparableConv(weights, f"{prefix}/conv2", 1, True)
        self.conv3 = SeparableConv(weights, f"{prefix}/conv3", 1, True)

    def forward(self, x):
        # face-api sums out1 + (out2 + (out3 + out4)); running sums added in place into each
        # new output read every feature map once (3 additions instead of 6, none allocating),
        # at the price of float rounding only.
        out1 = F.relu(self.conv0(x))
        sum2 = self.conv1(out1).add_(out1)
        sum3 = self.conv2(F.relu(sum2)).add_(sum2)
        sum4 = self.conv3(F.relu(sum3)).add_(sum3)
        return F.relu_(sum4)


class FaceLandmark68Net(torch.nn.Module):
    """faceLandmarkNet/FaceLandmark68Net.ts: four dense blocks (112 -> 7), 7x7/2 average pool,
    fc 256 -> 136. Output: 68 (x, y) pairs relative to the 112x112 input."""

    def __init__(self, weights):
        super().__init__()
        self.blocks = torch.nn.Sequential(*[DenseBlock4(weights, f"dense{i}", i == 0) for i in range(4)])
        fc = torch.from_numpy(weights["fc/weights"].copy())
        self.fc = torch.nn.Linear(fc.shape[0], fc.shape[1])
        with torch.no_grad():
            self.fc.weight.copy_(fc.t())
            self.fc.bias.copy_(_vector(weights, "fc/bias"))

    def forward(self, x):
        y = F.avg_pool2d(self.blocks(x), 7, 2)
        return self.fc(y.flatten(1))


class TinyFaceDetectorNet(torch.nn.Module):
    """tinyYolov2/TinyYolov2Base.ts runMobilenet with the tiny face detector's config: a 3x3
    'valid' conv, five separable convs with 2x2 max pools ('same', padded with -inf), a 1x1
    conv to 5 anchors x 5 values. Leaky ReLU 0.1 after every conv but the last.

    Written for speed, with face-api's outputs (the golden test checks them):
    - TF's 'same' 2x2/2 pool pads the odd row and column with -inf at the bottom and right:
      that is PyTorch's ceil_mode, which stays inside oneDNN after optimize_for_inference
      (an explicit -inf pad sent each pool to max_pool2d_with_indices, 4x slower overall);
    - its 2x2/1 pool pads one -inf row and column at the bottom and right: a pool padded on
      every side, less its first row and column;
    - max pooling commutes with the increasing leaky ReLU, so the ReLU runs after the pool,
      on a quarter of the values."""

    def __init__(self, weights):
        super().__init__()
        self.conv0 = PlainConv(weights, "conv0", 1, False)
        self.convs = torch.nn.ModuleList([SeparableConv(weights, f"conv{i}", 1, False) for i in range(1, 6)])
        self.conv8 = PlainConv(weights, "conv8", 1, False)

    def forward(self, x):
        y = self.conv0(x)
        for conv in self.convs:
            y = conv(tf_leaky(F.max_pool2d(y, 2, 2, ceil_mode=True)))
        y = tf_leaky(F.max_pool2d(y, 2, 1, padding=1)[:, :, 1:, 1:])
        return self.conv8(y)


class ConvScale(torch.nn.Module):
    """conv + bias, per-channel scale layer, optional ReLU."""

    def __init__(self, weights, prefix, stride: int, relu: bool):
        super().__init__()
        filters = _filters(weights, f"{prefix}/conv/filters")
        channels, _, kernel, _ = filters.shape
        # Stride 2 is 'valid' in face-api; stride 1 is 'same', symmetric for odd kernels.
        self.conv = torch.nn.Conv2d(filters.shape[1], channels, kernel, stride,
                                    padding=0 if stride == 2 else kernel // 2)
        with torch.no_grad():
            self.conv.weight.copy_(filters)
            self.conv.bias.copy_(_vector(weights, f"{prefix}/conv/bias"))
        self.scale = torch.nn.Parameter(_vector(weights, f"{prefix}/scale/weights").view(1, channels, 1, 1))
        self.shift = torch.nn.Parameter(_vector(weights, f"{prefix}/scale/biases").view(1, channels, 1, 1))
        self.relu = relu

    def forward(self, x):
        y = self.conv(x) * self.scale + self.shift
        return F.relu(y) if self.relu else y


class Residual(torch.nn.Module):
    def __init__(self, weights, prefix):
        super().__init__()
        self.conv1 = ConvScale(weights, f"{prefix}/conv1", 1, True)
        self.conv2 = ConvScale(weights, f"{prefix}/conv2", 1, False)

    def forward(self, x):
        return F.relu(self.conv2(self.conv1(x)) + x)


class ResidualDown(torch.nn.Module):
    def __init__(self, weights, prefix):
        super().__init__()
        self.conv1 = ConvScale(weights, f"{prefix}/conv1", 2, True)
        self.conv2 = ConvScale(weights, f"{prefix}/conv2", 1, False)

    def forward(self, x):
        out = self.conv2(self.conv1(x))
        pooled = F.avg_pool2d(x, 2, 2)
        if pooled.shape[2] != out.shape[2] or pooled.shape[3] != out.shape[3]:
            out = F.pad(out, [0, 1, 0, 1])  # one column right, one row bottom
        if pooled.shape[1] != out.shape[1]:
            pooled = torch.cat([pooled, torch.zeros_like(pooled)], 1)
        return F.relu(pooled + out)


class FaceRecognitionNet(torch.nn.Module):
    """[N,3,150,150] normalised RGB -> [N,128] face descriptor."""

    def __init__(self, weights):
        super().__init__()
        self.stem = ConvScale(weights, "conv32_down", 2, True)
        names = ["conv32_1", "conv32_2", "conv32_3", "conv64_down", "conv64_1", "conv64_2",
                 "conv64_3", "conv128_down", "conv128_1", "conv128_2", "conv256_down",
                 "conv256_1", "conv256_2", "conv256_down_out"]
        self.blocks = torch.nn.Sequential(*[
            ResidualDown(weights, n) if n.endswith(("_down", "_down_out")) else Residual(weights, n)
            for n in names])
        self.fc = torch.nn.Linear(256, 128, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.from_numpy(weights["fc"].copy()).t())

    def forward(self, x):
        y = F.max_pool2d(self.stem(x), 3, 2)
        y = self.blocks(y)
        return self.fc(y.mean([2, 3]))


def _save(net, side, out_path, **fields):
    net = net.eval()
    example = torch.zeros(1, 3, side, side)
    meta = siamese_metadata.metadata(height=side, width=side, scale=1.0, std=(255.0, 255.0, 255.0),
                                     pretrained=True,
                                     multiply_adds=siamese_metadata.count_multiply_adds(net, example),
                                     **fields)
    siamese_metadata.save(torch.jit.script(net), out_path, meta)
    print(f"wrote {out_path}: {meta['name']}, {meta['multiply_adds'] / 1e9:.3f} GMAC per image")


def convert(package_dir, out_dir):
    package_dir = pathlib.Path(package_dir)
    out_dir = pathlib.Path(out_dir)
    version = json.loads((package_dir / "package.json").read_text())["version"]
    source = f"@vladmandic/face-api@{version} model/"
    license = "MIT (face-api package)"

    def weights(model):
        return tfjs_weights.read_weights(package_dir / "model" / f"{model}-weights_manifest.json")

    _save(FaceRecognitionNet(weights("face_recognition_model")), INPUT_SIDE,
          out_dir / "faceapi_recognition.pt",
          name="faceapi-dlib-resnet-128", architecture="dlib_resnet29",
          mean=MEAN_RGB, embedding_size=128,
          weights=source + "face_recognition_model (uint8-quantized port of Davis King's "
                           "dlib_face_recognition_resnet_model_v1)",
          license=license + "; weights public domain (dlib model by Davis King)",
          distance_threshold=0.6, alignment="dlib-150")
    _save(FaceLandmark68Net(weights("face_landmark_68_model")), 112,
          out_dir / "faceapi_landmarks68.pt",
          name="faceapi-landmarks68", architecture="faceapi_landmark68",
          mean=MEAN_RGB, embedding_size=136,
          weights=source + "face_landmark_68_model", license=license)
    _save(TinyFaceDetectorNet(weights("tiny_face_detector_model")), 416,
          out_dir / "faceapi_tiny_detector.pt",
          name="faceapi-tiny-face-detector", architecture="faceapi_tiny_yolov2",
          mean=(117.001, 114.697, 97.404), embedding_size=25,
          weights=source + "tiny_face_detector_model", license=license)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("package_dir")
    parser.add_argument("out_dir")
    args = parser.parse_args()
    convert(args.package_dir, args.out_dir)


if __name__ == "__main__":
    main()
