"""Native C environments, emulated third-party envs, and the registry that makes them."""

from .creators import CreatorError, vector_env
from .native import NativeEnv, param_defaults, serve_loop
from .registry import PRESETS, MissingExtra, buffer_spec, make, missing_extra, names, native_names

__all__ = [
    "CreatorError", "MissingExtra", "NativeEnv", "PRESETS", "buffer_spec", "make", "missing_extra", "names",
    "native_names", "param_defaults", "serve_loop", "vector_env",
]
