#!/usr/bin/env python3
"""Converts a Keras functional model in TensorFlow.js layers format into TorchScript.

The input is what `tensorflowjs_converter --input_format keras model.h5 out/` writes: a
model.json with `modelTopology.model_config` (the Keras functional config) and
`weightsManifest`, beside the binary shards it names (tools/nsfwjs_unpack.mjs writes the same
from nsfwjs's UMD bundles). Quantised weights are dequantised as TF.js does. The graph is walked
by `inbound_nodes` and written out as a generated PyTorch module (one statement per layer), then
scripted, so that input sizes other than the one it was made at still get TensorFlow's padding.

Layers: InputLayer, Conv2D (strides, dilation, 'valid' / 'same' with TensorFlow's asymmetric
'same' padding, with or without bias), BatchNormalization (with or without scale / center, its
epsilon), Activation and activations in layer configs (relu, softmax, sigmoid, linear),
MaxPooling2D, AveragePooling2D ('same' pools exclude padding from the count, as TensorFlow),
GlobalAveragePooling2D, Concatenate (Keras' channel order), Flatten (Keras flattens HWC), Dense,
Dropout (identity). Anything else, or an option these do not support, is an error naming the
layer. Weights are matched by name, never by position (the manifest lists them alphabetically).

Usage:
  convert_keras_tfjs.py MODEL_JSON OUT.pt [--output LAYER] [--global-pool] [--split LAYER]
                        [--random-init] [--size 299]
                        [--name NAME --weights TEXT --license TEXT [--scale S --mean M,M,M --std S,S,S]]
    --output LAYER   end at this layer (default: the model's output)
    --global-pool    end with a global average pool over H and W: [N,C,H,W] -> [N,C]
    --split LAYER    write the module as `top(stem(x))`, the submodule `stem` ending at LAYER:
                     a trainer that freezes the stem computes its output once per image
                     (siamese::train::Distiller); every later layer must read only LAYER or
                     layers after it
    --random-init    fresh random weights (metadata says not pretrained): the control run
    --name NAME      store siamese.json (tools/siamese_metadata.py): a pretrained backbone at
                     --size with this name, weights source and licence; preprocessing
                     (x * scale - mean) / std, default Keras InceptionV3's x / 127.5 - 1
Writes a TorchScript module taking float32 [N,3,H,W] (RGB, preprocessed as the Keras model
expects) and returning the chosen layer's output in PyTorch layout (NCHW for 4-D).
"""
import argparse
import importlib.util
import json
import pathlib
import sys
import tempfile
from typing import List, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import siamese_metadata
from tfjs_weights import read_manifest_weights

_ACTIVATIONS = ("linear", "relu", "softmax", "sigmoid")


class ConversionError(Exception):
    pass


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> Tuple[int, int]:
    """TensorFlow's 'same' padding of one axis: (before, after); the extra pixel goes after."""
    effective = (kernel - 1) * dilation + 1
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


class Activation(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, x):
        if self.kind == "relu":
            return F.relu(x)
        if self.kind == "sigmoid":
            return torch.sigmoid(x)
        if self.kind == "softmax":
            return torch.softmax(x, dim=1)
        return x


class Conv2d(nn.Module):
    def __init__(self, weight, bias, stride, dilation, same: bool, activation: str):
        super().__init__()
        self.weight = nn.Parameter(torch.from_numpy(np.ascontiguousarray(weight.transpose(3, 2, 0, 1))))
        self.bias = nn.Parameter(torch.from_numpy(bias)) if bias is not None else None
        self.stride = stride
        self.dilation = dilation
        self.same = same
        self.activation = Activation(activation)

    def forward(self, x):
        if self.same:
            kh, kw = self.weight.shape[2], self.weight.shape[3]
            top, bottom = same_padding(x.shape[2], kh, self.stride[0], self.dilation[0])
            left, right = same_padding(x.shape[3], kw, self.stride[1], self.dilation[1])
            x = F.pad(x, [left, right, top, bottom])
        return self.activation(F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation))


class BatchNorm(nn.Module):
    """(x - mean) / sqrt(variance + epsilon) * gamma + beta with the stored statistics; in
    training mode (a trainer's .train()) with the batch's, updating the stored ones as Keras does
    (moving = momentum * moving + (1 - momentum) * batch)."""

    def __init__(self, mean, variance, gamma, beta, epsilon: float, momentum: float):
        super().__init__()
        # Statistics are buffers, so that a trainer unfreezing this layer adapts gamma and beta only.
        self.register_buffer("mean", torch.from_numpy(mean))
        self.register_buffer("variance", torch.from_numpy(variance))
        self.gamma = nn.Parameter(torch.from_numpy(gamma))
        self.beta = nn.Parameter(torch.from_numpy(beta))
        self.epsilon = epsilon
        self.momentum = momentum

    def forward(self, x):
        return F.batch_norm(x, self.mean, self.variance, self.gamma, self.beta, self.training, 1.0 - self.momentum,
                            self.epsilon)


