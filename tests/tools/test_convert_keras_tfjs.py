#!/usr/bin/env python3
"""Checks tools/convert_keras_tfjs.py on a tiny Keras model in TF.js layers format that it
writes itself: conversion, --split, --random-init, and every refusal naming the layer or file.
Run by CTest with Debian's python3 (python3-torch)."""
import json
import pathlib
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch

TOOLS = pathlib.Path(__file__).resolve().parents[2] / "tools"
sys.path.insert(0, str(TOOLS))
import convert_keras_tfjs as converter  # noqa: E402


def layer(kind, name, sources, **config):
    inbound = [[[s, 0, 0, {}] for s in sources]] if sources else []
    return {"class_name": kind, "config": {"name": name, **config}, "inbound_nodes": inbound}


def tiny_model():
    """Layers and float32 weights of a small graph with a branch and a concatenation."""
    layers = [
        layer("InputLayer", "input_1", [], batch_input_shape=[None, None, None, 3]),
        layer("Conv2D", "conv", ["input_1"], filters=4, kernel_size=[3, 3], strides=[2, 2], padding="same",
              use_bias=False, activation="linear"),
        layer("BatchNormalization", "bn", ["conv"], axis=3, epsilon=0.001, scale=False),
        layer("Activation", "act", ["bn"], activation="relu"),
        layer("MaxPooling2D", "pool", ["act"], pool_size=[3, 3], strides=[1, 1], padding="same"),
        layer("Conv2D", "conv_b", ["pool"], filters=2, kernel_size=[1, 1], strides=[1, 1], padding="valid",
              activation="relu"),
        layer("AveragePooling2D", "avg", ["act"], pool_size=[3, 3], strides=[1, 1], padding="same"),
        layer("Concatenate", "cat", ["conv_b", "avg"], axis=-1),
        layer("GlobalAveragePooling2D", "gap", ["cat"]),
        layer("Dense", "dense", ["gap"], units=3, activation="softmax"),
    ]
    rng = np.random.default_rng(3)
    weights = {
        "conv/kernel": rng.normal(size=[3, 3, 3, 4]), "bn/moving_mean": rng.normal(size=[4]),
        "bn/moving_variance": rng.uniform(0.5, 2, size=[4]), "bn/beta": rng.normal(size=[4]),
        "conv_b/kernel": rng.normal(size=[1, 1, 4, 2]), "conv_b/bias": rng.normal(size=[2]),
        "dense/kernel": rng.normal(size=[6, 3]), "dense/bias": rng.normal(size=[3]),
    }
    return layers, {k: v.astype(np.float32) for k, v in weights.items()}


def write_model(folder, layers, weights, shapes=None, shard_bytes=None):
    """model.json and group1-shard1of1.bin in `folder`; `shapes` overrides manifest shapes."""
    folder = pathlib.Path(folder)
    names = sorted(weights)  # TF.js lists tensors alphabetically
    manifest = [{"paths": ["group1-shard1of1.bin"],
                 "weights": [{"name": n, "shape": (shapes or {}).get(n, list(weights[n].shape)), "dtype": "float32"}
                             for n in names]}]
    data = b"".join(weights[n].tobytes() for n in names)
    (folder / "group1-shard1of1.bin").write_bytes(data if shard_bytes is None else shard_bytes(data))
    topology = {"keras_version": "2.2.4", "model_config": {"class_name": "Model", "config": {
        "name": "tiny", "layers": layers, "input_layers": [["input_1", 0, 0]], "output_layers": [["dense", 0, 0]]}}}
    path = folder / "model.json"
    path.write_text(json.dumps({"modelTopology": topology, "weightsManifest": manifest}))
    return path


