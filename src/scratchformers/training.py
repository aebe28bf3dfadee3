"""Crash-safe training with the Hugging Face Trainer: checkpoints appear all at once or not at all.

The Trainer (transformers 5.x) writes `checkpoint-N/` file by file in place, so a run killed mid-save leaves a
half-written `checkpoint-N/` that `get_last_checkpoint` — and `train(resume_from_checkpoint=True)` — then picks up
and fails on (or, worse, resumes from with a missing optimizer state). `AtomicCheckpointTrainer` writes every
checkpoint into a staging folder `output_dir/.incomplete-checkpoints/checkpoint-N/`, flushes it to disk, waits for
every process, and only then renames it to `output_dir/checkpoint-N/` (one `rename`, atomic on POSIX file systems).
A checkpoint folder under `output_dir` is therefore always complete.

The model is saved as safetensors and the training arguments as `training_args.json` (the Trainer's own
`training_args.bin` is a pickle and is not written). The optimizer/scheduler/RNG files are the Trainer's
`torch.save` files, which it reads back with `torch.load(weights_only=True)`.

`get_last_complete_checkpoint` additionally skips incomplete folders left by a plain `Trainer`, so resuming a run
started without this module is safe too.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Any

from transformers import Seq2SeqTrainer, Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

STAGING_DIR = ".incomplete-checkpoints"
TRAINER_STATE_NAME = "trainer_state.json"
TRAINING_ARGS_JSON = "training_args.json"
_CHECKPOINT_RE = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors")


def is_complete_checkpoint(folder: str | os.PathLike) -> bool:
    """True when `folder` holds what a resume needs: `trainer_state.json` and the model weights (safetensors)."""
    folder = os.fspath(folder)
    if not os.path.isfile(os.path.join(folder, TRAINER_STATE_NAME)):
        return False
    if any(os.path.isfile(os.path.join(folder, name)) for name in _WEIGHT_FILES):
        return True
    # FSDP sharded state dicts are saved as a folder per model
    return any(name.startswith("pytorch_model_fsdp") for name in os.listdir(folder))


def get_last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The `checkpoint-N` folder with the largest N that is complete (see `is_complete_checkpoint`), else None."""
    output_dir = os.fspath(output_dir)
    if not os.path.isdir(output_dir):
        return None
    steps = []
    for name in os.listdir(output_dir):
        match = _CHECKPOINT_RE.match(name)
        path = os.path.join(output_dir, name)
        if match and os.path.isdir(path) and is_complete_checkpoint(path):
            steps.append((int(match.group(1)), path))
    return max(steps)[1] if steps else None


def _fsync_tree(folder: str) -> None:
    """Flush every file under `folder` (and the folders themselves) to disk, so a rename never publishes cached data."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(root)


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicCheckpoints:
    """For a `Trainer` class: checkpoints written to a staging folder and renamed into place when complete; the
    training arguments saved as JSON; `train(resume_from_checkpoint=True)` resumes from the last *complete*
    checkpoint (`get_last_complete_checkpoint`). Mixed into `AtomicCheckpointTrainer` and
    `AtomicCheckpointSeq2SeqTrainer`, which every `scratchformers train` task uses.
    """

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        run_dir = self._get_output_dir(trial=trial)
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staging_root = os.path.join(run_dir, STAGING_DIR)
        staging, final = os.path.join(staging_root, name), os.path.join(run_dir, name)
        if self.args.should_save and os.path.isdir(staging):  # left over from a run killed mid-save
            shutil.rmtree(staging)
        self.accelerator.wait_for_everyone()

        # The parent class builds `<run_dir>/checkpoint-N` from `_get_output_dir`: point it at the staging root.
        self._get_output_dir = lambda trial=None: staging_root  # type: ignore[method-assign]
        try:
            super()._save_checkpoint(model, trial)
        finally:
            del self._get_output_dir  # back to the class method

        self.accelerator.wait_for_everyone()  # every rank has written its part (e.g. rng_state_{rank}.pth)
        if self.args.should_save:
            if self.state.best_model_checkpoint == staging:  # the parent recorded the staging path as the best
                self.state.best_model_checkpoint = final
                self.state.save_to_json(os.path.join(staging, TRAINER_STATE_NAME))
            _fsync_tree(staging)
            if os.path.isdir(final):  # re-saving a step (e.g. after a resume): replace the old copy
                shutil.rmtree(final)
            os.rename(staging, final)
            _fsync_dir(run_dir)
            if not os.listdir(staging_root):
                os.rmdir(staging_root)
            rotate_checkpoints(
                output_dir=run_dir,
                save_total_limit=self.args.save_total_limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=True,
            )
        self.accelerator.wait_for_everyone()

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """Save as the Trainer does, but the training arguments as JSON instead of a pickled `training_args.bin`."""
        super()._save(output_dir, state_dict)
        if not self.args.should_save:
            return
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        pickled = os.path.join(output_dir, "training_args.bin")
        if os.path.isfile(pickled):
            os.remove(pickled)
        with open(os.path.join(output_dir, TRAINING_ARGS_JSON), "w", encoding="utf-8") as f:
            f.write(self.args.to_json_string())

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs: Any):
        """`Trainer.train`, but `resume_from_checkpoint=True` picks the last complete checkpoint."""
        if resume_from_checkpoint is True:
            resume_from_checkpoint = get_last_complete_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise ValueError(f"No complete checkpoint found in output_dir ({self.args.output_dir}).")
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)


class AtomicCheckpointTrainer(AtomicCheckpoints, Trainer):
    """A `Trainer` whose checkpoints appear all at once or not at all (`AtomicCheckpoints`). Drop-in:
    `AtomicCheckpointTrainer(model=..., args=..., train_dataset=...)`."""


class AtomicCheckpointSeq2SeqTrainer(AtomicCheckpoints, Seq2SeqTrainer):
    """A `Seq2SeqTrainer` whose checkpoints appear all at once or not at all (`AtomicCheckpoints`)."""
