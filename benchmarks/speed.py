"""Parameter count and CPU inference speed of the networks (``model.net``), on 64x64 inputs (or
``--image-size``: configs/attributes.yaml trains at 112).

    python benchmarks/speed.py [--threads 2] [--batch 256] [--nets original resnet] [--image-size 64]
    python benchmarks/speed.py --nets --ckpt both.ckpt     # a trained model, as test and predict run it

Images per second of the forward pass in ``torch.inference_mode`` at the given batch size, float32 and
bfloat16 autocast, channels-last. ``--ckpt`` times a checkpoint's model as ``test`` and ``predict`` run it
(an ensemble's members and ``model.tta`` included), at the checkpoint's input size. Besides wall-clock
speed it prints images per CPU-second (the process's CPU time), which is the steadier figure on a machine
shared with other work.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from common import load_classifier
from torch import nn

from smile.models import build_network

#: label -> (model.net, model.net_kwargs)
NETS = {
    "original": ("original", {}),
    "original_bn": ("original_bn", {}),
    "resnet": ("resnet", {}),
    "resnet_spatial": (
        "resnet",
        {"head": "spatial"},
    ),  # benchmarks/configs/resnet.yaml, configs/attributes.yaml
    "mini_xception": ("mini_xception", {}),  # configs/smile.yaml (fer's weights do not change its speed)
    # smile ensemble of the two recipes' checkpoints
    "ensemble": (
        "ensemble",
        {"members": [{"net": "resnet", "net_kwargs": {"head": "spatial"}}, {"net": "mini_xception"}]},
    ),
}


def measure(label: str, batch: int, bf16: bool, seconds: float, size: int = 64) -> dict:
    name, kwargs = NETS[label]
    net = build_network(name, 1, **kwargs).eval().to(memory_format=torch.channels_last)
    return time_forward(label, net, batch, bf16, seconds, size)


def measure_checkpoint(path: str, batch: int, bf16: bool, seconds: float) -> dict:
    """A checkpoint's model (:class:`smile.system.AttributeClassifier`) at its own input size."""
    model, settings, _ = load_classifier(path)
    return time_forward(path, model, batch, bf16, seconds, settings.image_size)


def time_forward(label: str, net: nn.Module, batch: int, bf16: bool, seconds: float, size: int) -> dict:
    x = torch.rand(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        net(x)  # warm-up
        count, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - wall0 < seconds or count < 3:
            net(x)
            count += 1
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {
        "net": label,
        "params": sum(p.numel() for p in net.parameters()),
        "precision": "bf16" if bf16 else "32",
        "image_size": size,
        "images_per_s": count * batch / wall,
        "images_per_cpu_s": count * batch / cpu,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nets", nargs="*", default=list(NETS), choices=list(NETS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=64, help="the input's side (data.image_size)")
    parser.add_argument("--seconds", type=float, default=5.0, help="time each measurement for this long")
    parser.add_argument("--ckpt", nargs="*", default=[], help="also time these checkpoints' models")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = [
        measure(n, args.batch, bf16, args.seconds, args.image_size)
        for n in args.nets
        for bf16 in (False, True)
    ] + [
        measure_checkpoint(path, args.batch, bf16, args.seconds)
        for path in args.ckpt
        for bf16 in (False, True)
    ]
    print(f"batch {args.batch}, {args.threads} threads, inference_mode, channels-last")
    width = max(14, *(len(r["net"]) for r in results))
    print(f"| {'net':<{width}} | {'params':>9} | input | precision | images/s | images/CPU-s |")
    print(f"|{'-' * (width + 2)}|{'-' * 11}|------:|-----------|---------:|-------------:|")
    for r in results:
        print(
            f"| {r['net']:<{width}} | {r['params']:>9,} | {r['image_size']:>5} | {r['precision']:>9} "
            f"| {r['images_per_s']:>8.0f} | {r['images_per_cpu_s']:>12.0f} |"
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                {
                    "batch": args.batch,
                    "threads": args.threads,
                    "image_size": args.image_size,
                    "results": results,
                },
                handle,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
