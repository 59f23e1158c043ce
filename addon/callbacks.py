"""The functions Blender may keep after the add-on is gone: property `update=` callbacks.

This module must import nothing at module level, above all not `bpy`: its globals are what the
functions below keep alive, and they must not reach the `bpy` module.

Why (Blender 4.2, the `bpy` module; a Blender binary and Blender 5.0 are not affected): the `bpy`
module shuts Blender down (`WM_exit_ex`) only when the `bpy` module object itself is freed during
the interpreter's teardown (`m_free` of the module). `bpy.props` keeps one reference to every
`update=` function of a PropertyGroup even after the class is unregistered, and a function keeps
its module's globals dict, which the interpreter does not clear once the module object is gone. A
callback defined next to `import bpy` therefore keeps `bpy` alive for ever, Blender's exit never
runs, and the C++ destructors of its editor types later free Blender's own Python panel classes
after the interpreter has finalised: SIGSEGV, exit code 139, at the end of every
`python -c "import bpy; ..."` that enabled the add-on. A trampoline with empty globals leaks a few
bytes instead. See tests/test_headless_batch.py.
"""


def refresh_object(self, context):  # Blender's update signature; untyped: no imports here
    """`update=` of `Object.render_tag`'s settings: rebuild the object's mesh and texture."""
    from .core.authoring import on_settings_changed

    on_settings_changed(self, context)
