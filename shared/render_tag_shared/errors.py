"""One error type for bad input, so every front end can say which file and which field is wrong."""

from __future__ import annotations

from pydantic import ValidationError


class InputError(ValueError):
    """Bad input: names the source (a file, or what stands for one) and the field at fault.

    The CLI turns it into exit code 2; the add-on's operators report it with `self.report`.
    """

    def __init__(self, source: str, field: str, message: str, details: list[str] | None = None):
        self.source = source
        self.field = field
        self.message = message
        self.details = details or []
        text = f"{source}: {field}: {message}" if field else f"{source}: {message}"
        if len(self.details) > 1:
            text += "\n" + "\n".join(f"  - {line}" for line in self.details[1:])
        super().__init__(text)


_UNION_TAGS = frozenset({"TAG", "BOARD", "PLANE", "TAGS", "gaussian", "poisson", "salt_pepper"})
"""Discriminator values pydantic puts in an error's location; a user never typed them."""


def field_path(loc: tuple[int | str, ...]) -> str:
    """`("objects", 3, "TAG", "size_mm")` -> `objects[3].size_mm` (drops pydantic's union tags)."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in _UNION_TAGS or part.startswith(("function-", "tagged-union")):
            continue
        else:
            path += f".{part}" if path else part
    return path


def input_error_from_validation(source: str, error: ValidationError, prefix: str = "") -> InputError:
    """Turns pydantic's report into an InputError that leads with the first field at fault."""
    lines = []
    first_field = ""
    for item in error.errors(include_url=False):
        field = field_path(tuple(item["loc"]))
        if prefix:
            field = f"{prefix}.{field}" if field else prefix
        message = str(item["msg"]).removeprefix("Value error, ")
        if not first_field:
            first_field = field
        lines.append(f"{field}: {message}" if field else message)
    first_message = lines[0].split(": ", 1)[-1] if first_field else lines[0]
    return InputError(source, first_field, first_message, details=lines)