class ConvertKerasTfjs(unittest.TestCase):
    def setUp(self):
        self.folder = tempfile.TemporaryDirectory()
        self.dir = pathlib.Path(self.folder.name)
        self.layers, self.weights = tiny_model()
        self.x = torch.randn(2, 3, 9, 8)

    def tearDown(self):
        self.folder.cleanup()

    def refusal(self, path, message, **options):
        with self.assertRaises(converter.ConversionError) as caught:
            converter.convert(path, **options)
        self.assertIn(message, str(caught.exception))

    def test_tensorflow_same_padding_is_asymmetric_at_stride_2(self):
        self.assertEqual(converter.same_padding(9, 3, 2, 1), (1, 1))
        self.assertEqual(converter.same_padding(8, 3, 2, 1), (0, 1))

    def test_converts_and_split_gives_the_same_outputs(self):
        path = write_model(self.dir, self.layers, self.weights)
        whole, facts = converter.convert(path)
        self.assertEqual(facts["layers"], 9)
        with torch.no_grad():
            y = whole(self.x)
            self.assertEqual(tuple(y.shape), (2, 3))
            torch.testing.assert_close(y.sum(1), torch.ones(2))
            split, _ = converter.convert(path, split="act")
            torch.testing.assert_close(split(self.x), y, rtol=0, atol=0)
            torch.testing.assert_close(split.top(split.stem(self.x)), y, rtol=0, atol=0)
        # Batch-norm statistics are buffers: training the layer moves gamma and beta only.
        self.assertNotIn("stem.layer2.mean", dict(split.named_parameters()))
        self.assertIn("stem.layer2.mean", dict(split.named_buffers()))

    def test_refuses_a_split_that_a_later_layer_reads_across(self):
        path = write_model(self.dir, self.layers, self.weights)
        self.refusal(path, "layer 'avg' reads 'act', which comes before the split at 'pool'", split="pool")
        self.refusal(path, "--split 'nowhere' is not a layer", split="nowhere")

    def test_random_init_replaces_every_weight(self):
        module, _ = converter.convert(write_model(self.dir, self.layers, self.weights))
        before = {k: v.clone() for k, v in module.state_dict().items()}
        converter.randomise(module)
        after = module.state_dict()
        self.assertFalse(torch.equal(before["layer1.weight"], after["layer1.weight"]))
        self.assertTrue(torch.equal(after["layer2.variance"], torch.ones(4)))
        self.assertTrue(torch.equal(after["layer2.mean"], torch.zeros(4)))

    def test_refuses_an_unsupported_layer(self):
        self.layers[5] = layer("SeparableConv2D", "conv_b", ["pool"], filters=2, kernel_size=[1, 1])
        self.refusal(write_model(self.dir, self.layers, self.weights),
                     "layer 'conv_b': layer type SeparableConv2D is not supported")

    def test_refuses_an_unsupported_activation(self):
        self.layers[3]["config"]["activation"] = "elu"
        self.refusal(write_model(self.dir, self.layers, self.weights), "layer 'act': activation 'elu' is not supported")

    def test_refuses_a_missing_shard(self):
        path = write_model(self.dir, self.layers, self.weights)
        (self.dir / "group1-shard1of1.bin").unlink()
        self.refusal(path, "group1-shard1of1.bin' is missing")

    def test_refuses_a_short_or_long_shard(self):
        self.refusal(write_model(self.dir, self.layers, self.weights, shard_bytes=lambda d: d[:-4]),
                     "end before tensor 'dense/kernel'")
        self.refusal(write_model(self.dir, self.layers, self.weights, shard_bytes=lambda d: d + b"\0" * 8),
                     "8 bytes left after the last tensor")

    def test_refuses_weights_whose_shape_disagrees_with_the_topology(self):
        self.weights["conv_b/kernel"] = np.zeros([1, 1, 4, 5], np.float32)
        self.refusal(write_model(self.dir, self.layers, self.weights),
                     "layer 'conv_b': weight 'conv_b/kernel' has shape [1, 1, 4, 5], the topology needs [1, 1, 4, 2]")

    def test_command_line_writes_metadata_and_refuses_with_a_message(self):
        path = write_model(self.dir, self.layers, self.weights)
        out = self.dir / "tiny.pt"
        run = subprocess.run([sys.executable, str(TOOLS / "convert_keras_tfjs.py"), str(path), str(out), "--size", "16",
                              "--split", "act", "--random-init", "--name", "tiny"], capture_output=True, text=True)
        self.assertEqual(run.returncode, 0, run.stderr)
        extra = {"siamese.json": ""}
        torch.jit.load(str(out), _extra_files=extra)
        metadata = json.loads(extra["siamese.json"])
        self.assertEqual(metadata["name"], "tiny")
        self.assertFalse(metadata["pretrained"])  # --random-init
        self.assertEqual(metadata["input"]["height"], 16)
        run = subprocess.run([sys.executable, str(TOOLS / "convert_keras_tfjs.py"), str(path), str(out), "--split", "pool"],
                             capture_output=True, text=True)
        self.assertNotEqual(run.returncode, 0)
        self.assertIn("convert_keras_tfjs: layer 'avg' reads 'act'", run.stderr)


if __name__ == "__main__":
    unittest.main()
