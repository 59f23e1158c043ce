"""The project's errors: bad input (never retried) against transient failures (retried).

`InputError` is bad input: it names the file (or what stands for one) and the field, the CLI turns it
into exit code 2, and a worker that meets it reports it as not retryable: the same recipe would fail
the same way on any worker. `TransientError` and its kinds are failures that may not happen again (a
worker crash, a render past its timeout, a lost heartbeat, running out of memory): the pool retries
those on another worker, and a retry renders the same bytes (a recipe fixes every seed).
"""

from __future__ import annotations

import difflib
import typing
from typing import Any

from pydantic import BaseModel, ValidationError


class InputError(ValueError):
    """Bad input: names the source (a file, or what stands for one) and the field at fault.

    The CLI turns it into exit code 2; the add-on's operators report it with `self.report`; the pool
    never retries it.
    """

    retryable = False

    def __init__(self, source: str, field: str, message: str, details: list[str] | None = None):
        self.source = source
        self.field = field
        self.message = message
        self.details = details or []
        text = f"{source}: {field}: {message}" if field else f"{source}: {message}"
        if len(self.details) > 1:
            text += "\n" + "\n".join(f"  - {line}" for line in self.details[1:])
        super().__init__(text)


_MISSING = object()
_TYPE_ERRORS = frozenset({"int_type", "float_type", "int_from_float", "bool_type", "string_type"})
"""pydantic error types where the value given tells the user more than the rule."""


def _shown(value: Any) -> str:
    text = repr(value)
    return (
        f"{text[:40]}... ({type(value).__name__})" if len(text) > 40 else f"{text} ({type(value).__name__})"
    )


_UNION_TAGS = frozenset({"TAG", "BOARD", "PLANE", "OCCLUDER", "TAGS", "gaussian", "poisson", "salt_pepper"})
"""Discriminator values pydantic puts in an error's location; a user never typed them."""


def field_path(loc: tuple[int | str, ...], data: Any = _MISSING) -> str:
    """`("objects", 3, "TAG", "size_mm")` -> `objects[3].size_mm`.

    pydantic puts the tag of a discriminated union (and validator names) into the location; the user
    never typed them. Walking the input alongside the location tells them apart from real fields (a
    field may share its name with a tag, as `noise.salt_pepper` does).
    """
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
            data = data[part] if isinstance(data, list) and -len(data) <= part < len(data) else _MISSING
            continue
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif part in _UNION_TAGS or part.startswith(("function-", "tagged-union")):
            continue  # not a key of the input: a union's tag or a validator's name
        else:
            data = _MISSING
        path += f".{part}" if path else part
    return path


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (through Optional, unions, lists, dicts, Annotated:
    every type argument is searched; values such as Literal's and Field metadata hold none)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += [model for model in _models_in(arg) if model not in found]
    return found


def field_names_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The field names valid at the mapping `loc` points into: what a misspelled key could have meant.

    Union members are all kept (their fields pooled); a part that is no field (a list index, a union's
    tag) leaves the models where they are.
    """
    models = [model]
    for part in loc:
        if isinstance(part, int):
            continue
        inner = [m for current in models if part in current.model_fields
                 for m in _models_in(current.model_fields[part].annotation)]  # fmt: skip
        if inner:
            models = inner
        elif any(part in current.model_fields for current in models):
            return []  # a field that holds no model (a dict of numbers ...)
    names: list[str] = []
    for current in models:
        names += [name for name in current.model_fields if name not in names]
    return names


def suggestion(word: str, names: list[str]) -> str:
    """ "; did you mean `a` or `b`?" for the names closest to `word` (difflib), else ""."""
    close = difflib.get_close_matches(word, names, n=3, cutoff=0.6)
    if not close:
        return ""
    return "; did you mean " + " or ".join(f"`{name}`" for name in close) + "?"


def input_error_from_validation(
    source: str,
    error: ValidationError,
    prefix: str = "",
    data: Any = _MISSING,
    model: type[BaseModel] | None = None,
) -> InputError:
    """Turns pydantic's report into an InputError that leads with the first field at fault.

    Pass the validated input as `data` so that field names are told apart from union tags, and the
    `model` validated so that a key it does not know comes with the nearest valid names.
    """
    lines = []
    first_field = ""
    for item in error.errors(include_url=False):
        field = field_path(tuple(item["loc"]), data)
        if prefix:
            field = f"{prefix}.{field}" if field else prefix
        message = str(item["msg"]).removeprefix("Value error, ")
        loc = tuple(item["loc"])
        if item["type"] == "extra_forbidden" and model is not None and loc and isinstance(loc[-1], str):
            message += suggestion(loc[-1], field_names_at(model, loc[:-1]))
        if (
            str(item["type"]) in _TYPE_ERRORS
        ):  # say what was given: `true`, "0.1" or 1e30 where a number belongs
            message += f", got {_shown(item.get('input'))}"
        if not first_field:
            first_field = field
        lines.append(f"{field}: {message}" if field else message)
    first_message = lines[0].split(": ", 1)[-1] if first_field else lines[0]
    return InputError(source, first_field, first_message, details=lines)


class TransientError(RuntimeError):
    """A failure that may not recur: the pool retries the job (on another worker when it can)."""

    retryable = True


class WorkerCrashed(TransientError):
    """The worker process died during the job (a signal, a segfault, the OOM killer)."""


class RenderTimeout(TransientError):
    """The render ran past the pool's timeout; the worker was killed."""


class WorkerLost(TransientError):
    """The worker stopped answering (no heartbeat) or could not be reached; it was replaced."""


class OutOfMemory(TransientError):
    """The worker ran out of memory (MemoryError in the worker)."""


def is_retryable(error: BaseException) -> bool:
    """Whether a job that failed with `error` is worth another attempt: only a transient failure (a
    TransientError, or MemoryError) is. Bad input, an invalid recipe and any failure nobody classified
    (a bug, Blender refusing the scene) would fail the same way again, so retrying only costs time."""
    return isinstance(error, TransientError | MemoryError)
