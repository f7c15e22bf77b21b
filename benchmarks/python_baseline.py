"""The Python side of embed_throughput: the same TorchScript files run from Python.

Variants, each with torch.inference_mode and the same thread count as the C++ run:
  torchscript         torch.jit.load, as saved
  frozen              torch.jit.freeze
  frozen+optimised    torch.jit.optimize_for_inference(torch.jit.freeze(...))
  eager               (InceptionV3 only) torchvision's eager module with the same weights

Prints one row per measurement: model side batch variant images/s (read by embed_throughput).
Usage: /usr/bin/python3 benchmarks/python_baseline.py --threads 2 --batches 1,8,32 MODEL.pt...
"""
import argparse
import json
import time

import torch


def seconds_per_call(run, budget):
    run()
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < budget:
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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="+")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for path in args.models:
        files = {"siamese.json": ""}
        scripted = torch.jit.load(path, _extra_files=files).eval()
        meta = json.loads(files["siamese.json"])
        side = meta["input"]["height"]
        variants = {
            "torchscript": scripted,
            "frozen": torch.jit.freeze(scripted),
            "frozen+optimised": torch.jit.optimize_for_inference(torch.jit.freeze(scripted)),
        }
        if meta.get("architecture", "").startswith("inception_v3"):
            eager = eager_inception(scripted)
            if eager is not None:
                variants["eager"] = eager
        for batch in [int(b) for b in args.batches.split(",")]:
            images = torch.rand(batch, 3, side, meta["input"]["width"])
            for name, module in variants.items():
                with torch.inference_mode():
                    seconds = seconds_per_call(lambda: module(images), args.seconds)
                print(f"{meta['name']} {side} {batch} {name} {batch / seconds:.3f}", flush=True)


if __name__ == "__main__":
    main()
