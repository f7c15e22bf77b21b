#!/usr/bin/env python3
"""Checks tools/distill_gpu.py on the CPU: training on a tiny export (with the exported targets
and with a teacher), the weight files and report, importing them into a start.pt laid out as
Distiller writes it, and the refusals. Run by CTest with Debian's python3 (python3-torch,
python3-pil)."""
import json
import pathlib
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch
from PIL import Image

HERE = pathlib.Path(__file__).resolve().parent
TOOLS = HERE.parents[1] / "tools"
sys.path[:0] = [str(TOOLS), str(HERE)]
import distill_gpu  # noqa: E402
import siamese_metadata  # noqa: E402
from test_convert_keras_tfjs import converter, tiny_model, write_model  # noqa: E402

SIDE, SIZE = 12, 4  # chip side, teacher's embedding size


def write_export(folder, people=6, photos=3):
    """A folder as `distill --export` writes it: PNG chips, samples.tsv/json, targets.f16."""
    rng = np.random.default_rng(5)
    (folder / "chips").mkdir(parents=True)
    rows = []
    for index in range(people * photos):
        person = f"person_{index // photos}"
        Image.fromarray(rng.integers(0, 256, size=(SIDE, SIDE, 3), dtype=np.uint8)).save(folder / "chips" / f"{index:06d}.png")
        rows.append(f"{index}\t{person}\t/lfw/{person}/{index}.jpg\n")
    (folder / "samples.tsv").write_text("".join(rows))
    rng.normal(scale=0.3, size=(len(rows), 2, SIZE)).astype("<f2").tofile(folder / "targets.f16")
    (folder / "samples.json").write_text(json.dumps({"images": len(rows), "mirror": True, "embedding_size": SIZE,
                                                     "side": SIDE, "extension": ".png", "teacher": "tiny"}))


class TinyTeacher(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, SIZE, 3)

    def forward(self, x):
        return self.conv(x).mean(dim=[2, 3])


