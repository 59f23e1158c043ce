"""The compiler's error: a config it cannot satisfy is bad input that names the scene and the rule."""

from __future__ import annotations

from render_tag_shared.errors import InputError

__all__ = ["CompileError"]


class CompileError(InputError):
    """A config the compiler cannot satisfy: names the scene and the constraint's config field."""

    def __init__(
        self,
        source: str,
        field: str,
        message: str,
        *,
        scene_index: int | None = None,
        rule: str | None = None,
        details: list[str] | None = None,
    ):
        self.scene_index = scene_index
        self.rule = rule
        super().__init__(source, field, message, details)
