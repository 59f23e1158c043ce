"""Exit codes and the one mapping from errors to them (DESIGN.md): 0 all done; 1 some scenes failed or a
gate or threshold was missed; 2 bad input (the message names the file and the field, nothing is
written); 130 interrupted (a render folder resumes with --resume)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from render_tag_shared.errors import InputError

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "guarded"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def guarded(action: Callable[[], int]) -> int:
    """Runs a command: bad input is reported (exit 2, nothing written), Ctrl-C outside the pool exits 130."""
    try:
        return action()
    except InputError as exc:
        print(f"render-tag: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # before the pool started, or after it: nothing half done
        print("render-tag: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