class Pool2d(nn.Module):
    def __init__(self, kind: str, size, stride, same: bool):
        super().__init__()
        self.kind = kind
        self.size = size
        self.stride = stride
        self.same = same

    def forward(self, x):
        if not self.same:
            if self.kind == "max":
                return F.max_pool2d(x, self.size, self.stride)
            return F.avg_pool2d(x, self.size, self.stride)
        top, bottom = same_padding(x.shape[2], self.size[0], self.stride[0], 1)
        left, right = same_padding(x.shape[3], self.size[1], self.stride[1], 1)
        pads = [left, right, top, bottom]
        if self.kind == "max":
            return F.max_pool2d(F.pad(x, pads, value=float("-inf")), self.size, self.stride)
        # TensorFlow divides by the cells inside the image only.
        total = F.avg_pool2d(F.pad(x, pads), self.size, self.stride, divisor_override=1)
        count = F.avg_pool2d(F.pad(torch.ones_like(x[:1, :1]), pads), self.size, self.stride, divisor_override=1)
        return total / count


class GlobalAveragePool(nn.Module):
    def forward(self, x):
        return x.mean(dim=[2, 3])


class Concatenate(nn.Module):
    def forward(self, parts: List[torch.Tensor]):
        return torch.cat(parts, dim=1)


class Flatten(nn.Module):
    """Keras flattens in HWC order."""

    def forward(self, x):
        return x.permute(0, 2, 3, 1).flatten(1) if x.dim() == 4 else x.flatten(1)


class Dense(nn.Module):
    def __init__(self, kernel, bias, activation: str):
        super().__init__()
        self.weight = nn.Parameter(torch.from_numpy(np.ascontiguousarray(kernel.T)))
        self.bias = nn.Parameter(torch.from_numpy(bias)) if bias is not None else None
        self.activation = Activation(activation)

    def forward(self, x):
        return self.activation(F.linear(x, self.weight, self.bias))


class Identity(nn.Module):
    def forward(self, x):
        return x


def _pair(value, layer, option):
    if isinstance(value, int):
        return [value, value]
    if not (isinstance(value, list) and len(value) == 2):
        raise ConversionError(f"layer '{layer}': {option} {value!r} is not a pair")
    return [int(v) for v in value]


def _activation(config, layer):
    kind = config.get("activation", "linear")
    if kind not in _ACTIVATIONS:
        raise ConversionError(f"layer '{layer}': activation '{kind}' is not supported ({', '.join(_ACTIVATIONS)})")
    return kind


def _weight(weights, layer, name, shape=None):
    key = f"{layer}/{name}"
    if key not in weights:
        raise ConversionError(f"layer '{layer}': weight '{key}' is not in the weights manifest")
    value = weights[key]
    if shape is not None and list(value.shape) != list(shape):
        raise ConversionError(f"layer '{layer}': weight '{key}' has shape {list(value.shape)}, the topology needs {list(shape)}")
    return value


def build_layer(layer, weights, channels):
    """The module for one Keras layer; `channels` is the input's channel count (or None)."""
    kind, name, config = layer["class_name"], layer["config"]["name"], layer["config"]
    if config.get("data_format", "channels_last") != "channels_last":
        raise ConversionError(f"layer '{name}': data_format {config['data_format']!r} is not supported")
    if kind == "Conv2D":
        size = _pair(config["kernel_size"], name, "kernel_size")
        if config.get("groups", 1) != 1:
            raise ConversionError(f"layer '{name}': grouped convolutions are not supported")
        if config["padding"] not in ("same", "valid"):
            raise ConversionError(f"layer '{name}': padding {config['padding']!r} is not supported")
        kernel = _weight(weights, name, "kernel", size + [channels, config["filters"]] if channels else None)
        bias = _weight(weights, name, "bias", [config["filters"]]) if config.get("use_bias", True) else None
        return Conv2d(kernel, bias, _pair(config["strides"], name, "strides"),
                      _pair(config.get("dilation_rate", 1), name, "dilation_rate"),
                      config["padding"] == "same", _activation(config, name)), config["filters"]
    if kind == "BatchNormalization":
        if config.get("axis", -1) not in (-1, 3, [3], [-1]):
            raise ConversionError(f"layer '{name}': batch normalisation over axis {config['axis']} is not supported")
        mean = _weight(weights, name, "moving_mean", [channels] if channels else None)
        count = mean.shape[0]
        variance = _weight(weights, name, "moving_variance", [count])
        gamma = _weight(weights, name, "gamma", [count]) if config.get("scale", True) else np.ones(count, np.float32)
        beta = _weight(weights, name, "beta", [count]) if config.get("center", True) else np.zeros(count, np.float32)
        return BatchNorm(mean, variance, gamma, beta, float(config.get("epsilon", 1e-3)),
                         float(config.get("momentum", 0.99))), count
    if kind == "Activation":
        return Activation(_activation(config, name)), channels
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        if config["padding"] not in ("same", "valid"):
            raise ConversionError(f"layer '{name}': padding {config['padding']!r} is not supported")
        size = _pair(config["pool_size"], name, "pool_size")
        stride = _pair(config.get("strides") or config["pool_size"], name, "strides")
        return Pool2d("max" if kind == "MaxPooling2D" else "average", size, stride, config["padding"] == "same"), channels
    if kind == "GlobalAveragePooling2D":
        return GlobalAveragePool(), channels
    if kind == "Concatenate":
        if config.get("axis", -1) not in (-1, 3):
            raise ConversionError(f"layer '{name}': concatenation along axis {config['axis']} is not supported")
        return Concatenate(), None
    if kind == "Flatten":
        return Flatten(), None
    if kind == "Dense":
        kernel = _weight(weights, name, "kernel")
        if kernel.ndim != 2 or kernel.shape[1] != config["units"]:
            raise ConversionError(f"layer '{name}': kernel {list(kernel.shape)} does not give {config['units']} units")
        bias = _weight(weights, name, "bias", [config["units"]]) if config.get("use_bias", True) else None
        return Dense(kernel, bias, _activation(config, name)), config["units"]
    if kind == "Dropout":
        return Identity(), channels
    raise ConversionError(f"layer '{name}': layer type {kind} is not supported")


