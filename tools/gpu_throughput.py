#!/usr/bin/env python3
"""Python torch's side of tools/gpu-check.sh's throughput table: the same TorchScript files,
precisions and batches as `gpu_check throughput`, run as a Python user would (torch.jit.load,
.half() / .bfloat16(), freeze + optimize_for_inference, inference_mode), on CUDA device 0 when
there is one. Prints CSV rows "model,precision,batch,images_per_s".

Usage: gpu_throughput.py MODELS BATCHES PRECISIONS SECONDS
"""
import json
import os
import sys
import time

import torch


def main():
    models, batches, precisions, seconds = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(","), float(sys.argv[4])
    cuda = torch.cuda.is_available()
    device = torch.device("cuda:0" if cuda else "cpu")
    if not cuda:
        # Debian's Python torch starts with one thread on small machines; the library uses every
        # core. The CPU half compares like with like.
        torch.set_num_threads(os.cpu_count())
    for name in ("faceapi_recognition.pt", "inception_v3.pt"):
        path = os.path.join(models, name)
        if not os.path.exists(path):
            continue
        extra = {"siamese.json": ""}
        torch.jit.load(path, map_location="cpu", _extra_files=extra)  # for its input spec
        spec = json.loads(extra["siamese.json"])["input"]
        for precision in precisions:
            dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[precision]
            if precision == "float16" and not cuda:
                continue
            if precision == "bfloat16" and not cuda:
                continue  # the library needs AVX512-BF16/AMX there; the CPU half measures float32 only
            module = torch.jit.load(path, map_location=device).eval().to(dtype)
            module = torch.jit.optimize_for_inference(torch.jit.freeze(module))
            for batch in (int(b) for b in batches):
                x = (torch.rand(batch, 3, spec["height"], spec["width"], device=device) * 2 - 1).to(dtype)
                with torch.inference_mode():
                    for _ in range(3):
                        module(x).float().cpu()
                    images, calls, start = 0, 0, time.perf_counter()
                    while calls < 3 or time.perf_counter() - start < seconds:
                        module(x).float().cpu()  # read back, as the library's embed() does
                        images += batch
                        calls += 1
                    elapsed = time.perf_counter() - start
                print(f"{name},{precision},{batch},{images / elapsed}", flush=True)


if __name__ == "__main__":
    main()
