"""The user interface: `bpy.ops.render_tag.*` operators, the N-panel and the ground-truth overlay.

Everything here is a thin shell over `api` and `core`; nothing below imports `ui`.
"""

from . import operators, overlay, panel

_MODULES = (operators, panel, overlay)


def register() -> None:
    for module in _MODULES:
        module.register()


def unregister() -> None:
    for module in reversed(_MODULES):
        module.unregister()
