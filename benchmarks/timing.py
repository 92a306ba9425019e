"""Timing helpers of the benchmarks that train (throughput.py, gpu_epoch.py): the machine's description,
the device an accelerator setting trains on, GPU-synchronised epoch timers and the network's own rate.
They need torch and Lightning at import, which :mod:`common` does not load."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import pytorch_lightning as pl
import torch


def machine() -> dict:
    """The CPU (its model name), its cores, torch's threads, the GPU and the software versions."""
    from smile.data.cache import default_build_workers

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": default_build_workers(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def torch_device(accelerator: str) -> torch.device:
    """The device a Lightning ``accelerator`` setting (``auto``, ``gpu``, ``cuda``, ``cpu``) trains on here."""
    gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return torch.device("cuda" if gpu else "cpu")


def sync() -> None:
    """Wait for the GPU's queued work, so wall-clock times cover it."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class EpochTimer(pl.Callback):
    """Wall time of each training epoch (``epochs``), the images of the last one (``images``), and the
    images and seconds from batch ``skip`` to the epoch's end (``steady``, past the loader's start-up)."""

    def __init__(self, skip: int = 5) -> None:
        self.epochs: list[float] = []
        self.skip = skip
        self.images = 0
        self.steady: tuple[int, float] | None = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        sync()
        self.start = time.perf_counter()
        self.images = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.skip:
            sync()
            self.steady_start, self.steady_images = time.perf_counter(), self.images

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.images += len(batch[0])

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        sync()
        now = time.perf_counter()
        self.epochs.append(now - self.start)
        if hasattr(self, "steady_start"):
            self.steady = (self.images - self.steady_images, now - self.steady_start)


def training_step_rate(
    net: torch.nn.Module,
    batch_size: int,
    device: torch.device,
    precision: str = "32-true",
    channels_last: bool = False,
    steps: int = 30,
    warmup: int = 5,
) -> float:
    """Images per second of Adam training steps of ``net`` (moved to ``device``) on one random 64x64
    batch already there: the network's own ceiling, with no data loading. ``precision`` as Lightning's
    (``bf16-mixed`` and ``16-mixed`` autocast)."""
    net = net.to(device)
    optimizer = torch.optim.Adam(net.parameters())
    images = torch.rand(batch_size, 3, 64, 64, device=device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    targets = torch.randint(0, 2, (batch_size, 1), device=device).float()
    autocast = precision.startswith(("bf16", "16"))
    dtype = torch.bfloat16 if precision.startswith("bf16") else torch.float16

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=autocast):
            logits = net(images)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return steps * batch_size / (time.perf_counter() - start)
