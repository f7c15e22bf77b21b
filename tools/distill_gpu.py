"""Distillation on a GPU machine: the whole student trains, where examples/distill trains its top.

`distill --export FOLDER` (examples/distill.cpp, Distiller::export_samples) writes the aligned
chips of every training photo and the teacher's embeddings of each chip and its mirror image,
and the student wrapped for distillation (OUT/start.pt). This script trains on a copy of that
folder, where LibTorch has no CUDA build (Debian's is CPU-only) but Python's torch has one, and
its weights go back into start.pt on the machine that made it:

  train   (GPU machine) builds the student from the Keras model it was converted from
          (tools/convert_keras_tfjs.py's build(), so that parameter names match start.pt's),
          adds a projection to the teacher's size, and trains everything for a time budget:
          Adam, bf16 autocast, batch normalisation in training mode, a linear warm-up then a
          cosine learning rate, each step on random chips or their mirror images, randomly
          scaled, shifted (rotated) and brightened; the targets are the exported ones of the
          unchanged chips, or with --teacher the teacher's own on the changed chips (then
          --augment strong pays). It holds back a share of the people, and after every pass
          over the data measures the squared distance to the teacher and the best-threshold
          pair accuracy on their photos; the pass with the lowest held-back loss has its
          weights written (float16 parameters, float32 statistics) in files of at most 16 MB,
          with report.json (every figure, the settings, the machine).
  import  (the machine with start.pt, Debian's torch) copies those weights into start.pt,
          every name and shape checked, and saves a backbone file with the student's
          metadata (name, and a weights line saying how it was trained).

Usage:
  distill_gpu.py train --layers MODEL_JSON --data FOLDER --out DIR [--output mixed10]
                       [--seconds 300] [--batch 256] [--lr 5e-4] [--holdout 0.1] [--seed 1]
                       [--random-init] [--teacher TEACHER.pt] [--augment light|strong]
  distill_gpu.py import --start OUT/start.pt --weights DIR --out MODEL.pt [--name NAME]
"""
import argparse
import concurrent.futures
import json
import math
import pathlib
import platform
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

try:
    import cv2
except ImportError:
    cv2 = None
    from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import siamese_metadata  # noqa: E402

WEIGHT_FILE_BYTES = 16_000_000


class DistillError(Exception):
    pass


# ---------------------------------------------------------------------------------------- data

def read_samples(folder):
    """(facts, people [images], chip files [images], targets float32 [images, views, D])."""
    folder = pathlib.Path(folder)
    try:
        facts = json.loads((folder / "samples.json").read_text())
        rows = [line.split("\t") for line in (folder / "samples.tsv").read_text().splitlines() if line]
        targets = np.fromfile(folder / "targets.f16", dtype="<f2")
    except (OSError, ValueError) as error:
        raise DistillError(f"'{folder}' is not a distill --export folder: {error}") from error
    if len(rows) != facts["images"]:
        raise DistillError(f"'{folder / 'samples.tsv'}' lists {len(rows)} images, samples.json says {facts['images']}")
    views, size = 2 if facts["mirror"] else 1, facts["embedding_size"]
    if targets.size != len(rows) * views * size:
        raise DistillError(f"'{folder / 'targets.f16'}' holds {targets.size} values, "
                           f"{len(rows)} images x {views} views x {size} need {len(rows) * views * size}")
    chips = [folder / "chips" / f"{int(index):06d}{facts['extension']}" for index, *_ in rows]
    return facts, [person for _, person, _ in rows], chips, targets.reshape(len(rows), views, size).astype(np.float32)


def decode_rgb(file):
    """[H,W,3] uint8 RGB, with OpenCV where Python has it (the GPU machine), else Pillow."""
    if cv2 is not None:
        image = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if image is not None:
            return image[:, :, ::-1]
    else:
        try:
            with Image.open(file) as image:
                return np.asarray(image.convert("RGB"))
        except (OSError, ValueError):
            pass
    raise DistillError(f"'{file}' is not a readable image")


