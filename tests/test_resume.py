"""Interruptions: SIGTERM, Ctrl-C and SIGKILL mid-epoch, then ``fit --ckpt_path last``, end exactly like an
uninterrupted run with the same seed; checkpoints are written atomically and loaded safely."""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers.cli import smile_env
from helpers.runs import scalars
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from smile.cli import main
from smile.data.sampling import EpochSampler, SeededItems
from smile.errors import CheckpointError
from smile.trained.checkpoints import load_checkpoint
from smile.training.resume import AtomicCheckpointIO

TESTS = Path(__file__).resolve().parent
EPOCHS = 2
BATCHES = 4  # training batches per epoch (of 16 images)


def fit_args(root: Path, *extra: str, workers: int = 0, every: int = 0) -> list[str]:
    return [
        "fit",
        "--data.root", str(root),
        "--seed_everything", "11",
        "--trainer.max_epochs", str(EPOCHS),
        "--trainer.accelerator", "cpu",
        "--trainer.devices", "1",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        "--trainer.limit_train_batches", str(BATCHES),
        "--trainer.log_every_n_steps", "1",
        "--data.num_workers", str(workers),
        "--data.batch_size", "16",
        "--last_checkpoint.every_n_train_steps", str(every),
        *extra,
    ]  # fmt: skip


def resume_args(*extra: str) -> list[str]:
    return [
        "fit",
        "--ckpt_path", "last",
        "--trainer.callbacks", "[]",  # drop the test's interrupting callback from the run's config
        "--trainer.enable_progress_bar", "false",
        *extra,
    ]  # fmt: skip


def last_checkpoint(folder: Path) -> dict:
    return torch.load(folder / "lightning_logs/version_0/checkpoints/last.ckpt", weights_only=True)


def assert_same_run(reference: Path, resumed: Path) -> dict[str, float]:
    """Identical final weights, optimizer state and logged figures; returns the final figures."""
    a, b = last_checkpoint(reference), last_checkpoint(resumed)
    assert (a["epoch"], a["global_step"]) == (b["epoch"], b["global_step"]) == (EPOCHS - 1, EPOCHS * BATCHES)
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    for x, y in zip(a["optimizer_states"][0]["state"].values(), b["optimizer_states"][0]["state"].values()):
        assert all(torch.equal(x[k], y[k]) for k in x)
    expected, found = scalars(reference), scalars(resumed)
    assert found == expected  # val/loss, val/acc, train/loss, train/acc of every epoch, bit for bit
    last = max(step for _, step in expected)
    return {tag: value for (tag, step), value in expected.items() if step == last and tag != "epoch"}


def run_in(folder: Path, args: list[str]) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)
    return main(args)


