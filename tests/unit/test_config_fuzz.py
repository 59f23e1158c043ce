"""A config fuzzer: thousands of malformed configs, each either refused cleanly or compiled.

Seeds are the DESIGN example and the configs in tests/data; each case applies one to three mutations
(wrong types, out-of-range, huge, NaN and infinite numbers, deep nesting, unknown, missing and
duplicate keys, truncated text, binary junk, integers of thousands of digits) with a fixed seed, writes
the result as YAML or JSON and runs it through what `render-tag compile` runs: read and validate the
config, compile it (scenes capped at one, so a case takes milliseconds) and dump the recipes. Every
case must end in the project's InputError (refused cleanly) or in recipes (accepted), within a time
bound; any other exception (a traceback for the user), a numpy overflow warning (a value beyond
physical sense that got in) or a hang fails the test. The counts are
printed at the end (tried, refused cleanly, accepted, hung).
"""

from __future__ import annotations

import copy
import json
import random
import traceback
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from render_tag.compile import compile_config, load_job_config
from render_tag_shared.errors import InputError
from render_tag_shared.recipe_io import dump_recipe_file

from ..builders import DATA, time_limit

CASES = 1200
SEED = 20261210
CASE_SECONDS = 10.0
"""The bound of one case: a clean refusal takes milliseconds, a compile of one scene a few tens."""

SEEDS = [yaml.safe_load(path.read_text(encoding="utf-8")) for path in sorted(DATA.glob("*.yaml"))]

ODD_VALUES: list[Any] = [
    True,
    False,
    None,
    "",
    "x",
    "0.1",
    "1e30",
    [],
    {},
    [1, 2, 3],
    [[1]],
    {"a": 1},
    0,
    -1,
    1,
    2,
    7,
    0.0,
    -0.0,
    1e-300,
    -1e30,
    1e30,
    1e308,
    4e307,
    10**6,
    10**30,
    2**63,
    float("nan"),
    float("inf"),
    float("-inf"),
]


