"""The compiler: a `GenConfig` in, fully resolved `SceneRecipe`s out (see compiler.py)."""

from .checks import MIN_MODULE_PX, check_module_size
from .compiler import (
    DEFAULT_JOB,
    VALIDATION_ATTEMPTS,
    SceneCompiler,
    compile_config,
    compile_default_job,
    compile_scene,
    load_job_config,
)
from .errors import CompileError
from .frames import camera_pose
from .jobspec import assets_sha256, job_spec
from .pose import ATTEMPTS_PER_CAMERA
from .shards import parse_shard, shard_range

__all__ = [
    "ATTEMPTS_PER_CAMERA",
    "DEFAULT_JOB",
    "MIN_MODULE_PX",
    "VALIDATION_ATTEMPTS",
    "CompileError",
    "SceneCompiler",
    "assets_sha256",
    "camera_pose",
    "check_module_size",
    "compile_config",
    "compile_default_job",
    "compile_scene",
    "job_spec",
    "load_job_config",
    "parse_shard",
    "shard_range",
]
