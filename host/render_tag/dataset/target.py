"""`render-tag target`: the printable sheet of a board (SVG + PDF at true scale) and its target file.

The board comes from a config (its BOARD subject, with the subject's `margin_mm` as the sheet's
margin unless one is given) or from a board spec: a YAML/JSON file or an inline YAML mapping holding
the BoardDefinition fields, e.g. `'{board_type: checkerboard, rows: 7, cols: 10, square_size_mm: 25}'`.
Beside the sheet: Kalibr's `target.yaml` (AprilGrid, checkerboard) or OpenCV's ChArUco parameters
(`charuco_board.yaml`; Kalibr has no ChArUco target), and `board.json` (the definition itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from render_tag_shared.boards import BoardDefinition
from render_tag_shared.config import BoardSubject, read_config_data
from render_tag_shared.errors import InputError, input_error_from_validation
from render_tag_shared.printable import pdf_bytes, sheet, svg_text

from ..io import write_bytes_atomic, write_json_atomic, write_text_atomic
from .exports import charuco_parameters_yaml, kalibr_target_yaml

__all__ = ["DEFAULT_MARGIN_MM", "TargetSource", "read_target_source", "write_target"]

DEFAULT_MARGIN_MM = 10.0
"""White margin around the pattern when neither the config nor the command gives one."""


@dataclass(frozen=True)
class TargetSource:
    board: BoardDefinition
    margin_mm: float | None  # the config subject's margin, if it has one above 0


def _board(data: Any, source: str, prefix: str) -> BoardDefinition:
    if not isinstance(data, dict):
        raise InputError(source, prefix, "must be a mapping of board fields (board_type, rows, cols, ...)")
    fields = {k: v for k, v in data.items() if k not in ("type", "margin_mm")}
    try:
        return BoardDefinition.model_validate(fields)
    except ValidationError as exc:
        raise input_error_from_validation(source, exc, prefix=prefix, data=fields) from None


def read_target_source(spec: str) -> TargetSource:
    """A config file (scenario.subject), a board spec file, or an inline YAML mapping of board fields."""
    path = Path(spec)
    if path.is_file():
        data = read_config_data(path)
        if isinstance(data, dict) and "scenario" in data:
            scenario = data["scenario"]
            subject = scenario.get("subject") if isinstance(scenario, dict) else None
            field = "scenario.subject"
            if not isinstance(subject, dict) or subject.get("type") != "BOARD":
                raise InputError(spec, field, "is not a BOARD subject: only a board has a printable target")
            board = _board(subject, spec, field)
            try:
                margin = BoardSubject.model_validate(subject).margin_mm
            except ValidationError as exc:
                raise input_error_from_validation(spec, exc, prefix=field, data=subject) from None
            return TargetSource(board, margin if margin > 0 else None)
        return TargetSource(_board(data, spec, ""), None)
    if "{" not in spec and ":" not in spec:
        raise InputError(
            spec, "", "is neither a file nor a board spec such as '{board_type: ..., rows: ...}'"
        )
    import yaml

    try:
        data = yaml.safe_load(spec)
    except yaml.YAMLError as exc:
        raise InputError("BOARD-SPEC", "", f"not valid YAML: {exc}") from None
    return TargetSource(_board(data, "BOARD-SPEC", ""), None)


def write_target(
    board: BoardDefinition, out: str | Path, margin_mm: float = DEFAULT_MARGIN_MM, paper: str | None = None
) -> list[Path]:
    """Writes target.svg, target.pdf, the target file and board.json into `out`; returns the paths.

    ValueError (nothing written) when the sheet cannot be laid out (the board does not fit the paper).
    """
    page = sheet(board, margin_mm, paper)
    folder = Path(out)
    written = [
        write_text_atomic(folder / "target.svg", svg_text(page)),
        write_bytes_atomic(folder / "target.pdf", pdf_bytes(page)),
    ]
    if board.board_type == "charuco":
        written.append(write_text_atomic(folder / "charuco_board.yaml", charuco_parameters_yaml(board)))
    else:
        written.append(write_text_atomic(folder / "target.yaml", kalibr_target_yaml(board)))
    document = {
        "board": board.model_dump(mode="json"),
        "page_mm": list(page.page_mm),
        "board_origin_mm": list(page.origin_mm),
        "note": "target.svg and target.pdf are at true scale: print at 100 % (no fit to page)",
    }
    written.append(write_json_atomic(folder / "board.json", document))
    return written
