"""render_tag_shared: the recipe contract, tag codebooks, board layouts, lens models and projection.

Pure Python on numpy and pydantic: it loads inside Blender, in the host and in any tool, and never
imports bpy, cv2 or zmq.
"""

__version__ = "0.1.0"
