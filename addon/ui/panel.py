"""The N-panel: View3D ▸ Sidebar ▸ Render Tag. Layout only; every action is an operator."""

from typing import Literal

import bpy

from ..core import camera as cam_adapter
from ..core import viewport
from ..core.datablocks import camera_data
from . import overlay

CATEGORY = "Render Tag"


def ui_layout(owner: bpy.types.Panel | bpy.types.Operator) -> bpy.types.UILayout:
    """The layout a `draw` fills (Blender always passes one while drawing; the stubs say optional)."""
    layout = owner.layout
    if layout is None:
        raise RuntimeError(f"{type(owner).__name__}.draw called without a layout")
    return layout


class _RenderTagPanel(bpy.types.Panel):
    """Where every render-tag panel lives (never registered itself)."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = CATEGORY


class VIEW3D_PT_render_tag(_RenderTagPanel):
    bl_idname = "VIEW3D_PT_render_tag"
    bl_label = "Render Tag"

    def draw(self, context):
        layout = ui_layout(self)
        row = layout.row(align=True)
        row.operator("render_tag.add_tag", icon="IMAGE_PLANE")
        row.operator("render_tag.add_board", icon="MESH_GRID")
        shown = viewport.marker_textures_shown(getattr(context, "screen", None))
        layout.operator(
            "render_tag.toggle_marker_textures",
            text="Textures in Solid View",
            icon="TEXTURE",
            depress=shown,
        )


class VIEW3D_PT_render_tag_object(_RenderTagPanel):
    """The tag, board or plane settings of the active object (edits rebuild its texture at once)."""

    bl_idname = "VIEW3D_PT_render_tag_object"
    bl_parent_id = "VIEW3D_PT_render_tag"
    bl_label = "Tags and Boards"

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and obj.type == "MESH"

    def draw(self, context):
        layout = ui_layout(self)
        layout.use_property_split = True
        settings = context.active_object.render_tag
        layout.prop(settings, "kind")
        if settings.kind == "TAG":
            for key in ("family", "tag_id", "size_mm", "border_bits", "margin_modules", "roughness"):
                layout.prop(settings, key)
        elif settings.kind == "BOARD":
            layout.prop(settings, "board_type")
            col = layout.column(align=True)
            col.prop(settings, "rows")
            col.prop(settings, "cols")
            if settings.board_type == "checkerboard":
                layout.prop(settings, "square_size_mm")
            elif settings.board_type == "charuco":
                layout.prop(settings, "square_size_mm")
                layout.prop(settings, "marker_size_mm")
                layout.prop(settings, "legacy_pattern")
            else:
                layout.prop(settings, "marker_size_mm")
                layout.prop(settings, "spacing_ratio")
            for key in ("dictionary", "board_border_bits", "board_margin_mm", "roughness"):
                layout.prop(settings, key)
        elif settings.kind == "PLANE":
            for key in ("plane_size_m", "plane_color", "plane_texture", "texture_repeat", "roughness"):
                layout.prop(settings, key)


class VIEW3D_PT_render_tag_camera(_RenderTagPanel):
    """The scene camera's intrinsics as OpenCV reads them, and the lens model of the recipe."""

    bl_idname = "VIEW3D_PT_render_tag_camera"
    bl_parent_id = "VIEW3D_PT_render_tag"
    bl_label = "Camera"

    def draw(self, context):
        layout = ui_layout(self)
        scene = context.scene
        camera = scene.camera
        if camera is None or camera.type != "CAMERA":
            layout.label(text="No scene camera", icon="ERROR")
            return
        layout.label(text=camera.name, icon="CAMERA_DATA")
        if camera.data.type == "PERSP":
            (fx, _, cx), (_, fy, cy), _ = cam_adapter.k_from_blender(camera_data(camera), scene.render)[0]
            col = layout.column(align=True)
            col.label(text=f"fx {fx:.2f}   fy {fy:.2f}")
            col.label(text=f"cx {cx:.2f}   cy {cy:.2f}")
        col = layout.column(align=True)
        col.label(text=f"{scene.render.resolution_x} x {scene.render.resolution_y} px")
        layout.operator("render_tag.set_camera_intrinsics", text="Set Intrinsics…", icon="CAMERA_DATA")
        settings = scene.render_tag
        layout.use_property_split = True
        layout.prop(settings, "distortion_model")
        if settings.distortion_model != "none":
            layout.prop(settings, "distortion_coeffs")
        layout.prop(settings, "eval_margin_px")
        layout.prop(camera.data.dof, "use_dof", text="Depth of field")
        if camera.data.dof.use_dof:
            layout.prop(camera.data.dof, "focus_distance", text="Focus")
            layout.prop(camera.data.dof, "aperture_fstop")


