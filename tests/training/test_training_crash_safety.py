"""A run folder survives kill -9 at any instant and a full disk, and resumes exactly.

The kill tests run ``lookalike train`` in a subprocess, SIGKILL it after a seeded random
delay (start-up, mid-epoch, while committing, during a resume's start-up), resume, and
repeat until the run finishes; the final weights must be byte-identical to an uninterrupted
run with the same seed, every epoch must be in metrics.jsonl exactly once, and ``best`` and
``last`` must load after every kill.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors import safe_open

from lookalike.cli import main
from lookalike.models.checkpoint import load_checkpoint

from ..conftest import fails

FLAGS = ["-P", "3", "-K", "4", "--batches-per-epoch", "3", "--embedding-dim", "8",
         "--val-fraction", "0.25", "--threads", "1", "--quiet", "--seed", "7",
         "--lr-schedule", "none"]


def command(data: Path, run: Path, epochs: int, resume: bool) -> list[str]:
    where = ["--resume", str(run)] if resume else ["--out", str(run), "--data", str(data)]
    return [sys.executable, "-m", "lookalike", "train", *where, "--epochs", str(epochs), *FLAGS]


def check_consistent(run: Path) -> None:
    """What a kill may leave: every checkpoint loads, the log has no epoch twice."""
    for name in ("last", "best"):
        if (run / name).exists():
            load_checkpoint(run / name)
    if (run / "metrics.jsonl").exists():
        lines = (run / "metrics.jsonl").read_bytes().split(b"\n")
        epochs = [json.loads(line)["epoch"] for line in lines[:-1]]  # the last may be torn
        assert epochs == list(range(1, len(epochs) + 1)), epochs


def killed_until_done(data: Path, run: Path, epochs: int, kills: int, seed: int,
                      seconds: float) -> int:
    """Start, kill at random moments ``kills`` times (resuming each time), then finish.

    Delays are drawn over the length of an uninterrupted run (``seconds``), so kills land
    in start-up, in epochs, in commits and in a resume's start-up alike.
    """
    rng = random.Random(seed)
    started, done = False, 0
    while done < kills:
        process = subprocess.Popen(command(data, run, epochs, resume=started),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.2, 0.9 * seconds))
        if process.poll() is not None:  # finished (or failed) before the kill
            assert process.returncode == 0, process.stderr.read() if process.stderr else ""
            started = True
            continue
        process.send_signal(signal.SIGKILL)
        process.wait()
        done += 1
        started = started or (run / "config.json").exists()
        check_consistent(run)
    final = subprocess.run(command(data, run, epochs, resume=started), capture_output=True,
                           check=False)
    assert final.returncode == 0, final.stderr.decode()
    return done


def weights(run: Path) -> dict[str, bytes]:
    """Every tensor's raw bytes, and the fingerprint. (Not the file's bytes: safetensors
    writes its metadata map in hash order, which changes from process to process.)"""
    with safe_open(str(run / "last" / "model.safetensors"), framework="pt") as handle:
        tensors = {name: handle.get_tensor(name).numpy().tobytes() for name in handle.keys()}  # noqa: SIM118  (a safetensors handle, not a dict)
        return {**tensors, "fingerprint": handle.metadata()["fingerprint"].encode()}


def uninterrupted(data: Path, run: Path, epochs: int) -> float:
    """Train without interruption; the wall-clock seconds it took."""
    started = time.perf_counter()
    subprocess.run(command(data, run, epochs, resume=False), check=True, capture_output=True)
    return time.perf_counter() - started


@pytest.mark.parametrize(("kills", "epochs"), [
    pytest.param(3, 14, id="quick"),
    pytest.param(12, 40, id="many", marks=pytest.mark.slow),
])
def test_repeated_kills_resume_to_the_uninterrupted_run(tiny_folder: Path, tmp_path: Path,
                                                        kills: int, epochs: int) -> None:
    seconds = uninterrupted(tiny_folder, tmp_path / "straight", epochs)
    made = killed_until_done(tiny_folder, tmp_path / "killed", epochs, kills, seed=kills,
                             seconds=seconds)
    assert made == kills
    assert weights(tmp_path / "killed") == weights(tmp_path / "straight")
    log = [json.loads(line) for line in
           (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == list(range(1, epochs + 1))
    check_consistent(tmp_path / "killed")


def test_a_torn_log_line_and_uncommitted_epochs_are_cut_not_the_history(tiny_folder: Path,
                                                                        tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_folder), "--out", str(run), "--epochs", "2",
                 *FLAGS]) == 0
    log = run / "metrics.jsonl"
    committed = log.read_bytes()
    # an epoch logged but killed before its commit, then a line torn by a second kill
    log.write_bytes(committed + b'{"epoch": 3, "train_loss": 1.0}\n{"epoch": 4, "tr')
    assert main(["train", "--resume", str(run), "--epochs", "3", *FLAGS]) == 0
    lines = log.read_bytes().split(b"\n")
    assert log.read_bytes().startswith(committed)
    assert [json.loads(line)["epoch"] for line in lines if line] == [1, 2, 3]
    assert json.loads(lines[2])["train_loss"] != 1.0


def test_only_the_current_and_previous_generation_are_kept(tiny_folder: Path,
                                                           tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_folder), "--out", str(run), "--epochs", "4",
                 *FLAGS]) == 0
    kept = sorted(p.name for p in (run / "generations").iterdir())
    assert kept == ["g000003", "g000004"]
    assert (run / "current").resolve().name == "g000004"
    assert (run / "last").resolve() == (run / "generations" / "g000004" / "last").resolve()


def test_non_finite_weights_are_never_saved(tiny_folder: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_folder), "--out", str(run), "--epochs", "1",
                 *FLAGS]) == 0
    good = weights(run)
    from lookalike.training import fit

    original = fit.train_step

    def poisoned(state, loss_fn, images, labels):  # the epoch's last step leaves NaN weights
        result = original(state, loss_fn, images, labels)
        if state.progress.batches_done == 2:
            next(state.model.parameters()).data.fill_(float("nan"))
        return result

    monkeypatch.setattr(fit, "train_step", poisoned)
    message = fails(capsys, ["train", "--resume", str(run), "--epochs", "2", *FLAGS])
    assert "non-finite" in message and "the checkpoint saved at epoch 1" in message
    assert weights(run) == good


@pytest.mark.parametrize("option", [["--lr", "inf"], ["--lr", "nan"], ["--weight-decay", "nan"],
                                    ["--seed", "-1"], ["--threads", "-1"], ["--workers", "-1"],
                                    ["--margin", "inf"], ["--epochs", "0"]])
def test_bad_numbers_are_refused_naming_the_option(tiny_folder: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   option: list[str]) -> None:
    message = fails(capsys, ["train", "--data", str(tiny_folder), "--out", str(tmp_path / "r"),
                             *option])
    assert option[0] in message and "must be a number in" in message
    assert not (tmp_path / "r").exists()


def mount_tmpfs(folder: Path, size: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                   check=True, capture_output=True)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mount") is None,
                    reason="mounting a small tmpfs needs root")
def test_a_full_disk_stops_with_one_line_and_resumes_exactly(tiny_folder: Path,
                                                             tmp_path: Path) -> None:
    uninterrupted(tiny_folder, tmp_path / "straight", 12)
    disk = tmp_path / "disk"
    try:
        mount_tmpfs(disk, "1200k")
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot mount tmpfs here: {exc.stderr.decode().strip()}")
    try:
        run = disk / "run"
        full = subprocess.run(command(tiny_folder, run, 12, resume=False), capture_output=True,
                              text=True, check=False)
        assert full.returncode == 1, full.stderr
        lines = full.stderr.strip().splitlines()
        assert len(lines) == 1 and "the disk is full" in lines[0] and str(disk) in lines[0]
        check_consistent(run)
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        resumed = subprocess.run(command(tiny_folder, run, 12, resume=True),
                                 capture_output=True, text=True, check=False)
        assert resumed.returncode == 0, resumed.stderr
        assert weights(run) == weights(tmp_path / "straight")
        log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in log] == list(range(1, 13))
    finally:
        subprocess.run(["umount", str(disk)], check=False)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mount") is None,
                    reason="mounting a small tmpfs needs root")
def test_a_full_disk_while_caching_images_is_one_error_not_a_crash(tiny_folder: Path,
                                                                   tmp_path: Path) -> None:
    from lookalike.data import open_collection
    from lookalike.data.pipeline import cache_resized
    from lookalike.errors import DiskFullError

    disk = tmp_path / "cache"
    try:
        mount_tmpfs(disk, "64k")
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot mount tmpfs here: {exc.stderr.decode().strip()}")
    try:  # 48 images at 64 px need 590 KB: the reservation fails before any page is mapped
        with pytest.raises(DiskFullError, match="the disk is full"):
            cache_resized(open_collection(tiny_folder), 64, 3, disk, progress=False,
                          log=lambda _: None)
        assert not list(disk.glob("images-*.npy"))
    finally:
        subprocess.run(["umount", str(disk)], check=False)
