"""A checkpoint saved under one transformers release loads and generates identically under another, natively and
through remote code (a process that cannot import scratchformers).

Needs a second Python environment with another transformers version: `SF_OTHER_PYTHON=/path/to/python`. `.ci/run`
sets it when it runs the suite at the floor version (pointing at the newest release's environment); without it the
tests skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import transformers
from conftest import BLOCKER
from families import FAMILIES as ALL_FAMILIES

OTHER = os.environ.get("SF_OTHER_PYTHON")
pytestmark = pytest.mark.skipif(not OTHER, reason="set SF_OTHER_PYTHON to a Python with another transformers version")

FAMILIES = {name: ALL_FAMILIES[name] for name in ("gpt", "transformer", "rnn")}  # the generating families
PROMPT = [[5, 9, 13, 7, 21, 30]]

# Run in either environment: load each family's checkpoint with its Auto class; print greedy/beam tokens and the
# first decoding step's logits per family as one JSON line.
LOAD_AND_GENERATE = """
import json, torch, transformers
results = {"version": transformers.__version__}
for family, (auto, folder) in FOLDERS.items():
    model = getattr(transformers, auto).from_pretrained(folder, trust_remote_code=True).eval()
    assert NATIVE == ("scratchformers" in type(model).__module__), type(model).__module__
    x = torch.tensor(PROMPT)
    tokens = model.generate(x, max_new_tokens=8, min_new_tokens=8, do_sample=False, num_beams=2).tolist()
    with torch.no_grad():
        if model.config.is_encoder_decoder:
            logits = model(input_ids=x, decoder_input_ids=torch.tensor([[model.config.decoder_start_token_id]])).logits
        else:
            logits = model(x).logits
    results[family] = {"tokens": tokens, "logits": logits[0, -1].tolist()}
print(json.dumps(results))
"""

SAVE = """
import torch, scratchformers
for family, (config, model, kwargs, folder) in SAVES.items():
    torch.manual_seed(0)
    getattr(scratchformers, model)(getattr(scratchformers, config)(**kwargs)).eval().save_pretrained(folder)
"""


def run(python: str, code: str, blocked: bool, **constants) -> dict:
    """Run `code` with `python` (scratchformers import blocked if asked), `constants` defined as Python literals;
    return the JSON it prints last."""
    header = "".join(f"{name} = {value!r}\n" for name, value in constants.items())
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH="")
    done = subprocess.run([python, "-c", (BLOCKER if blocked else "") + header + textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


@pytest.mark.parametrize("direction", ["saved-here", "saved-there"])
def test_checkpoints_load_and_generate_identically_across_versions(direction, tmp_path):
    folders = {name: (family.auto_lm.__name__, str(tmp_path / name)) for name, family in FAMILIES.items()}
    saves = {name: (family.config_class.__name__, family.lm.__name__, family.tiny, folders[name][1])
             for name, family in FAMILIES.items()}
    run(sys.executable if direction == "saved-here" else OTHER, SAVE, blocked=False, SAVES=saves)
    load = dict(FOLDERS=folders, PROMPT=PROMPT)
    results = {
        "native here": run(sys.executable, "import scratchformers\n" + LOAD_AND_GENERATE, False, NATIVE=True, **load),
        "remote code here": run(sys.executable, LOAD_AND_GENERATE, True, NATIVE=False, **load),
        "remote code there": run(OTHER, LOAD_AND_GENERATE, True, NATIVE=False, **load),
        "native there": run(OTHER, "import scratchformers\n" + LOAD_AND_GENERATE, False, NATIVE=True, **load),
    }
    versions = {name: result.pop("version") for name, result in results.items()}
    assert versions["native here"] == transformers.__version__ != versions["native there"], versions
    reference = results["native here"]
    for name, result in results.items():
        for family in FAMILIES:
            assert result[family]["tokens"] == reference[family]["tokens"], (family, name, versions)
            torch.testing.assert_close(torch.tensor(result[family]["logits"]),
                                       torch.tensor(reference[family]["logits"]), atol=1e-5, rtol=1e-5,
                                       msg=lambda m, f=family, n=name: f"{f}, {n} ({versions[n]}): {m}")
    for name, family in FAMILIES.items():
        assert type(family.auto_lm.from_pretrained(folders[name][1])) is family.lm