_LIGHT_ICONS: tuple[tuple[str, Literal["LIGHT_POINT", "LIGHT_SUN", "LIGHT_SPOT", "LIGHT_AREA"]], ...] = (
    ("POINT", "LIGHT_POINT"),
    ("SUN", "LIGHT_SUN"),
    ("SPOT", "LIGHT_SPOT"),
    ("AREA", "LIGHT_AREA"),
)


class VIEW3D_PT_render_tag_lights(_RenderTagPanel):
    """Lights go into the recipe as they are: type, pose, energy, colour and size."""

    bl_idname = "VIEW3D_PT_render_tag_lights"
    bl_parent_id = "VIEW3D_PT_render_tag"
    bl_label = "Lights"
    bl_options = {"DEFAULT_CLOSED"}  # noqa: RUF012 (Blender wants a plain set)

    def draw(self, context):
        layout = ui_layout(self)
        row = layout.row(align=True)
        for kind, icon in _LIGHT_ICONS:
            row.operator("object.light_add", text="", icon=icon).type = kind
        obj = context.active_object
        if obj is None or obj.type != "LIGHT":
            layout.label(text="Select a light to edit it")
            return
        light = obj.data
        layout.use_property_split = True
        layout.prop(light, "type")
        layout.prop(light, "energy")
        layout.prop(light, "color")
        if light.type in ("POINT", "SPOT"):
            layout.prop(light, "shadow_soft_size", text="Radius")
        if light.type == "SPOT":
            layout.prop(light, "spot_size")
        if light.type == "SUN":
            layout.prop(light, "angle")
        if light.type == "AREA":
            layout.prop(light, "size")


class VIEW3D_PT_render_tag_recipe(_RenderTagPanel):
    """A recipe file: load a scene, step through its scenes and cameras, render a range of it."""

    bl_idname = "VIEW3D_PT_render_tag_recipe"
    bl_parent_id = "VIEW3D_PT_render_tag"
    bl_label = "Recipe File"

    def draw(self, context):
        layout = ui_layout(self)
        settings = context.scene.render_tag
        layout.prop(settings, "recipe_path", text="")
        op = layout.operator("render_tag.build_recipe", text="Load Scene", icon="FILE_REFRESH")
        op.filepath = settings.recipe_path
        op.scene_index = settings.scene_index
        op.camera_index = settings.camera_index
        for label, key, operator in (
            ("Scene", "scene_index", "render_tag.step_scene"),
            ("Camera", "camera_index", "render_tag.step_camera"),
        ):
            row = layout.row(align=True)
            row.operator(operator, text="", icon="TRIA_LEFT").delta = -1
            row.prop(settings, key, text=label)
            row.operator(operator, text="", icon="TRIA_RIGHT").delta = 1
        layout.prop(settings, "output_dir", text="Output")
        op = layout.operator("render_tag.render_recipe", text="Render File", icon="RENDER_ANIMATION")
        op.filepath = settings.recipe_path
        op.output_dir = settings.output_dir


class VIEW3D_PT_render_tag_preview(_RenderTagPanel):
    """Renderer settings, preview render, the ground-truth overlay and the recipe export."""

    bl_idname = "VIEW3D_PT_render_tag_preview"
    bl_parent_id = "VIEW3D_PT_render_tag"
    bl_label = "Preview and Export"

    def draw(self, context):
        layout = ui_layout(self)
        settings = context.scene.render_tag
        col = layout.column(align=True)
        col.prop(settings, "renderer_mode", text="")
        row = col.row(align=True)
        row.prop(settings, "samples")
        row.prop(settings, "denoise")
        if settings.renderer_mode == "cycles":
            col.prop(settings, "marker_samples")
            col.row(align=True).prop(settings, "device", expand=True)
        layout.operator("render_tag.preview_render", icon="RENDER_STILL")
        on = overlay.is_enabled()
        layout.operator(
            "render_tag.toggle_overlay",
            text="Hide Ground Truth" if on else "Show Ground Truth",
            icon="HIDE_OFF" if on else "HIDE_ON",
            depress=on,
        )
        layout.operator("render_tag.export_recipe", text="Export Recipe…", icon="EXPORT")


CLASSES = (
    VIEW3D_PT_render_tag,
    VIEW3D_PT_render_tag_object,
    VIEW3D_PT_render_tag_camera,
    VIEW3D_PT_render_tag_lights,
    VIEW3D_PT_render_tag_recipe,
    VIEW3D_PT_render_tag_preview,
)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