def leaves(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths to every value of a config (mappings and lists included), parents first."""
    found = [path]
    if isinstance(data, dict):
        for key, value in data.items():
            found += leaves(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += leaves(value, (*path, index))
    return found


def get(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


def put(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    get(data, path[:-1])[path[-1]] = value
    return data


# -- mutations of the data ----------------------------------------------------------------------------


def odd_value(rng: random.Random, data: Any) -> Any:
    return put(data, rng.choice(leaves(data)), copy.deepcopy(rng.choice(ODD_VALUES)))


def scaled_number(rng: random.Random, data: Any) -> Any:
    numbers = [
        p
        for p in leaves(data)
        if isinstance(get(data, p), int | float) and not isinstance(get(data, p), bool)
    ]
    if not numbers:
        return odd_value(rng, data)
    path = rng.choice(numbers)
    factor = rng.choice([-1, 0, 1e-9, 1.5, 10, 1e3, 1e6, 1e12, 1e300, -1e300])
    value = get(data, path) * factor
    return put(data, path, int(value) if isinstance(get(data, path), int) and abs(value) < 1e18 else value)


def unknown_key(rng: random.Random, data: Any) -> Any:
    mappings = [p for p in leaves(data) if isinstance(get(data, p), dict)]
    get(data, rng.choice(mappings))[rng.choice(["typo", "size", "num_scene", "fx ", "extra", "0"])] = 1
    return data


def missing_key(rng: random.Random, data: Any) -> Any:
    keyed = [p for p in leaves(data) if p and isinstance(p[-1], str)]
    path = rng.choice(keyed)
    del get(data, path[:-1])[path[-1]]
    return data


def list_length(rng: random.Random, data: Any) -> Any:
    lists = [p for p in leaves(data) if isinstance(get(data, p), list)]
    if not lists:
        return odd_value(rng, data)
    items = get(data, rng.choice(lists))
    if items and rng.random() < 0.5:
        items.pop()
    else:
        items.append(copy.deepcopy(items[-1]) if items else 1)
    return data


def swapped_sections(rng: random.Random, data: Any) -> Any:
    """A whole section from another seed config (a BOARD subject over TAGS settings, and so on)."""
    other = rng.choice(SEEDS)
    section = rng.choice(sorted(other))
    if isinstance(data, dict):
        data[rng.choice(sorted(data) or ["dataset"])] = copy.deepcopy(other[section])
    return data


DATA_MUTATIONS = [odd_value, odd_value, scaled_number, scaled_number, unknown_key, missing_key, list_length]
DATA_MUTATIONS.append(swapped_sections)


# -- mutations of the text ----------------------------------------------------------------------------


def truncated(rng: random.Random, text: str) -> str:
    return text[: rng.randrange(len(text))] if text else text


def junk(rng: random.Random, text: str) -> bytes:
    data = bytearray(text.encode("utf-8"))
    at = rng.randrange(len(data) + 1)
    data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    return bytes(data)


def deep(rng: random.Random, text: str) -> str:
    depth = rng.choice([50, 99, 101, 400, 600, 2000, 100_000])
    nested = "[" * depth + "]" * depth
    return text.replace("1", nested, 1) if "1" in text else nested


def long_int(rng: random.Random, text: str) -> str:
    digits = "9" * rng.choice([20, 41, 500, 4301, 5000])
    for number in ("8", "42", "100", "640", "2"):
        if number in text:
            return text.replace(number, digits, 1)
    return text + digits


def duplicate_key(rng: random.Random, text: str, data: Any, as_json: bool) -> str:
    if not isinstance(data, dict) or not data:
        return text
    key = rng.choice(sorted(data))
    if as_json:
        return text.rstrip().rstrip("}") + f', "{key}": {json.dumps(data[key])}}}'
    return text + yaml.safe_dump({key: data[key]}, default_flow_style=True)


def alias_bomb(rng: random.Random, text: str) -> str:
    width = rng.choice([3, 10])
    lines = [f"b0: &b0 [{', '.join(['x'] * width)}]"]
    for i in range(1, rng.choice([4, 9])):
        lines.append(f"b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * width)}]")
    return text + "\n".join(lines) + "\n"


# -- the cases -----------------------------------------------------------------------------------------


def make_case(rng: random.Random) -> tuple[str, bytes | str, list[str]]:
    """(file suffix, content, the mutations applied)."""
    data = copy.deepcopy(rng.choice(SEEDS))
    applied = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        mutation = rng.choice(DATA_MUTATIONS)
        applied.append(mutation.__name__)
        try:
            data = mutation(rng, data)
        except (IndexError, KeyError, TypeError):  # the shape was already changed by a mutation before
            applied[-1] += "(skipped)"
    as_json = rng.random() < 0.4
    text = json.dumps(data) if as_json else yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    roll = rng.random()
    content: bytes | str = text
    if roll < 0.08:
        content, name = truncated(rng, text), "truncated"
    elif roll < 0.14:
        content, name = junk(rng, text), "junk"
    elif roll < 0.19:
        content, name = deep(rng, text), "deep"
    elif roll < 0.24:
        content, name = long_int(rng, text), "long_int"
    elif roll < 0.30:
        content, name = duplicate_key(rng, text, data, as_json), "duplicate_key"
    elif roll < 0.32 and not as_json:
        content, name = alias_bomb(rng, text), "alias_bomb"
    else:
        name = ""
    if name:
        applied.append(name)
    return (".json" if as_json else ".yaml"), content, applied


def compile_like_the_cli(path: Path) -> str:
    """What `render-tag compile CONFIG -o OUT` does, with the scenes capped at one."""
    config = load_job_config(str(path))
    capped = config.model_copy(update={"dataset": config.dataset.model_copy(update={"num_scenes": 1})})
    recipes = compile_config(capped, source=str(path), base_dir=path.parent)
    return dump_recipe_file(recipes)


def test_config_fuzz(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(SEED)
    counts: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    problems: list[str] = []
    for number in range(CASES):
        suffix, content, applied = make_case(rng)
        path = tmp_path / f"case{number:05d}{suffix}"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        kinds.update(name.removesuffix("(skipped)") for name in applied)
        counts["tried"] += 1
        failed_before = len(problems)
        try:
            with time_limit(CASE_SECONDS), warnings.catch_warnings():
                warnings.simplefilter("error", RuntimeWarning)  # numpy overflow: a value beyond sense got in
                compile_like_the_cli(path)
            counts["accepted"] += 1
        except InputError as exc:
            counts["refused cleanly"] += 1
            if str(path) not in str(exc):
                problems.append(f"{path.name} {applied}: the message does not name the file: {exc}")
        except TimeoutError:
            counts["hung"] += 1
            problems.append(f"{path.name} {applied}: no answer within {CASE_SECONDS} s")
        except Exception:  # a traceback the user would see
            counts["traceback"] += 1
            problems.append(f"{path.name} {applied}:\n{traceback.format_exc()}")
        if len(problems) == failed_before:
            path.unlink()  # a failed case stays in tmp_path, to be looked at
    line = (
        f"config fuzz (seed {SEED}): tried {counts['tried']}, refused cleanly {counts['refused cleanly']}, "
        f"accepted {counts['accepted']}, hung {counts['hung']}, tracebacks {counts['traceback']}; "
        f"mutations {dict(sorted(kinds.items()))}"
    )
    with capsys.disabled():  # shown without -s too: the counts are the point of the run
        print(f"\n{line}")
    assert not problems, f"{len(problems)} cases failed; the first:\n" + "\n".join(problems[:3])
    assert counts["tried"] >= 1000
    assert counts["refused cleanly"] >= 500 and counts["accepted"] >= 50, "the fuzzer lost its spread"
