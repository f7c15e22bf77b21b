"""Reads TensorFlow.js weight files (a weights manifest plus its .bin shards).

Quantized tensors decode as `q * scale + min`, computed in float64 and rounded once to
float32, which is what tfjs does when it loads them.
"""
import json
import pathlib

import numpy as np

_DTYPES = {"float32": np.float32, "int32": np.int32, "uint8": np.uint8, "uint16": np.uint16}


def read_weights(manifest_path):
    """Returns {name: np.ndarray (float32 or int32)} in manifest order."""
    manifest_path = pathlib.Path(manifest_path)
    return read_manifest_weights(json.loads(manifest_path.read_text()), manifest_path.parent)


def read_manifest_weights(manifest, directory):
    """The tensors of a weights manifest (a list of groups) whose shards lie in `directory`.
    Raises ValueError naming the shard that is missing or the tensor the shards end before."""
    tensors = {}
    for group in manifest:
        parts = []
        for name in group["paths"]:
            shard = pathlib.Path(directory) / name
            if not shard.is_file():
                raise ValueError(f"weight shard '{shard}' is missing")
            parts.append(shard.read_bytes())
        data = b"".join(parts)
        offset = 0
        for spec in group["weights"]:
            shape = spec["shape"]
            count = int(np.prod(shape)) if shape else 1
            quant = spec.get("quantization")
            stored = _DTYPES[quant["dtype"] if quant else spec["dtype"]]
            size = count * np.dtype(stored).itemsize
            if offset + size > len(data):
                raise ValueError(f"shards {group['paths']} in '{directory}' end before tensor '{spec['name']}' "
                                 f"({len(data)} bytes, it needs {offset + size})")
            raw = np.frombuffer(data, dtype=stored, count=count, offset=offset)
            offset += size
            if quant:
                values = (raw.astype(np.float64) * quant["scale"] + quant["min"]).astype(np.float32)
            else:
                values = raw.astype(_DTYPES[spec["dtype"]])
            tensors[spec["name"]] = values.reshape(shape)
        if offset != len(data):
            raise ValueError(f"shards {group['paths']} in '{directory}': {len(data) - offset} bytes left after the last tensor")
    return tensors
