#!/usr/bin/python3
"""Converts the face recognition network of the npm package @vladmandic/face-api to TorchScript.

The network is the dlib face-recognition ResNet (150x150 RGB in, 128-d descriptor out), as
face-api's src/faceRecognitionNet/ runs it: each conv is conv + bias, a per-channel scale
layer (multiply, add) and ReLU; stride-2 convs use 'valid' padding, stride-1 3x3 convs 'same'
(symmetric 1); down-sampling blocks add a 2x2/2 average pool of the input, with zero channels
appended, and zero-pad the conv branch by one row (bottom) and column (right) where sizes differ.

Input normalisation lives in the metadata, not the network: face-api 1.7.15 feeds
`(RGB - [122.782, 117.001, 104.298]) / 255`.

Usage: convert_faceapi.py PACKAGE_DIR OUT.pt
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


def convert(package_dir, out_path):
    package_dir = pathlib.Path(package_dir)
    version = json.loads((package_dir / "package.json").read_text())["version"]
    weights = tfjs_weights.read_weights(package_dir / "model" / "face_recognition_model-weights_manifest.json")
    net = FaceRecognitionNet(weights).eval()
    example = torch.zeros(1, 3, INPUT_SIDE, INPUT_SIDE)
    meta = siamese_metadata.metadata(
        name="faceapi-dlib-resnet-128",
        architecture="dlib_resnet29",
        height=INPUT_SIDE, width=INPUT_SIDE,
        scale=1.0, mean=MEAN_RGB, std=(255.0, 255.0, 255.0),
        embedding_size=128,
        pretrained=True,
        weights=f"@vladmandic/face-api@{version} model/face_recognition_model "
                "(uint8-quantized port of Davis King's dlib_face_recognition_resnet_model_v1)",
        license="MIT (face-api package); weights public domain (dlib model by Davis King)",
        distance_threshold=0.6,
        alignment="dlib-150",
        multiply_adds=siamese_metadata.count_multiply_adds(net, example),
    )
    scripted = torch.jit.script(net)
    siamese_metadata.save(scripted, out_path, meta)
    return meta


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("package_dir")
    parser.add_argument("out")
    args = parser.parse_args()
    meta = convert(args.package_dir, args.out)
    print(f"wrote {args.out}: {meta['name']}, {meta['multiply_adds'] / 1e9:.2f} GMAC per image")


if __name__ == "__main__":
    main()
