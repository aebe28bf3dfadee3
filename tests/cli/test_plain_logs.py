"""No raw colour codes in what our commands log when stderr is not a terminal (issue 15): transformers colours its
weight-loading report (MISSING keys here) whenever stdout is a terminal, and older 5.x releases always do."""

from __future__ import annotations

import sys

from journey_helpers import tiny_checkpoint
from safetensors.torch import load_file, save_file

from scratchformers_cli import main


def test_the_load_report_of_a_command_has_no_colour_codes(tmp_path, caplog, monkeypatch):
    checkpoint = tiny_checkpoint(tmp_path / "ckpt")
    weights = load_file(checkpoint / "model.safetensors")
    dropped = next(k for k in weights if k.endswith("norm.weight"))
    save_file({k: v for k, v in weights.items() if k != dropped}, checkpoint / "model.safetensors",
              metadata={"format": "pt"})
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # a terminal on stdout, a log file on stderr
    assert main(["generate", str(checkpoint), "--prompt", "The", "--max-new-tokens", "2", "--greedy"]) == 0
    err = "\n".join(record.getMessage() for record in caplog.records)  # what any log handler writes
    assert "MISSING" in err and dropped.split(".")[-2] in err  # the report was logged ...
    assert "\x1b[" not in err  # ... without colour codes