def _graph_class(name, lines, argument, result):
    return (f"class {name}(nn.Module):\n"
            "    def __init__(self, modules: dict):\n        super().__init__()\n"
            "        for name, module in modules.items():\n            setattr(self, name, module)\n\n"
            f"    def forward(self, {argument}: torch.Tensor) -> torch.Tensor:\n" + "\n".join(lines) + f"\n        return {result}\n\n\n")


def convert(model_json, output=None, global_pool=False, split=None):
    """Returns (scripted module, facts) for the Keras model in `model_json`."""
    return build(model_json, output, global_pool, split, script=True)


def build(model_json, output=None, global_pool=False, split=None, script=False):
    """Returns (module, facts) for the Keras model in `model_json`, in eval mode: scripted, or a
    plain nn.Module for training in Python (tools/distill_gpu.py)."""
    model_json = pathlib.Path(model_json)
    document = json.loads(model_json.read_text())
    topology = document.get("modelTopology", document)
    if "model_config" in topology:
        topology = topology["model_config"]
    if topology.get("class_name") not in ("Model", "Functional"):
        raise ConversionError(f"'{model_json}': a Keras functional model is needed, not {topology.get('class_name')!r}")
    config = topology["config"]
    try:
        weights = read_manifest_weights(document["weightsManifest"], model_json.parent)
    except ValueError as error:
        raise ConversionError(str(error)) from error
    layers = {layer["config"]["name"]: layer for layer in config["layers"]}
    if len(config["input_layers"]) != 1:
        raise ConversionError(f"'{model_json}': {len(config['input_layers'])} inputs; one is supported")
    input_name = config["input_layers"][0][0]
    output = output or config["output_layers"][0][0]
    if output not in layers:
        raise ConversionError(f"'{model_json}': no layer named '{output}'")

    # The layers the output needs, in an order where inputs come first.
    order, state = [], {}

    def visit(name):
        if state.get(name) == "done":
            return
        if state.get(name) == "open":
            raise ConversionError(f"layer '{name}' is part of a cycle")
        state[name] = "open"
        layer = layers[name]
        if len(layer["inbound_nodes"]) > 1:
            raise ConversionError(f"layer '{name}' is called {len(layer['inbound_nodes'])} times; shared layers are not supported")
        for inbound in (layer["inbound_nodes"][0] if layer["inbound_nodes"] else []):
            if inbound[0] not in layers:
                raise ConversionError(f"layer '{name}' takes '{inbound[0]}', which is not in the model")
            visit(inbound[0])
        state[name] = "done"
        order.append(name)

    visit(output)
    modules, channels, lines = {}, {input_name: 3}, []
    variable = {input_name: "x"}
    for index, name in enumerate(order):
        layer = layers[name]
        if layer["class_name"] == "InputLayer":
            continue
        sources = [inbound[0] for inbound in layer["inbound_nodes"][0]]
        in_channels = channels.get(sources[0])
        module, out_channels = build_layer(layer, weights, in_channels)
        if layer["class_name"] == "Concatenate":
            out_channels = sum(channels[s] for s in sources) if all(channels.get(s) for s in sources) else None
        attribute = f"layer{index}"
        modules[attribute] = module
        channels[name] = out_channels
        variable[name] = f"t{index}"
        argument = "[" + ", ".join(variable[s] for s in sources) + "]" if layer["class_name"] == "Concatenate" else variable[sources[0]]
        lines.append((name, sources, attribute, f"        {variable[name]} = self.{attribute}({argument})  # {name}"))
    result = variable[output]
    ending = [f"        {result} = {result}.mean(dim=[2, 3]) if {result}.dim() == 4 else {result}"] if global_pool else []
    if split is None:
        source = _graph_class("KerasGraph", [line for *_, line in lines] + ending, "x", result)
    else:
        if split not in variable or split == input_name or split == output:
            raise ConversionError(f"'{model_json}': --split '{split}' is not a layer between the input and '{output}'")
        cut = [name for name, *_ in lines].index(split) + 1
        after = {name for name, *_ in lines[cut:]} | {split}
        for name, sources, *_ in lines[cut:]:
            for source_name in sources:
                if source_name not in after:
                    raise ConversionError(f"layer '{name}' reads '{source_name}', which comes before the split at '{split}'")
        source = (_graph_class("Stem", [line for *_, line in lines[:cut]], "x", variable[split]) +
                  _graph_class("Top", [line for *_, line in lines[cut:]] + ending, variable[split], result) +
                  "class KerasGraph(nn.Module):\n"
                  "    def __init__(self, modules: dict):\n        super().__init__()\n"
                  "        self.stem = Stem(modules['Stem'])\n        self.top = Top(modules['Top'])\n\n"
                  "    def forward(self, x: torch.Tensor) -> torch.Tensor:\n        return self.top(self.stem(x))\n")
        modules = {"Stem": {a: modules[a] for _, _, a, _ in lines[:cut]}, "Top": {a: modules[a] for _, _, a, _ in lines[cut:]}}
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "keras_graph.py"
        path.write_text("import torch\nfrom torch import nn\n\n\n" + source)
        spec = importlib.util.spec_from_file_location("keras_graph", path)
        generated = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(generated)
        graph = generated.KerasGraph(modules).eval()
        # Scripting reads the generated classes' source from this file, so it happens here.
        module = torch.jit.script(graph) if script else graph
    facts = {"layers": len(order) - 1, "parameters": sum(p.numel() for p in graph.parameters()),
             "keras_version": document.get("modelTopology", {}).get("keras_version"), "output": output}
    return module, facts