class DistillGpu(unittest.TestCase):
    def setUp(self):
        self.folder = pathlib.Path(tempfile.mkdtemp())
        write_model(self.folder, *tiny_model())
        write_export(self.folder / "data")
        meta = siamese_metadata.metadata(name="teacher", architecture="tiny", height=10, width=10, scale=1.0,
                                         mean=[120, 110, 100], std=[255, 255, 255], embedding_size=SIZE,
                                         pretrained=False, weights="", license="")
        siamese_metadata.save(torch.jit.script(TinyTeacher()), self.folder / "teacher.pt", meta)

    def tool(self, *args):
        return subprocess.run([sys.executable, str(TOOLS / "distill_gpu.py"), *map(str, args)],
                              capture_output=True, text=True)

    def train(self, out, *extra):
        result = self.tool("train", "--layers", self.folder / "model.json", "--output", "cat", "--data",
                           self.folder / "data", "--out", out, "--seconds", 1, "--batch", 4, "--holdout", 0.34, *extra)
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout

    def start_file(self):
        """start.pt as Distiller writes it for a student without a stem: `top`, the projection
        as projection_weight [D, width] and projection_bias, the teacher's size in siamese.json."""
        top, _ = converter.convert(self.folder / "model.json", "cat", global_pool=True)

        class Wrapped(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.top = top
                self.projection_weight = torch.nn.Parameter(torch.zeros(SIZE, 6))
                self.projection_bias = torch.nn.Parameter(torch.zeros(SIZE))

            def forward(self, x):
                return torch.matmul(self.top(x), self.projection_weight.t()) + self.projection_bias

        meta = siamese_metadata.metadata(name="student-distilled", architecture="tiny", height=SIDE, width=SIDE,
                                         scale=1 / 127.5, mean=[1, 1, 1], std=[1, 1, 1], embedding_size=SIZE,
                                         pretrained=True, weights="tiny", license="")
        siamese_metadata.save(torch.jit.script(Wrapped()), self.folder / "start.pt", meta)
        return self.folder / "start.pt"

    def test_trains_writes_weights_and_imports_them(self):
        output = self.train(self.folder / "out")
        self.assertIn("held back 6 photos of 2 people", output)
        report = json.loads((self.folder / "out" / "report.json").read_text())
        self.assertEqual(report["photos"], {"train": 12, "held_back": 6})
        self.assertTrue(np.isfinite(report["best"]["validation_loss"]))
        self.assertFalse(report["settings"]["random_init"])
        weights = {}
        for file in sorted((self.folder / "out").glob("weights-*.npz")):
            with np.load(file) as arrays:
                weights.update({n: arrays[n] for n in arrays.files})
        self.assertEqual(weights["projection.weight"].dtype, np.float16)
        self.assertEqual(weights["network.layer2.mean"].dtype, np.float32)  # statistics stay float32

        result = self.tool("import", "--start", self.start_file(), "--weights", self.folder / "out",
                           "--out", self.folder / "trained.pt", "--name", "trained")
        self.assertEqual(result.returncode, 0, result.stderr)
        extra = {siamese_metadata.METADATA_FILE: ""}
        trained = torch.jit.load(str(self.folder / "trained.pt"), _extra_files=extra)
        meta = json.loads(extra[siamese_metadata.METADATA_FILE])
        self.assertEqual(meta["name"], "trained")
        self.assertIn("then the whole network trained by tools/distill_gpu.py", meta["weights"])
        # The imported file computes what the trained student computes.
        student = distill_gpu.build_student(self.folder / "model.json", "cat", SIDE, SIZE, False, 1)
        student.load_state_dict({n: torch.from_numpy(v.astype(np.float32)) for n, v in weights.items()})
        x = torch.randn(2, 3, SIDE, SIDE)
        with torch.no_grad():
            torch.testing.assert_close(trained(x), student.eval()(x), rtol=1e-5, atol=1e-5)

    def test_trains_with_a_teacher_on_augmented_chips(self):
        output = self.train(self.folder / "taught", "--teacher", self.folder / "teacher.pt", "--augment", "strong")
        self.assertIn("teacher here vs exported targets", output)
        self.assertTrue((self.folder / "taught" / "weights-0.npz").exists())

    def refused(self, *args):
        result = self.tool(*args)
        self.assertNotEqual(result.returncode, 0)
        self.assertTrue(result.stderr.startswith("distill_gpu: "), result.stderr)
        return result.stderr

    def refused_training(self, *extra):
        return self.refused("train", "--layers", self.folder / "model.json", "--output", "cat", "--data",
                            self.folder / "data", "--out", self.folder / "bad", "--seconds", 1, "--batch", 4, *extra)

    def test_refusals_name_what_is_wrong(self):
        data = self.folder / "data"
        self.assertIn("is not a distill --export folder", self.refused_training("--data", self.folder / "nothing"))
        # Holding back one of six people leaves no different-person pairs to validate on.
        self.assertIn("no validation pairs", self.refused_training("--holdout", 0.1))
        chip = (data / "chips" / "000004.png").read_bytes()
        (data / "chips" / "000004.png").write_bytes(b"not a PNG")
        self.assertIn("000004.png' is not a readable image", self.refused_training())
        (data / "chips" / "000004.png").write_bytes(chip)
        targets = (data / "targets.f16").read_bytes()
        (data / "targets.f16").write_bytes(targets[:-2])
        self.assertIn("holds 143 values, 18 images x 2 views x 4 need 144", self.refused_training())
        (data / "targets.f16").write_bytes(targets)
        (data / "samples.tsv").write_text("0\tperson_0\tx.jpg\n")
        self.assertIn("lists 1 images, samples.json says 18", self.refused_training())

        start = self.start_file()
        self.assertIn("no weights-*.npz in", self.refused("import", "--start", start, "--weights", self.folder, "--out",
                                                          self.folder / "x.pt"))
        np.savez(self.folder / "weights-0.npz", **{"projection.weight": np.zeros((SIZE, 5), np.float16)})
        self.assertIn("does not fit", self.refused("import", "--start", start, "--weights", self.folder, "--out",
                                                   self.folder / "x.pt"))
        # Every name there, one shape wrong.
        student = distill_gpu.build_student(self.folder / "model.json", "cat", SIDE, SIZE, False, 1)
        state = {n: v.numpy() for n, v in student.state_dict().items()}
        state["projection.bias"] = np.zeros(SIZE + 1, np.float16)
        np.savez(self.folder / "weights-0.npz", **state)
        self.assertIn("'projection.bias' has shape [5], ", self.refused("import", "--start", start, "--weights",
                                                                        self.folder, "--out", self.folder / "x.pt"))

if __name__ == "__main__":
    unittest.main()