@pytest.fixture(scope="module")
def reference(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run (in this process, no loader workers)."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    previous = Path.cwd()
    try:
        assert run_in(folder, fit_args(synthetic_root)) == 0
    finally:
        os.chdir(previous)
    return folder


def interrupt_at(step: int, signum: int) -> list[str]:
    callback = {
        "class_path": "helpers.interrupts.SignalAt",
        "init_args": {"step": step, "signum": int(signum)},
    }
    return ["--trainer.callbacks", json.dumps([callback])]


def run_interrupted(folder: Path, args: list[str]) -> int:
    sys.path.insert(0, str(TESTS))
    try:
        return run_in(folder, args)
    finally:
        sys.path.remove(str(TESTS))


def test_sigterm_mid_epoch_saves_stops_and_resumes_exactly(
    synthetic_root: Path, reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """No periodic checkpoints: what is resumed is the checkpoint written on the signal."""
    step = BATCHES + 1  # the second batch of the second epoch
    code = run_interrupted(tmp_path, fit_args(synthetic_root, *interrupt_at(step, signal.SIGTERM)))
    assert code == 128 + signal.SIGTERM
    assert (
        "Stopped by SIGTERM. Continue with: python -m smile fit --ckpt_path last" in capsys.readouterr().err
    )
    saved = last_checkpoint(tmp_path)
    # the batch in progress when the signal came is finished, then the run saves and stops
    assert saved["global_step"] == step + 1
    assert saved["CelebADataModule"]["train_position"] == {"epoch": 1, "batches": 2}
    assert saved["smile_epoch_state"]["logged"], "the partial epoch's train/loss is saved"
    assert run_in(tmp_path, resume_args()) == 0
    figures = assert_same_run(reference, tmp_path)
    print(f"\nSIGTERM at step {step}, saved at {step + 1}, resumed; final figures {figures}")


def test_cached_and_augmented_run_resumes_exactly(synthetic_root: Path, tmp_path: Path) -> None:
    """The decoded cache's order and crops, and the batch augmentation, continue where they stopped."""
    augment = {"brightness": 0.3, "rotate": 10, "translate": 0.05, "erase": 0.5}
    extra = ["--data.cache", "true", "--data.cache_dir", str(tmp_path / "cache"),
             "--data.augment", json.dumps(augment)]  # fmt: skip
    assert run_in(tmp_path / "reference", fit_args(synthetic_root, *extra)) == 0
    step = BATCHES + 1
    interrupted = fit_args(synthetic_root, *extra, *interrupt_at(step, signal.SIGTERM))
    assert run_interrupted(tmp_path / "resumed", interrupted) == 128 + signal.SIGTERM
    assert last_checkpoint(tmp_path / "resumed")["global_step"] == step + 1
    assert run_in(tmp_path / "resumed", resume_args()) == 0
    assert_same_run(tmp_path / "reference", tmp_path / "resumed")


def test_ctrl_c_mid_epoch_finishes_the_batch_saves_and_stops(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Ctrl-C takes SIGTERM's path (whose resume the test above checks) instead of Lightning's abrupt stop."""
    step = BATCHES + 1
    # default_int_handler; SIG_IGN when pytest started in the background
    before = signal.getsignal(signal.SIGINT)
    code = run_interrupted(tmp_path, fit_args(synthetic_root, *interrupt_at(step, signal.SIGINT)))
    assert code == 128 + signal.SIGINT
    err = capsys.readouterr().err
    assert "SIGINT: finishing this batch, saving last.ckpt and stopping (Ctrl-C again to stop at once)" in err
    assert "Stopped by SIGINT" in err
    saved = last_checkpoint(tmp_path)
    assert saved["global_step"] == step + 1
    assert saved["CelebADataModule"]["train_position"] == {"epoch": 1, "batches": 2}
    assert signal.getsignal(signal.SIGINT) is before, "Ctrl-C handler restored"


def test_sigkill_mid_epoch_then_resume_in_a_new_process_is_exact(
    synthetic_root: Path, reference: Path, tmp_path: Path
) -> None:
    """For real: a subprocess with 2 loader workers and last.ckpt every 2 steps is SIGKILLed mid-epoch;
    this process resumes from last.ckpt; the end equals the uninterrupted run (which had no workers)."""
    marker = tmp_path / "progress.txt"
    throttle = f'[{{"class_path": "helpers.interrupts.Throttle", "init_args": {{"marker": "{marker}", "delay": 0.15}}}}]'
    env = smile_env()
    command = [sys.executable, "-m", "smile"]
    args = fit_args(synthetic_root, "--trainer.callbacks", throttle, workers=2, every=2)
    log = open(tmp_path / "killed.log", "w")  # noqa: SIM115
    process = subprocess.Popen([*command, *args], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    kill_at = (
        1,
        3,
    )  # epoch 1 (the second), when its fourth batch starts: steps 5-7 done, last.ckpt at step 6
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            fields = marker.read_text().split() if marker.is_file() else []
            if len(fields) == 3 and (int(fields[0]), int(fields[1])) >= kill_at:
                break
            time.sleep(0.02)
        assert process.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
    epoch, batch, killed_at_step = (int(v) for v in marker.read_text().split())
    saved = last_checkpoint(tmp_path)
    assert saved["epoch"] == 1 and 0 < saved["CelebADataModule"]["train_position"]["batches"] < BATCHES
    assert saved["global_step"] < killed_at_step + 1
    marker.unlink()

    assert run_interrupted(tmp_path, resume_args()) == 0  # in this process: a new one, as after a crash
    assert not marker.exists(), "the resumed run must not carry the throttle over"
    figures = assert_same_run(reference, tmp_path)
    print(
        f"\nSIGKILL in epoch {epoch} batch {batch} (step {killed_at_step}); resumed from last.ckpt at step "
        f"{saved['global_step']}; final figures {figures}"
    )


# --- checkpoints on disk -------------------------------------------------------------------------


def test_a_failed_checkpoint_write_leaves_the_previous_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint(
        {"state_dict": {"w": torch.ones(3)}, "hyper_parameters": {"attributes": ["Smiling"]}}, path
    )

    def dies_half_way(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # or SIGKILL: either way the rename never happens

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, path)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["state_dict"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"], "no temporary file left behind"


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_checkpoints_that_are_not_ours_or_truncated_are_clear_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "hyper_parameters": {"attributes": ["Smiling"]}}, good)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[:200])
    code = tmp_path / "code.ckpt"
    code.write_bytes(pickle.dumps({"state_dict": _Payload()}))
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": torch.ones(2)}, foreign)
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"lr": 1}}, other)
    html = tmp_path / "html.ckpt"
    html.write_text("<!DOCTYPE html><html>Quota exceeded</html>")
    for path, message in [
        (truncated, "not a readable checkpoint (truncated, or not a torch file)"),
        (code, "refused for safety: the file holds Python code or objects"),
        (foreign, "not a Lightning checkpoint (no state_dict)"),
        (other, "not a smile checkpoint"),
        (html, "not a readable checkpoint"),
        (tmp_path / "missing.ckpt", "checkpoint not found"),
    ]:
        with pytest.raises(CheckpointError, match=re.escape(message)) as info:
            load_checkpoint(path)
        assert str(path) in str(info.value)
    # Lightning's own loading (the resume itself) refuses code the same way, in one line
    with pytest.raises(CheckpointError, match="refused for safety"):
        AtomicCheckpointIO().load_checkpoint(code)
    assert isinstance(AtomicCheckpointIO(), TorchCheckpointIO)


# --- the data order ------------------------------------------------------------------------------


def test_epoch_order_depends_on_seed_and_epoch_only_and_skips_on_resume() -> None:
    sampler = EpochSampler(10, shuffle=True, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(10)) and first == list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first and sorted(second) == list(range(10))
    resumed = EpochSampler(10, shuffle=True, seed=3, epoch=1, skip=4, with_epoch=True)
    assert list(resumed) == [(1, i) for i in second[4:]]
    assert list(resumed) == [(1, i) for i in second], "skipping applies to the resumed epoch only"
    assert len(resumed) == 10


def test_evaluation_shards_cover_the_split_exactly_once() -> None:
    shards = [list(EpochSampler(11, shuffle=False, num_replicas=3, rank=r, pad=False)) for r in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(11))
    assert [len(s) for s in shards] == [4, 4, 3]
    train = [list(EpochSampler(11, shuffle=True, num_replicas=3, rank=r)) for r in range(3)]
    assert [len(s) for s in train] == [4, 4, 4], "training shards are padded to equal step counts"


def test_augmentation_depends_on_seed_epoch_and_index_only() -> None:
    class Noise(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, index: int) -> torch.Tensor:
            return torch.rand(3)

    items = SeededItems(Noise(), seed=5)
    a = items[(0, 2)]
    torch.rand(100)  # whatever ran before in the process
    assert torch.equal(items[(0, 2)], a)
    assert not torch.equal(items[(1, 2)], a) and not torch.equal(items[(0, 3)], a)
    state = torch.get_rng_state()
    items[(0, 1)]
    assert torch.equal(torch.get_rng_state(), state), "the process's own stream is left as it was"