def randomise(module, seed=0):
    """A fresh initialisation of every weight: He-normal kernels, zero biases, identity batch norm."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, value in list(module.named_parameters()) + list(module.named_buffers()):
            leaf = name.rsplit(".", 1)[-1]
            if value.dim() >= 2:
                fan_in = value[0].numel()
                value.copy_(torch.randn(value.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
            else:
                value.fill_(1.0 if leaf in ("gamma", "variance") else 0.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model_json")
    parser.add_argument("out")
    parser.add_argument("--output", help="end at this layer")
    parser.add_argument("--global-pool", action="store_true", help="end with a global average pool")
    parser.add_argument("--split", help="write the module as top(stem(x)), the stem ending at this layer")
    parser.add_argument("--random-init", action="store_true",
                        help="replace the weights with a fresh random initialisation (a control for training)")
    parser.add_argument("--size", type=int, default=299, help="input side for the check run and the metadata")
    parser.add_argument("--name", help="write siamese.json with this model name")
    parser.add_argument("--weights", default="", help="where the weights come from (metadata)")
    parser.add_argument("--license", default="", help="the weights' licence (metadata)")
    parser.add_argument("--scale", type=float, default=1 / 127.5)
    parser.add_argument("--mean", default="1,1,1")
    parser.add_argument("--std", default="1,1,1")
    args = parser.parse_args()
    try:
        module, facts = convert(args.model_json, args.output, args.global_pool, args.split)
    except ConversionError as error:
        sys.exit(f"convert_keras_tfjs: {error}")
    if args.random_init:
        randomise(module)
    with torch.no_grad():
        shape = tuple(module(torch.zeros(1, 3, args.size, args.size)).shape)
    if args.name:
        meta = siamese_metadata.metadata(
            name=args.name, architecture=f"keras {facts['keras_version']} to '{facts['output']}'",
            height=args.size, width=args.size, scale=args.scale,
            mean=[float(v) for v in args.mean.split(",")], std=[float(v) for v in args.std.split(",")],
            embedding_size=shape[1], pretrained=not args.random_init, weights=args.weights, license=args.license)
        siamese_metadata.save(module, args.out, meta)
    else:
        module.save(args.out)
    print(f"{args.out}: {facts['layers']} layers to '{facts['output']}', {facts['parameters']:,} parameters, "
          f"[1, 3, {args.size}, {args.size}] -> {list(shape)}")


if __name__ == "__main__":
    main()
