"""The one-command demo: tokenizer + small GPT on the shipped prose → perplexity → Hub-ready checkpoint → reload via
``AutoModelForCausalLM.from_pretrained(..., trust_remote_code=True)`` in a fresh process → sample → plots.

It runs the same training script a user points at their own files (``scratchformers train clm``), with the network
closed (``HF_HUB_OFFLINE=1``). Outputs, all under ``--output-dir`` (default ``outputs/demo-gpt``):

- ``checkpoint/``: weights, config with ``auto_map``, modeling code, tokenizer, ``README.md`` model card
- ``loss_curve.png``, ``attention.png`` (layer × head grid for a sample sentence), ``positional_encoding.png`` (the
  model's own position encoding: for the GPT's learned positions, its table and the similarity of its positions)
- ``results.json``: validation loss and perplexity, the sample, timings, the paths above

Each family has its own default folder (``outputs/demo-gpt``, ``outputs/demo-bert``, ``outputs/demo-translation``);
an existing, non-empty folder is refused unless ``overwrite=True`` (``--overwrite``).
``--family bert`` (fill-mask) and ``--family translation`` run the BERT and encoder-decoder scripts
(``scratchformers.examples.load_script("mlm" | "translation")``) when those families are installed.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from scratchformers_light.names import DEMO_FAMILIES as FAMILIES

from .folders import keeps_earlier_run, replace_later

SAMPLE_SENTENCE = "The import statement finds a module and binds it to a name."
PROMPT = "The import statement"


def _timed(timings: dict[str, float], name: str, step: Callable, *args, **kwargs):
    """Run ``step(*args, **kwargs)``, record its wall time in seconds under ``name`` and print it."""
    start = time.perf_counter()
    result = step(*args, **kwargs)
    timings[name] = round(time.perf_counter() - start, 2)
    print(f"    ({name}: {timings[name]:.1f} s)")
    return result


def reload_and_generate(checkpoint: str | os.PathLike, prompt: str, max_new_tokens: int = 40) -> dict[str, str]:
    """Load ``checkpoint`` in a fresh Python process with ``trust_remote_code=True`` (as a Hub user would) and sample.

    The child never imports scratchformers: the classes come from the code files saved in the checkpoint. Returns
    ``{"class": <module.Class of the loaded model>, "text": <prompt + continuation>}``.
    """
    code = textwrap.dedent(
        f"""
        import json, torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        tok = AutoTokenizer.from_pretrained({str(checkpoint)!r}, trust_remote_code=True)
        model = AutoModelForCausalLM.from_pretrained({str(checkpoint)!r}, trust_remote_code=True).eval()
        inputs = tok({prompt!r}, return_tensors="pt")
        torch.manual_seed(0)
        out = model.generate(**inputs, max_new_tokens={max_new_tokens}, do_sample=True, top_k=40, temperature=0.8,
                             pad_token_id=tok.pad_token_id)
        cls = type(model).__module__ + "." + type(model).__name__
        print(json.dumps({{"class": cls, "text": tok.decode(out[0], skip_special_tokens=True)}}))
        """
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONPATH="")
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False, cwd=str(checkpoint)
    )
    if done.returncode != 0:
        raise RuntimeError(f"reloading {checkpoint} in a fresh process failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _plot_outputs(checkpoint: Path, out: Path, model_class: str, kind_text: str) -> dict[str, str]:
    """Loss curve, attention grid for ``kind_text`` and the positional-encoding plot; returns their paths."""
    import transformers

    import scratchformers  # noqa: F401  (registers the scratch_* types)

    from . import viz

    history = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    model = getattr(transformers, model_class).from_pretrained(str(checkpoint), attn_implementation="eager")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(checkpoint))
    paths = {
        "loss_curve": viz.plot_loss_curve(history, out / "loss_curve.png"),
        "attention": viz.plot_attention(model, tokenizer, kind_text, out / "attention.png"),
        "positional_encoding": viz.plot_positional_encoding(64, path=out / "positional_encoding.png", model=model),
    }
    return {k: str(v) for k, v in paths.items()}


def _train_argv(checkpoint: Path, max_steps: int, seed: int, extra: list[str]) -> list[str]:
    """The TrainingArguments flags the demo passes to a training script (a short cosine run, eval 4 times)."""
    from .examples.common import tensorboard_available

    return [
        "--output_dir", str(checkpoint),
        "--max_steps", str(max_steps),
        "--learning_rate", "1e-3",
        "--warmup_steps", str(max(1, max_steps // 20)),
        "--lr_scheduler_type", "cosine",
        "--weight_decay", "0.01",
        "--logging_steps", str(max(1, max_steps // 40)),
        "--eval_strategy", "steps",
        "--eval_steps", str(max(1, max_steps // 4)),
        "--save_strategy", "no",
        "--seed", str(seed),
        "--report_to", "tensorboard" if tensorboard_available() else "none",
        "--use_cpu", "true",
        *extra,
    ]  # fmt: skip


def demo_output_dir(output_dir: str | os.PathLike | None, family: str, overwrite: bool) -> Path:
    """The demo's folder: ``output_dir`` or ``outputs/demo-<family>`` (so the families never share one).

    A folder that already holds files (an earlier demo's checkpoint, plots and results) is refused unless
    ``overwrite``, which moves them aside (``folders.replace_later``; deleted when the demo finishes, put back when it
    fails): one run never silently replaces or mixes with another.
    ValueError for a path that is a file or a non-empty folder without ``overwrite``.
    """
    out = Path(output_dir if output_dir is not None else f"outputs/demo-{family}")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--output-dir {str(out)!r} is a file; give a folder path")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(
                f"--output-dir {str(out)!r} already holds an earlier run; pass --overwrite to replace it or choose "
                "another folder with --output-dir"
            )
        replace_later(out)
    out.mkdir(parents=True, exist_ok=True)
    return out.resolve()


@keeps_earlier_run
def run_demo(
    output_dir: str | os.PathLike | None = None,
    max_steps: int = 400,
    family: str = "gpt",
    config: str | os.PathLike | None = None,
    block_size: int = 64,
    vocab_size: int = 2048,
    batch_size: int = 16,
    seed: int = 0,
    overwrite: bool = False,
) -> dict:
    """Train, evaluate, save, reload in a fresh process, generate and plot; returns (and writes) ``results.json``.

    Everything goes to ``output_dir`` (default ``outputs/demo-<family>``), which must be new or empty unless
    ``overwrite`` (see ``demo_output_dir``).
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; allowed: {', '.join(FAMILIES)}")
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps} (--max-steps)")
    if config is not None and not Path(config).is_file():
        from .examples.common import shipped_config

        if not shipped_config(config).is_file():
            raise ValueError(f"--config {str(config)!r} does not exist")
    out = demo_output_dir(output_dir, family, overwrite)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if family != "gpt":
        return _run_other_family(family, out, max_steps, seed, config)

    from .examples import run_clm
    from .hub import check_upload_complete

    checkpoint = out / "checkpoint"
    timings: dict[str, float] = {}
    started = time.perf_counter()

    print(f"[1/5] training a byte-level BPE tokenizer (vocab {vocab_size}) and a small GPT ({max_steps} steps) "
          "on the shipped prose (data/prose)")
    argv = _train_argv(checkpoint, max_steps, seed, [
        "--vocab_size", str(vocab_size),
        "--block_size", str(block_size),
        "--per_device_train_batch_size", str(batch_size),
        "--per_device_eval_batch_size", "32",
    ])  # fmt: skip
    if config is not None:
        argv += ["--config", str(config)]
    metrics = _timed(timings, "train", run_clm.main, argv)
    print(f"[2/5] validation loss {metrics['eval_loss']:.3f} nats/token, perplexity {metrics['perplexity']:.1f}")

    missing = check_upload_complete(checkpoint)
    print(f"[3/5] saved a Hub-ready checkpoint to {checkpoint}"
          + (" (upload-complete)" if not missing else f" — MISSING: {'; '.join(missing)}"))

    print("      reloading it in a fresh process with AutoModelForCausalLM.from_pretrained(..., trust_remote_code=True)")
    sample = _timed(timings, "reload_and_generate", reload_and_generate, checkpoint, PROMPT)
    print(f"      loaded {sample['class']}\n      sample: {sample['text']!r}")

    print(f"[4/5] plotting the loss curve, attention for {SAMPLE_SENTENCE!r} and the position encoding the model uses")
    plots = _timed(timings, "plots", _plot_outputs, checkpoint, out, "AutoModelForCausalLM", SAMPLE_SENTENCE)

    timings["total"] = round(time.perf_counter() - started, 2)
    result = {
        "family": family,
        "checkpoint": str(checkpoint),
        "eval_loss": metrics["eval_loss"],
        "perplexity": metrics["perplexity"],
        "train_loss": metrics.get("train_loss"),
        "max_steps": max_steps,
        "upload_missing": missing,
        "reloaded_class": sample["class"],
        "prompt": PROMPT,
        "sample": sample["text"],
        "plots": plots,
        "timings_s": timings,
    }
    (out / "results.json").write_text(json.dumps(result, indent=2))
    _print_summary(out, result)
    return result


