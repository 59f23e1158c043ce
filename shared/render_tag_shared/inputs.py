"""Reading input files that anyone may hand us: configs, recipe files, presets, gate files.

A config may be a FIFO, `/dev/zero`, a folder, a binary file, a 10 GB file, a YAML bomb or a JSON
array nested a million deep. Every such input is refused here as bad input (InputError, exit 2),
quickly and without a traceback, before a model sees it:

- only a regular file is read (the file is opened without blocking, so a FIFO never hangs), and
  no more than a size limit of it;
- the bytes must be UTF-8 text;
- YAML and JSON are parsed strictly: a key given twice is refused (YAML and `json` would keep the
  last one silently), as are integers of more than MAX_INT_DIGITS digits and numbers that are not
  finite (`NaN`, `Infinity`, `1e999`);
- nesting deeper than MAX_NESTING, and (YAML aliases) more than MAX_NODES values, are refused.
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any

from .errors import InputError

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_INT_DIGITS",
    "MAX_NESTING",
    "MAX_NODES",
    "MAX_RECIPE_FILE_BYTES",
    "check_structure",
    "parse_json",
    "parse_yaml",
    "read_input_text",
]

MAX_CONFIG_BYTES = 4 * 1024 * 1024
"""Configs, presets, gate and threshold files: a real one is a few kilobytes."""

MAX_RECIPE_FILE_BYTES = 4 * 1024 * 1024 * 1024
"""recipes.json: about 10 kB a scene, so room for the largest job a config may ask for."""

MAX_NESTING = 100
"""Deepest nesting of mappings and lists (a recipe file nests about 10 deep)."""

MAX_NODES = 1_000_000
"""Most values a YAML document may expand to through its aliases (a "billion laughs" bomb is refused)."""

MAX_INT_DIGITS = 40
"""The longest integer literal: every integer of the contract fits in 64 bits (20 digits)."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_input_text(path: str | Path, *, max_bytes: int = MAX_CONFIG_BYTES) -> str:
    """The UTF-8 text of a regular file of at most `max_bytes`; InputError naming the file otherwise.

    The file is opened with O_NONBLOCK, so a FIFO without a writer is refused instead of waiting
    for one, and its type is checked on the open descriptor (no window for a swap in between)."""
    source = str(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise InputError(source, "", f"cannot read: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputError(source, "", f"cannot read: {_kind(info.st_mode)}, not a regular file")
        if info.st_size > max_bytes:
            raise InputError(source, "", f"too large: {info.st_size} bytes (at most {max_bytes})")
        chunks: list[bytes] = []
        size = 0
        while size <= max_bytes:  # the file may grow while it is read (st_size is no promise)
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise InputError(source, "", f"cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if size > max_bytes:
        raise InputError(source, "", f"too large: more than {max_bytes} bytes")
    data = b"".join(chunks)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(source, "", f"not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x})") from None


# -- JSON --------------------------------------------------------------------------------------------


class _Refused(ValueError):
    """A parse hook's refusal, carrying the message for the InputError."""


def _parse_int(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > MAX_INT_DIGITS:
        raise _Refused(f"an integer of {len(digits)} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:40]} is out of range")
    return value


def _parse_constant(text: str) -> float:
    raise _Refused(f"{text} is not a number a config may hold")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"the key {key!r} is given twice")
            seen.add(key)
    return result


def parse_json(text: str, source: str) -> Any:
    """JSON text to Python values, strictly (see the module docstring); InputError naming `source`."""
    try:
        data = json.loads(
            text,
            object_pairs_hook=_pairs,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except _Refused as exc:
        raise InputError(source, "", f"not accepted JSON: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(source, "", f"not valid JSON: {exc}") from None
    except RecursionError:
        raise InputError(source, "", f"nested more than {MAX_NESTING} levels deep") from None
    except ValueError as exc:  # Python's own limit on integer digits, and the like
        raise InputError(source, "", f"not accepted JSON: {exc}") from None
    _check_depth(data, source)  # the parse hooks have refused bad numbers already
    return data


def _check_depth(data: Any, source: str) -> None:
    """check_structure's nesting rule alone, lean: a recipe file holds millions of values."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = value.values()
        elif not isinstance(value, list):
            continue
        if depth >= MAX_NESTING:
            raise InputError(source, "", f"nested more than {MAX_NESTING} levels deep")
        stack.extend((item, depth + 1) for item in value if isinstance(item, dict | list))


# -- YAML --------------------------------------------------------------------------------------------


def _strict_loader() -> Any:
    """A SafeLoader that refuses duplicate keys, huge integers and unbounded expansion."""
    import yaml  # optional dependency: only YAML files need it

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            if isinstance(node, yaml.MappingNode):
                seen: set[Any] = set()
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue  # keys merged in (<<) may be overridden: only the node's own count
                    key = self.construct_object(key_node, deep=True)
                    try:
                        duplicate = key in seen
                    except TypeError:
                        raise yaml.constructor.ConstructorError(
                            None, None, "a mapping key must be a plain value", key_node.start_mark
                        ) from None
                    if duplicate:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"the key {key!r} is given twice", key_node.start_mark
                        )
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

        def construct_yaml_int(self, node: Any) -> int:
            text = str(self.construct_scalar(node)).replace("_", "")
            digits = text.lstrip("+-")
            if len(digits) > MAX_INT_DIGITS:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"an integer of {len(digits)} digits (at most {MAX_INT_DIGITS})",
                    node.start_mark,
                )
            value: int = super().construct_yaml_int(node)
            return value

    StrictLoader.add_constructor("tag:yaml.org,2002:int", StrictLoader.construct_yaml_int)
    return StrictLoader


def parse_yaml(text: str, source: str) -> Any:
    """YAML text (one document) to Python values, strictly; InputError naming `source`."""
    import yaml

    try:
        data = yaml.load(text, Loader=_strict_loader())  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        raise InputError(source, "", f"not valid YAML: {exc}") from None
    except RecursionError:
        raise InputError(source, "", f"nested more than {MAX_NESTING} levels deep") from None
    except ValueError as exc:  # a scalar its constructor could not convert
        raise InputError(source, "", f"not valid YAML: {exc}") from None
    check_structure(data, source, max_nodes=MAX_NODES)
    return data


# -- both --------------------------------------------------------------------------------------------


def _where(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def check_structure(data: Any, source: str, *, max_nodes: int | None = None) -> None:
    """Refuses nesting deeper than MAX_NESTING, more than `max_nodes` values, non-finite floats and
    integers longer than MAX_INT_DIGITS digits; the error names the field. Iterative: no recursion."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, ())]
    nodes = 0
    while stack:
        value, path = stack.pop()
        nodes += 1
        if max_nodes is not None and nodes > max_nodes:
            raise InputError(source, "", f"holds more than {max_nodes} values (YAML aliases?)")
        if isinstance(value, dict):
            items: Any = value.items()
        elif isinstance(value, list):
            items = enumerate(value)
        else:
            if isinstance(value, float) and not math.isfinite(value):
                raise InputError(source, _where(path), f"{value} is not a finite number")
            if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
                raise InputError(source, _where(path), "the integer is far too large")
            continue
        if len(path) >= MAX_NESTING:
            raise InputError(source, _where(path[:3]), f"nested more than {MAX_NESTING} levels deep")
        for key, item in items:
            stack.append((item, (*path, key if isinstance(key, int | str) else str(key))))