def split_people(people, holdout, seed):
    """Indices of the training and held-back images; no person is in both."""
    names = sorted(set(people))
    order = np.random.default_rng(seed).permutation(len(names))
    held = {names[i] for i in order[:max(1, int(round(holdout * len(names))))]}
    train = [i for i, p in enumerate(people) if p not in held]
    validation = [i for i, p in enumerate(people) if p in held]
    # Validation pairs need two held-back people, one of them with two photos.
    if not train or len(held) < 2 or len(validation) == len(held):
        raise DistillError(f"holding back {holdout} of {len(names)} people leaves nothing to train on, or no "
                           "validation pairs (two people, one with two photos, are needed)")
    return train, validation


def validation_pairs(people, seed, count=1000, per_person=3):
    """Same-person pairs, at most `per_person` of each person (as LFW's lists spread them, so that
    a person with hundreds of photos does not make most of them), at most `count` in all; as
    many different-person pairs; as positions."""
    rng = np.random.default_rng(seed)
    by_person = {}
    for position, person in enumerate(people):
        by_person.setdefault(person, []).append(position)
    same = []
    for images in by_person.values():
        pairs = [(a, b) for i, a in enumerate(images) for b in images[i + 1:]]
        same += [pairs[i] for i in rng.permutation(len(pairs))[:per_person]]
    same = [same[i] for i in rng.permutation(len(same))[:count]]
    different = []
    while len(different) < len(same):
        a, b = rng.integers(len(people), size=2)
        if people[a] != people[b]:
            different.append((int(a), int(b)))
    return np.array(same + different), np.array([1] * len(same) + [0] * len(different))


def best_accuracy(distances, labels):
    """The best accuracy of `distance < threshold` over every threshold."""
    order = np.argsort(distances)
    same_below = np.cumsum(labels[order])
    different_above = (labels == 0).sum() - np.cumsum(labels[order] == 0)
    return float(max((same_below + different_above).max(), (labels == 0).sum()) / len(labels))


# ---------------------------------------------------------------------------------------- model

class Student(nn.Module):
    def __init__(self, network, width, embedding_size):
        super().__init__()
        self.network = network
        self.projection = nn.Linear(width, embedding_size)

    def forward(self, x):
        return self.projection(self.network(x))


def build_student(layers, output, side, embedding_size, random_init, seed):
    import convert_keras_tfjs
    network, _ = convert_keras_tfjs.build(layers, output, global_pool=True)
    if random_init:
        convert_keras_tfjs.randomise(network, seed)
    with torch.no_grad():
        width = network(torch.zeros(1, 3, side, side)).shape[1]
    torch.manual_seed(seed)
    return Student(network, width, embedding_size)


# (scale, shift as a fraction of the half side, rotation in degrees, contrast, brightness in grey levels)
AUGMENTATION = {"light": (0.07, 0.08, 0.0, 0.15, 12.75), "strong": (0.12, 0.12, 10.0, 0.25, 25.0)}


def augment(pixels, generator, strength):
    """Each chip randomly scaled, shifted, rotated, contrasted and brightened (AUGMENTATION's
    ranges); `pixels` are [N,3,H,W] float RGB in 0-255."""
    scale, shift, degrees, contrast, brightness = AUGMENTATION[strength]
    n = pixels.shape[0]
    device = pixels.device

    def uniform(half_range, centre=0.0):
        return (torch.rand(n, device=device, generator=generator) * 2 - 1) * half_range + centre

    size, angle = uniform(scale, 1.0), uniform(math.radians(degrees))
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0] = size * torch.cos(angle)
    theta[:, 0, 1] = -size * torch.sin(angle)
    theta[:, 1, 0] = size * torch.sin(angle)
    theta[:, 1, 1] = size * torch.cos(angle)
    theta[:, 0, 2] = uniform(shift)
    theta[:, 1, 2] = uniform(shift)
    grid = F.affine_grid(theta, list(pixels.shape), align_corners=False)
    moved = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="border", align_corners=False)
    mean = moved.mean(dim=(1, 2, 3), keepdim=True)
    return ((moved - mean) * uniform(contrast, 1.0).view(n, 1, 1, 1) + mean +
            uniform(brightness).view(n, 1, 1, 1)).clamp(0, 255)


