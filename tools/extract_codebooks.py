"""Extract the tag codebooks of every supported family from OpenCV into a JSON data file.

`render_tag_shared` must stay free of cv2 (it loads inside Blender), so the marker codes it draws
are copied once from `cv2.aruco.getPredefinedDictionary` by this dev script and shipped as data.
Run it again after an OpenCV upgrade; `tests/test_families.py` checks the result against OpenCV.

Each id is stored as the hex of its n x n bits in rotation 0, row-major from the top-left bit as
the marker is printed, most significant bit first, 1 = white. OpenCV's DICT_nXn_50/100/250 are
prefixes of DICT_nXn_1000; the script checks that and then stores such codes once ("codebook" names
the list a family takes its first `num_ids` codes from).

Usage: python tools/extract_codebooks.py [-o shared/render_tag_shared/data/codebooks.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "shared" / "render_tag_shared" / "data" / "codebooks.json"

# (render-tag name, kind, OpenCV dictionary name), in the order FAMILY_NAMES lists them.
FAMILIES: list[tuple[str, str, str]] = [
    ("tag16h5", "apriltag", "DICT_APRILTAG_16h5"),
    ("tag25h9", "apriltag", "DICT_APRILTAG_25h9"),
    ("tag36h10", "apriltag", "DICT_APRILTAG_36h10"),
    ("tag36h11", "apriltag", "DICT_APRILTAG_36h11"),
    *[
        (f"DICT_{n}X{n}_{k}", "aruco", f"DICT_{n}X{n}_{k}")
        for n in (4, 5, 6, 7)
        for k in (50, 100, 250, 1000)
    ],
    ("DICT_ARUCO_ORIGINAL", "aruco", "DICT_ARUCO_ORIGINAL"),
]


def dictionary_bits(dictionary: cv2.aruco.Dictionary) -> np.ndarray:
    """All ids' bits in rotation 0 as (num_ids, n, n) uint8, 1 = white, via OpenCV's own decoder."""
    n = dictionary.markerSize
    rows = dictionary.bytesList
    bits = np.stack(
        [cv2.aruco.Dictionary.getBitsFromByteList(rows[i : i + 1], n) for i in range(rows.shape[0])]
    )
    # Cross-check the decoding against the rendered marker at one pixel per module.
    for i in range(rows.shape[0]):
        img = dictionary.generateImageMarker(i, n + 2, borderBits=1)
        if not np.array_equal(img[1:-1, 1:-1] // 255, bits[i]):
            raise RuntimeError(f"bits of id {i} disagree with generateImageMarker")
    return bits.astype(np.uint8)


def to_hex(bits: np.ndarray) -> str:
    """One id's n x n bits as a zero-padded hex string, row-major, first bit most significant."""
    flat = bits.reshape(-1)
    value = 0
    for b in flat:
        value = (value << 1) | int(b)
    return format(value, f"0{(flat.size + 3) // 4}x")


def build() -> dict[str, Any]:
    """The JSON document: per-family metadata plus the shared hex codebooks."""
    families: dict[str, Any] = {}
    codebooks: dict[str, list[str]] = {}
    for name, kind, opencv_name in FAMILIES:
        d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, opencv_name))
        codes = [to_hex(b) for b in dictionary_bits(d)]
        # Reuse a stored codebook when this family's codes are exactly its prefix.
        book = next(
            (k for k, v in codebooks.items() if len(v) >= len(codes) and v[: len(codes)] == codes), None
        )
        if book is None:
            # A longer family may extend a stored prefix: store it and repoint the shorter ones.
            book = opencv_name
            for other, v in list(codebooks.items()):
                if codes[: len(v)] == v:
                    del codebooks[other]
                    for fam in families.values():
                        if fam["codebook"] == other:
                            fam["codebook"] = book
            codebooks[book] = codes
        families[name] = {
            "kind": kind,
            "opencv_name": opencv_name,
            "marker_bits": int(d.markerSize),
            "num_ids": len(codes),
            "max_correction_bits": int(d.maxCorrectionBits),
            "codebook": book,
        }
    return {
        "format": 1,
        "source": f"cv2.aruco.getPredefinedDictionary, OpenCV {cv2.__version__}",
        "bit_order": "row-major from the top-left bit, first bit most significant, 1 = white, rotation 0",
        "families": families,
        "codebooks": codebooks,
    }


def dump(doc: dict[str, Any]) -> str:
    """Compact but diff-friendly JSON: one line per family and ten codes per line."""
    lines = ["{"]
    for key in ("format", "source", "bit_order"):
        lines.append(f"  {json.dumps(key)}: {json.dumps(doc[key])},")
    lines.append('  "families": {')
    fams = list(doc["families"].items())
    for i, (name, fam) in enumerate(fams):
        comma = "," if i < len(fams) - 1 else ""
        lines.append(f"    {json.dumps(name)}: {json.dumps(fam)}{comma}")
    lines.append("  },")
    lines.append('  "codebooks": {')
    books = list(doc["codebooks"].items())
    for i, (name, codes) in enumerate(books):
        lines.append(f"    {json.dumps(name)}: [")
        chunks = [codes[j : j + 10] for j in range(0, len(codes), 10)]
        for j, chunk in enumerate(chunks):
            comma = "," if j < len(chunks) - 1 else ""
            lines.append("      " + ", ".join(json.dumps(c) for c in chunk) + comma)
        lines.append("    ]" + ("," if i < len(books) - 1 else ""))
    lines.append("  }")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == doc
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    text = dump(build())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output} ({len(text.encode())} bytes)")


if __name__ == "__main__":
    main()
