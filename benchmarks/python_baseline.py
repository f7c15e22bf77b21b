"""The Python side of embed_throughput: the same TorchScript files run from Python.

Variants, each with torch.inference_mode and the same thread count as the C++ run:
  frozen+optimised    torch.jit.optimize_for_inference(torch.jit.freeze(...))
  frozen              torch.jit.freeze
  torchscript         torch.jit.load, as saved
  eager               (InceptionV3 only) torchvision's eager module with the same weights

embed_throughput starts this script and takes turns with it, so that both sides are timed in
the same seconds of a shared, noisy machine. It writes one request per line on stdin:
  variants MODEL.pt                    -> "VARIANT VARIANT ..."
  graph MODEL.pt                       -> the frozen+optimised graph's operations, in order
  run MODEL.pt BATCH VARIANT SECONDS   -> images/s over at least SECONDS and one call (the
                                          first request for a model, batch and variant also
                                          makes two untimed calls)
A request that fails is answered "error MESSAGE" on one line.
Usage: /usr/bin/python3 benchmarks/python_baseline.py --threads 2
"""
import argparse
import json
import sys
import time

import torch


def seconds_per_call(run, budget):
    calls, start = 0, time.perf_counter()
    while calls < 1 or time.perf_counter() - start < budget:
        run()
        calls += 1
    return (time.perf_counter() - start) / calls


def eager_inception(scripted):
    """torchvision's InceptionV3 as tools/export_inception_v3.py builds it, with the file's weights."""
    import torchvision
    model = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False,
                                            transform_input=False)
    model.fc = torch.nn.Identity()
    state = {k: v for k, v in scripted.state_dict().items()}
    missing = model.load_state_dict({k.removeprefix("net."): v for k, v in state.items()}, strict=False)
    if missing.missing_keys:
        return None
    return model.eval()


class Model:
    def __init__(self, path):
        files = {"siamese.json": ""}
        scripted = torch.jit.load(path, _extra_files=files).eval()
        meta = json.loads(files["siamese.json"])
        self.shape = (3, meta["input"]["height"], meta["input"]["width"])
        # Fastest first: embed_throughput runs the first right beside the library.
        self.variants = {
            "frozen+optimised": torch.jit.optimize_for_inference(torch.jit.freeze(scripted)),
            "frozen": torch.jit.freeze(scripted),
            "torchscript": scripted,
        }
        if meta.get("architecture", "").startswith("inception_v3"):
            eager = eager_inception(scripted)
            if eager is not None:
                self.variants["eager"] = eager
        self.inputs = {}
        self.warmed = set()

    def images_per_second(self, batch, variant, seconds):
        if variant not in self.variants:
            raise ValueError(f"no variant {variant!r}; this model has {' '.join(self.variants)}")
        if batch not in self.inputs:
            self.inputs[batch] = torch.rand(batch, *self.shape)
        images, module = self.inputs[batch], self.variants[variant]
        with torch.inference_mode():
            if (batch, variant) not in self.warmed:  # the first call profiles, the second compiles
                module(images)
                module(images)
                self.warmed.add((batch, variant))
            return batch / seconds_per_call(lambda: module(images), seconds)


def operations(block):
    """The kinds of a graph's nodes in order, nested blocks included (embed_throughput lists its own)."""
    kinds = []
    for node in block.nodes():
        kinds.append(node.kind())
        for inner in node.blocks():
            kinds += operations(inner)
    return kinds


def answer(models, words):
    arity = {"variants": 2, "graph": 2, "run": 5}
    if not words or arity.get(words[0]) != len(words):
        raise ValueError(f"unknown request {' '.join(words)!r}")
    if words[1] not in models:
        models[words[1]] = Model(words[1])
    model = models[words[1]]
    if words[0] == "variants":
        return " ".join(model.variants)
    if words[0] == "graph":
        return " ".join(operations(model.variants["frozen+optimised"].graph))
    return f"{model.images_per_second(int(words[2]), words[3], float(words[4])):.3f}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = {}
    for line in sys.stdin:
        try:
            reply = answer(models, line.split())
        except Exception as error:  # reported to embed_throughput, which names the request
            reply = "error " + " ".join(str(error).split())
        print(reply, flush=True)


if __name__ == "__main__":
    main()