class Teacher:
    """A backbone file with siamese.json (the face model), run on the student's augmented chips
    so that every augmented chip has its exact target: resized to the teacher's input (area),
    then `(pixel * scale - mean) / std` in its channel order, as the library prepares input."""

    def __init__(self, file, device):
        extra = {siamese_metadata.METADATA_FILE: ""}
        self.module = torch.jit.load(str(file), map_location="cpu", _extra_files=extra).float().to(device).eval()
        spec = json.loads(extra[siamese_metadata.METADATA_FILE])["input"]
        self.size = (spec["height"], spec["width"])
        self.bgr = spec["channel_order"] == "BGR"
        self.gain = torch.tensor([spec["scale"] / s for s in spec["std"]], device=device).view(1, 3, 1, 1)
        self.offset = torch.tensor([-m / s for m, s in zip(spec["mean"], spec["std"])], device=device).view(1, 3, 1, 1)

    def __call__(self, pixels):
        with torch.no_grad():
            resized = F.interpolate(pixels, size=self.size, mode="area")
            if self.bgr:
                resized = resized.flip(1)
            return self.module(resized * self.gain + self.offset).float()


def to_pixels(chips_uint8):
    """[N,H,W,3] uint8 RGB -> [N,3,H,W] float 0-255, channels last in memory."""
    return chips_uint8.permute(0, 3, 1, 2).float().contiguous(memory_format=torch.channels_last)


def to_input(pixels):
    """Keras InceptionV3's input: x/127.5 - 1."""
    return pixels / 127.5 - 1.0


# ---------------------------------------------------------------------------------------- train

