"""Replacing a user's earlier run only once the new one has succeeded.

Every command that writes a folder (the training scripts, ``demo``, ``convert``) refuses a non-empty one unless the
user asks to overwrite it. Asking to overwrite must not cost the earlier run when the new one then fails (a bad flag
or file found after the folder check, an out-of-memory error, Ctrl-C): ``replace_later`` moves the earlier contents
aside, and ``keeps_earlier_run`` deletes them when the command returns normally or puts them back when it raises.
A process killed outright (SIGKILL) leaves the earlier run in the hidden sibling ``.NAME.replaced-PID``.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

# (folder, its earlier contents moved aside) for the command in progress
_MOVED_ASIDE: list[tuple[Path, Path]] = []


def replace_later(folder: str | os.PathLike) -> Path:
    """Move ``folder`` (an existing folder the user asked to overwrite) to the hidden sibling ``.NAME.replaced-PID``,
    leaving ``folder`` free for the new run; ``keeps_earlier_run`` decides later whether it is deleted or restored.
    Outside a ``keeps_earlier_run`` command the earlier contents are deleted at once. Returns ``folder`` as a Path."""
    out = Path(folder)
    aside = out.with_name(f".{out.name}.replaced-{os.getpid()}")
    if aside.exists():
        shutil.rmtree(aside)
    out.rename(aside)
    if _ACTIVE:
        _MOVED_ASIDE.append((out, aside))
    else:
        shutil.rmtree(aside)
    return out


_ACTIVE: list[bool] = []


def keeps_earlier_run(command: F) -> F:
    """Decorate a command (a script's ``main``) so that folders it replaced with ``replace_later`` are deleted when it
    returns and restored when it raises anything (KeyboardInterrupt and SystemExit included; the exception then
    propagates). Whatever the failed command wrote into such a folder is removed first."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        outer = bool(_ACTIVE)
        _ACTIVE.append(True)
        mark = len(_MOVED_ASIDE)
        try:
            result = command(*args, **kwargs)
        except BaseException:
            for out, aside in reversed(_MOVED_ASIDE[mark:]):
                if out.exists():
                    shutil.rmtree(out)
                aside.rename(out)
            raise
        else:
            if not outer:  # an enclosing command decides for its own folders
                for _, aside in _MOVED_ASIDE[mark:]:
                    shutil.rmtree(aside, ignore_errors=True)
            return result
        finally:
            _ACTIVE.pop()
            if not outer:
                del _MOVED_ASIDE[mark:]

    return wrapper  # type: ignore[return-value]