def _print_summary(out: Path, result: dict) -> None:
    """Where everything is, and what to run next."""
    lines = [
        f"[5/5] done in {result['timings_s']['total']:.0f} s. Everything is in {out}:",
        f"      checkpoint (weights, config, code, tokenizer, model card): {result['checkpoint']}",
        *(f"      {name.replace('_', ' ')}: {path}" for name, path in result["plots"].items()),
        f"      numbers: {out / 'results.json'}",
    ]
    runs = Path(result["checkpoint"]) / "runs"
    if runs.is_dir():
        lines.append(f"      TensorBoard logs: tensorboard --logdir {runs}")
    lines += [
        "next: scratchformers generate " + result["checkpoint"] + " --prompt 'A module'",
        "      scratchformers train clm --train_file your.txt --output_dir outputs/mine   (docs/getting-started.md)",
    ]
    print("\n".join(lines))


def _run_other_family(family: str, out: Path, max_steps: int, seed: int, config: str | os.PathLike | None) -> dict:
    """The BERT (fill-mask) and translation demos: run that family's training script, then use its checkpoint.

    Hook: these call ``scratchformers.examples.load_script("mlm" | "translation")``, i.e. ``scripts/run_mlm.py`` /
    ``scripts/run_translation.py`` from the BERT and seq2seq branches; where those are not installed the demo says so.
    """
    from .examples import load_script

    task = {"bert": "mlm", "translation": "translation"}[family]
    try:
        script = load_script(task)
    except FileNotFoundError as err:
        raise SystemExit(f"the {family} demo needs the {task} training script: {err}") from err
    checkpoint = out / "checkpoint"
    timings: dict[str, float] = {}
    started = time.perf_counter()
    # explicit, since an eval_strategy alone turns do_eval on and may leave do_train off in a script
    extra = ["--do_train", "--do_eval"] + (["--config", str(config)] if config is not None else [])
    print(f"[1/3] training the {family} family ({max_steps} steps) with scripts/run_{task}.py")
    metrics = _timed(timings, "train", script, _train_argv(checkpoint, max_steps, seed, extra))
    print(f"[2/3] metrics: { {k: v for k, v in (metrics or {}).items() if k.startswith('eval_') or k == 'perplexity'} }")
    import transformers

    import scratchformers  # noqa: F401

    from . import viz

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(checkpoint))
    plots: dict[str, str] = {}
    if family == "bert":
        model = transformers.AutoModelForMaskedLM.from_pretrained(str(checkpoint), attn_implementation="eager")
        fill = transformers.pipeline("fill-mask", model=model, tokenizer=tokenizer)
        masked = f"The import {tokenizer.mask_token} finds a module."
        sample = fill(masked)
        sample_text = [masked] + [f"{s['token_str']} ({s['score']:.2f}): {s['sequence']}" for s in sample]
        plots["attention"] = str(viz.plot_attention(model, tokenizer, SAMPLE_SENTENCE, out / "attention.png"))
    else:
        from .translate import translate  # written on the seq2seq branch

        model = transformers.AutoModelForSeq2SeqLM.from_pretrained(str(checkpoint), attn_implementation="eager")
        sample_text = translate(["The file was not found."], model, tokenizer)
        sample_text = [f"The file was not found. → {sample_text[0]}"]
        plots["attention"] = str(
            viz.plot_attention(model, tokenizer, "The file was not found.", out / "attention.png",
                               target_text=sample_text[0].split(" → ", 1)[1], kind="cross")
        )
    state = checkpoint / "trainer_state.json"
    if state.is_file():  # our scripts save it; a script that does not gets no loss curve
        history = json.loads(state.read_text())["log_history"]
        plots["loss_curve"] = str(viz.plot_loss_curve(history, out / "loss_curve.png"))
    plots["positional_encoding"] = str(viz.plot_positional_encoding(64, path=out / "positional_encoding.png",
                                                                   model=model))
    from .hub import check_upload_complete

    timings["total"] = round(time.perf_counter() - started, 2)
    result = {"family": family, "checkpoint": str(checkpoint), "metrics": metrics, "sample": sample_text,
              "upload_missing": check_upload_complete(checkpoint),
              "plots": plots, "timings_s": timings,
              "perplexity": (metrics or {}).get("perplexity", math.nan)}
    (out / "results.json").write_text(json.dumps(result, indent=2, default=str))
    print("[3/3] sample:\n      " + "\n      ".join(sample_text))
    print(f"      checkpoint ({'upload-complete' if not result['upload_missing'] else 'MISSING: ' + '; '.join(result['upload_missing'])}): {checkpoint}")
    print(f"      outputs in {out}: {', '.join(plots.values())}, results.json")
    return result
