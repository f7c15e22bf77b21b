"""Writes TorchScript backbones with the siamese.json metadata that the C++ library reads.

The keys mirror include/siamese/metadata.hpp (format_version 1).
"""
import json

import torch

METADATA_FILE = "siamese.json"


def metadata(name, architecture, height, width, scale, mean, std, embedding_size, pretrained,
             weights, license, channel_order="RGB", distance_threshold=None, alignment=None,
             multiply_adds=None):
    m = {
        "format_version": 1,
        "name": name,
        "architecture": architecture,
        "input": {"height": height, "width": width, "channel_order": channel_order,
                  "scale": scale, "mean": list(mean), "std": list(std)},
        "embedding_size": embedding_size,
        "pretrained": pretrained,
        "weights": weights,
        "license": license,
    }
    if distance_threshold is not None:
        m["distance_threshold"] = distance_threshold
    if alignment:
        m["alignment"] = alignment
    if multiply_adds is not None:
        m["multiply_adds"] = multiply_adds
    return m


def count_multiply_adds(model, example):
    """Multiply-adds of one forward pass, from hooks on every Conv2d and Linear."""
    total = 0

    def conv_hook(module, inputs, output):
        nonlocal total
        kernel = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        total += output.numel() * kernel

    def linear_hook(module, inputs, output):
        nonlocal total
        total += output.numel() * module.in_features

    handles = []
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, torch.nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    with torch.no_grad():
        model(example)
    for h in handles:
        h.remove()
    return total // example.shape[0]


def save(scripted, path, meta):
    torch.jit.save(scripted, str(path), _extra_files={METADATA_FILE: json.dumps(meta, indent=2)})


def save_reference(path, inputs, outputs):
    """Saves an input/output pair as a TorchScript module with two attributes, which C++ reads
    with torch::jit::load(path).attr("input")."""

    class Reference(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.input = inputs
            self.output = outputs

        def forward(self):
            return self.output

    torch.jit.save(torch.jit.script(Reference()), str(path))