def train(args):
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    facts, people, files, targets = read_samples(args.data)
    began = time.time()
    with concurrent.futures.ThreadPoolExecutor() as pool:
        chips = np.stack(list(pool.map(decode_rgb, files)))
    print(f"{len(files)} chips {chips.shape[1]}x{chips.shape[2]} decoded in {time.time() - began:.1f} s", flush=True)
    train_at, held_at = split_people(people, args.holdout, args.seed)
    pairs, labels = validation_pairs([people[i] for i in held_at], args.seed + 1)
    pairs = torch.from_numpy(pairs).to(device)
    chips = torch.from_numpy(chips).to(device)
    targets = torch.from_numpy(targets).to(device)
    train_at = torch.tensor(train_at, device=device)
    held_at = torch.tensor(held_at, device=device)
    teacher_distances = (targets[held_at, 0][pairs[:, 0]] - targets[held_at, 0][pairs[:, 1]]).norm(dim=1).cpu().numpy()
    teacher_accuracy = best_accuracy(teacher_distances, labels)

    student = build_student(args.layers, args.output, facts["side"], facts["embedding_size"], args.random_init,
                            args.seed).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(student.parameters(), lr=args.lr, fused=device.type == "cuda")
    generator = torch.Generator(device=device).manual_seed(args.seed)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    views = targets.shape[1]
    teacher = Teacher(args.teacher, device) if args.teacher else None
    if teacher:
        # The same teacher here and in the export: its targets for unchanged chips agree.
        with autocast:
            online = teacher(to_pixels(chips[held_at[:256]]))
        print(f"teacher here vs exported targets, unchanged chips: mean squared distance "
              f"{(online - targets[held_at[:256], 0]).pow(2).sum(1).mean().item():.5f}", flush=True)

    def evaluate():
        student.eval()
        embeddings = []
        with torch.no_grad(), autocast:
            for first in range(0, len(held_at), 512):
                embeddings.append(student(to_input(to_pixels(chips[held_at[first:first + 512]]))).float())
        student.train()
        embeddings = torch.cat(embeddings)
        loss = (embeddings - targets[held_at, 0]).pow(2).sum(1).mean().item()
        distances = (embeddings[pairs[:, 0]] - embeddings[pairs[:, 1]]).norm(dim=1).cpu().numpy()
        return loss, best_accuracy(distances, labels)

    def step(number, total):
        warmup = max(1, total // 30)
        rate = args.lr * (number + 1) / warmup if number < warmup else \
            args.lr * 0.5 * (1 + math.cos(math.pi * (number - warmup) / max(1, total - warmup)))
        for group in optimizer.param_groups:
            group["lr"] = rate
        pick = train_at[torch.randint(len(train_at), (args.batch,), device=device, generator=generator)]
        mirrored = torch.randint(views, (args.batch,), device=device, generator=generator)
        pixels = to_pixels(chips[pick])
        pixels = augment(torch.where(mirrored.view(-1, 1, 1, 1) == 1, pixels.flip(3), pixels), generator, args.augment)
        with autocast:
            target = teacher(pixels) if teacher else targets[pick, mirrored]
            output = student(to_input(pixels)).float()
        loss = (output - target).pow(2).sum(1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 10.0)
        optimizer.step()
        return loss.detach()

    student.train()
    loss0, accuracy0 = evaluate()
    history = [{"step": 0, "seconds": 0.0, "train_loss": None, "validation_loss": loss0, "validation_accuracy": accuracy0}]
    print(f"held back {len(held_at)} photos of {len(set(people[i] for i in held_at.tolist()))} people, "
          f"{len(labels)} pairs; teacher's accuracy on them {teacher_accuracy:.4f}; student before training: "
          f"loss {loss0:.4f}, accuracy {accuracy0:.4f}", flush=True)
    # The step count that fits the budget, from the speed of steps after the first few (which
    # warm up as the start of a 400-step schedule would).
    timing_steps = 40
    started = time.time()
    for number in range(timing_steps):
        step(number, 10 * timing_steps)
        if number == 9:
            if device.type == "cuda":
                torch.cuda.synchronize()
            timed_from = time.time()
    if device.type == "cuda":
        torch.cuda.synchronize()
    per_step = (time.time() - timed_from) / (timing_steps - 10)
    steps_per_pass = max(1, len(train_at) * views // args.batch)
    total = timing_steps + max(1, int((args.seconds - (time.time() - started)) / per_step))
    print(f"{per_step * 1000:.1f} ms per step of {args.batch} ({args.batch / per_step:.0f} chips/s): {total} steps, "
          f"{total * args.batch / (len(train_at) * views):.1f} passes over {len(train_at)} photos x {views} views", flush=True)
    best = {"validation_loss": math.inf}
    number, running = timing_steps, []
    while number < total:
        running.append(step(number, total))
        number += 1
        if number % steps_per_pass == 0 or number == total:
            train_loss = torch.stack(running).mean().item()
            running = []
            validation_loss, accuracy = evaluate()
            record = {"step": number, "seconds": round(time.time() - started, 1), "train_loss": train_loss,
                      "validation_loss": validation_loss, "validation_accuracy": accuracy}
            history.append(record)
            print(json.dumps(record), flush=True)
            # The loss, not the accuracy of a few hundred pairs, picks the pass: it is far less noisy.
            if validation_loss < best["validation_loss"]:
                best = dict(record, state={k: v.detach().clone() for k, v in student.state_dict().items()})
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_weights(best.pop("state"), out)
    report = {"settings": {k: v for k, v in vars(args).items() if k != "func"}, "best": best, "history": history,
              "teacher_validation_accuracy": teacher_accuracy, "photos": {"train": len(train_at), "held_back": len(held_at)},
              "ms_per_step": per_step * 1000, "seconds": round(time.time() - started, 1),
              "machine": {"torch": torch.__version__, "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor()}}
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"best after step {best['step']}: validation accuracy {best['validation_accuracy']:.4f}, "
          f"loss {best['validation_loss']:.4f}; weights in {out}", flush=True)


def write_weights(state, out):
    """Parameters as float16, statistics as float32, in files of at most WEIGHT_FILE_BYTES."""
    groups, group, size = [], {}, 0
    for name, value in state.items():
        array = value.float().cpu().numpy()
        array = array.astype(np.float32 if name.rsplit(".", 1)[-1] in ("mean", "variance") else np.float16)
        if group and size + array.nbytes > WEIGHT_FILE_BYTES:
            groups.append(group)
            group, size = {}, 0
        group[name] = array
        size += array.nbytes
    groups.append(group)
    for index, group in enumerate(groups):
        np.savez(out / f"weights-{index}.npz", **group)


# ---------------------------------------------------------------------------------------- import

def start_name(name):
    """The GPU student's name of start.pt's tensor `name`: start.pt holds the network as `top`
    (or `stem` and `top`) and the projection as projection_weight / projection_bias."""
    if name.startswith("projection_"):
        return "projection." + name[len("projection_"):]
    return "network." + name.split(".", 1)[1]


def import_weights(args):
    files = sorted(pathlib.Path(args.weights).glob("weights-*.npz"))
    if not files:
        raise DistillError(f"no weights-*.npz in '{args.weights}'")
    trained = {}
    for file in files:
        with np.load(file) as arrays:
            trained.update({name: arrays[name] for name in arrays.files})
    extra = {siamese_metadata.METADATA_FILE: ""}
    module = torch.jit.load(args.start, map_location="cpu", _extra_files=extra)
    meta = json.loads(extra[siamese_metadata.METADATA_FILE])
    tensors = dict(module.named_parameters())
    tensors.update(dict(module.named_buffers()))
    wanted = {start_name(name): name for name in tensors}
    missing = sorted(set(wanted) - set(trained))
    unknown = sorted(set(trained) - set(wanted))
    if missing or unknown:
        raise DistillError(f"'{args.weights}' does not fit '{args.start}': missing {missing[:5]}, unknown {unknown[:5]}")
    with torch.no_grad():
        for name, start in wanted.items():
            value = torch.from_numpy(trained[name].astype(np.float32))
            if tuple(value.shape) != tuple(tensors[start].shape):
                raise DistillError(f"'{name}' has shape {list(value.shape)}, '{args.start}' needs {list(tensors[start].shape)}")
            tensors[start].copy_(value)
    report = json.loads((pathlib.Path(args.weights) / "report.json").read_text())
    if args.name:
        meta["name"] = args.name
    meta["weights"] += (f"; then the whole network trained by tools/distill_gpu.py on {report['machine']['device']} "
                        f"({report['best']['step']} steps of {report['settings']['batch']}, "
                        f"{'random initialisation' if report['settings']['random_init'] else 'from these weights'})")
    module.eval()
    siamese_metadata.save(module, args.out, meta)
    print(f"{args.out}: {len(wanted)} tensors from '{args.weights}' (held-back accuracy "
          f"{report['best']['validation_accuracy']:.4f} after step {report['best']['step']})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    t = commands.add_parser("train", help="train on a GPU machine")
    t.add_argument("--layers", required=True, help="the Keras model's model.json (TF.js layers)")
    t.add_argument("--output", default="mixed10", help="the layer the student ends at (then a global pool)")
    t.add_argument("--data", required=True, help="a folder written by distill --export")
    t.add_argument("--out", required=True)
    t.add_argument("--seconds", type=float, default=300)
    t.add_argument("--batch", type=int, default=256)
    t.add_argument("--lr", type=float, default=5e-4)
    t.add_argument("--holdout", type=float, default=0.1)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--random-init", action="store_true", help="the control: the same from random weights")
    t.add_argument("--teacher", help="the teacher's backbone file: targets of the augmented chips themselves "
                                     "(default: the exported targets of the unchanged chips)")
    t.add_argument("--augment", choices=sorted(AUGMENTATION), default="light")
    t.set_defaults(func=train)
    i = commands.add_parser("import", help="put trained weights into start.pt")
    i.add_argument("--start", required=True)
    i.add_argument("--weights", required=True)
    i.add_argument("--out", required=True)
    i.add_argument("--name")
    i.set_defaults(func=import_weights)
    args = parser.parse_args()
    try:
        args.func(args)
    except DistillError as error:
        sys.exit(f"distill_gpu: {error}")


if __name__ == "__main__":
    main()
