#!/usr/bin/python3
"""Exports torchvision's InceptionV3 as a TorchScript embedding backbone with siamese metadata.

The classifier is removed (Keras' include_top=False): the output is the 2048-d globally
average-pooled feature vector. aux_logits is off. transform_input is off: the library feeds
ImageNet-normalised RGB (mean/std in the metadata), which is what transform_input=False
expects; torchvision sets it True only to adapt Google's original weights to that input.

Weights, in order: --weights PATH (a torchvision state_dict .pth), then torchvision's own
cache (~/.cache/torch/hub/checkpoints/inception_v3_google-*.pth). Nothing is downloaded. With
none found the script stops, unless --random-init is given: then the metadata says
"pretrained": false and the C++ library warns loudly when the backbone is used to verify.

Usage:
  export_inception_v3.py OUT.pt [--size 299|224|N] [--weights PATH | --random-init]
                         [--reference REF.pt]
  --reference writes a random input and this model's output for it, for the C++ equivalence test.
"""
import argparse
import pathlib
import sys

import torch
import torchvision

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import siamese_metadata  # noqa: E402

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SMALLEST_INPUT = 75  # the smallest side InceptionV3's stride and kernel sizes accept


class InceptionEmbedding(torch.nn.Module):
    """[N,3,S,S] -> [N,2048]. Scripted Inception3.forward returns an (output, aux) tuple, so
    the wrapper calls the feature path and returns the tensor alone."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        features, _ = self.net._forward(x)
        return features


def find_cached_weights():
    checkpoints = pathlib.Path(torch.hub.get_dir()) / "checkpoints"
    found = sorted(checkpoints.glob("inception_v3_google-*.pth"))
    return found[0] if found else None


def build(weights_path, random_init):
    model = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=True,
                                            transform_input=False)
    if weights_path is not None:
        state = torch.load(weights_path, map_location="cpu")
        state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise SystemExit(f"{weights_path}: not InceptionV3 weights (missing {missing[:3]}, unexpected {unexpected[:3]})")
        source = f"ImageNet-1k (torchvision), from {weights_path}"
    elif random_init:
        source = "RANDOM initialisation (no pretrained weights available); for testing only"
    else:
        raise SystemExit(
            "export_inception_v3: no InceptionV3 weights found. Give --weights PATH to a torchvision "
            "inception_v3_google-*.pth state_dict, place it in "
            f"{pathlib.Path(torch.hub.get_dir()) / 'checkpoints'}, or pass --random-init to export "
            "random weights (marked pretrained: false).")
    model.fc = torch.nn.Identity()
    model.dropout = torch.nn.Identity()
    if weights_path is None:
        calibrate_batch_norm(model)
    return model.eval(), source


def calibrate_batch_norm(model, size=96, batches=4):
    """Sets BatchNorm running statistics from random inputs. With the default statistics
    (mean 0, variance 1) a randomly initialised InceptionV3 amplifies activations to ~1e7;
    calibrated, its features stay O(1), as a trained network's do."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.randn(8, 3, size, size))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--size", type=int, default=299)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--weights", type=pathlib.Path)
    group.add_argument("--random-init", action="store_true")
    parser.add_argument("--reference", type=pathlib.Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.size < SMALLEST_INPUT:
        raise SystemExit(f"export_inception_v3: --size must be at least {SMALLEST_INPUT}, got {args.size}")

    torch.manual_seed(args.seed)
    weights_path = args.weights or (None if args.random_init else find_cached_weights())
    if args.weights is not None and not args.weights.is_file():
        raise SystemExit(f"export_inception_v3: weights file '{args.weights}' does not exist")
    model, source = build(weights_path, args.random_init)
    pretrained = weights_path is not None

    example = torch.randn(2, 3, args.size, args.size)
    meta = siamese_metadata.metadata(
        name=f"inception_v3-{args.size}" + ("" if pretrained else "-random"),
        architecture="inception_v3",
        height=args.size, width=args.size,
        scale=1.0 / 255.0, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        embedding_size=2048,
        pretrained=pretrained,
        weights=source,
        license="BSD-3-Clause (torchvision code)" + ("; ImageNet weights: see torchvision" if pretrained else ""),
        multiply_adds=siamese_metadata.count_multiply_adds(model, example[:1]),
    )
    with torch.no_grad():
        scripted = torch.jit.script(InceptionEmbedding(model))
        siamese_metadata.save(scripted, args.out, meta)
        if args.reference:
            siamese_metadata.save_reference(args.reference, example, model(example))
    state = "pretrained" if pretrained else "RANDOM weights (pretrained: false)"
    print(f"wrote {args.out}: InceptionV3 at {args.size}x{args.size}, {state}, "
          f"{meta['multiply_adds'] / 1e9:.2f} GMAC per image")


if __name__ == "__main__":
    main()
