"""Resume after a kill: a run killed (SIGKILL) after its first epoch checkpoint, resumed in another
process, ends with exactly the weights of the same run left alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from imagefiles import SIZE, TINY_ARCH, write_class_folders
from pixclass import Learner
from pixclass.errors import PixclassError
from pixclass.train.resume import read_last_checkpoint

EPOCHS = 3
LR = slice(1e-4, 1e-3)

# The training script, shared by the killed subprocess and the in-process runs: the unfrozen
# stage reads augmented images and uses dropout, so every RNG matters.
SETUP = f"""
from pixclass import ImageData, Learner
from pixclass.train.checkpoint import seed_everything


def make_learner(images, run):
    seed_everything(0)
    data = ImageData.from_folder(images, valid_pct=0.25, seed=0, size={SIZE}, bs=6, num_workers=0)
    learn = Learner(data, arch="{TINY_ARCH}", pretrained=False, path=run, progress=False,
                    checkpoint_every_epoch=True)
    learn.unfreeze()
    return learn
"""

CHILD = SETUP + f"""

if __name__ == "__main__":
    import sys, time

    learn = make_learner(sys.argv[1], sys.argv[2])
    # Wait after each checkpoint so the parent can kill between epochs 1 and 2.
    learn.on_epoch_end.append(lambda learn, row: time.sleep(120))
    learn.fit_one_cycle({EPOCHS}, lr=slice({LR.start}, {LR.stop}))
"""


def make_learner(images: Path, run: Path) -> Learner:
    namespace: dict = {}
    exec(SETUP, namespace)
    return namespace["make_learner"](images, run)


def run_and_kill_after_first_checkpoint(tmp_path: Path, images: Path, run: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(CHILD)
    pointer = run / "checkpoints" / "last.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, str(script), str(images), str(run)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while not pointer.exists():
            if child.poll() is not None:
                pytest.fail(f"training script ended early:\n{child.stdout.read().decode()}")
            if time.monotonic() > deadline:
                pytest.fail("no checkpoint after 240 s")
            time.sleep(0.1)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_a_killed_run_resumes_to_exactly_the_uninterrupted_weights(tmp_path):
    images = write_class_folders(tmp_path / "colours")

    run_and_kill_after_first_checkpoint(tmp_path, images, tmp_path / "killed")
    learn = make_learner(images, tmp_path / "killed")
    pointer = read_last_checkpoint(learn.path)
    assert pointer["epoch"] == 0 and pointer["epochs"] == EPOCHS
    state = learn.restore(pointer)
    learn.fit_one_cycle(EPOCHS, lr=LR, resume=state)

    alone = make_learner(images, tmp_path / "alone")
    alone.fit_one_cycle(EPOCHS, lr=LR)

    resumed, expected = learn.model.state_dict(), alone.model.state_dict()
    different = [k for k in expected if not torch.equal(resumed[k], expected[k])]
    assert different == []
    strip = lambda rows: [{k: v for k, v in r.items() if k != "time"} for r in rows]  # noqa: E731
    assert strip(learn.recorder.rows) == strip(alone.recorder.rows)
    assert learn.recorder.lrs == alone.recorder.lrs and learn.recorder.batch_losses == alone.recorder.batch_losses


def test_only_the_newest_checkpoint_is_kept_and_last_json_names_it(class_folders, tmp_path):
    learn = make_learner(class_folders, tmp_path / "run")
    learn.freeze()  # cached features: fast

    learn.fit_one_cycle(2, lr=1e-2)

    folder = tmp_path / "run" / "checkpoints"
    pointer = json.loads((folder / "last.json").read_text())
    assert sorted(p.name for p in folder.iterdir()) == ["epoch-1.safetensors", "epoch-1.state.pt", "last.json"]
    assert pointer["weights"] == "epoch-1.safetensors" and pointer["epoch"] == 1
    assert [r["epoch"] for r in pointer["rows"]] == [0, 1]


def test_no_checkpoint_reads_as_none(tmp_path):
    assert read_last_checkpoint(tmp_path / "never-trained") is None


def test_a_damaged_pointer_is_a_clear_error(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.json").write_text('{"weights": "epoch-0.safet')

    with pytest.raises(PixclassError, match="checkpoint pointer .*last.json' is damaged"):
        read_last_checkpoint(tmp_path)


class Interrupted(Exception):
    pass


def stop_after_first_epoch(learn: Learner, row: dict) -> None:
    raise Interrupted


def test_the_frozen_cached_feature_stage_also_resumes_exactly(class_folders, tmp_path):
    interrupted = make_learner(class_folders, tmp_path / "interrupted")
    interrupted.freeze()
    interrupted.on_epoch_end.append(stop_after_first_epoch)
    with pytest.raises(Interrupted):
        interrupted.fit_one_cycle(EPOCHS, lr=1e-2)

    learn = make_learner(class_folders, tmp_path / "interrupted")
    state = learn.restore(read_last_checkpoint(learn.path))
    assert learn.uses_cache
    learn.fit_one_cycle(EPOCHS, lr=1e-2, resume=state)
    alone = make_learner(class_folders, tmp_path / "alone")
    alone.freeze()
    alone.fit_one_cycle(EPOCHS, lr=1e-2)

    resumed, expected = learn.model.state_dict(), alone.model.state_dict()
    assert [k for k in expected if not torch.equal(resumed[k], expected[k])] == []
