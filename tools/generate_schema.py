"""Regenerates the committed JSON Schema files of the contract (run after changing a model)."""

from __future__ import annotations

from pathlib import Path

from render_tag_shared.schema import generate_schemas

DATA = Path(__file__).resolve().parents[1] / "shared" / "render_tag_shared" / "data"

if __name__ == "__main__":
    for name, text in generate_schemas().items():
        (DATA / name).write_text(text, encoding="utf-8")
        print(f"wrote {DATA / name}")
