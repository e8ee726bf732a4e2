"""Native C environments, emulated third-party envs, and the registry that makes them."""

from .native import NativeEnv, param_defaults
from .registry import PRESETS, buffer_spec, make, names

__all__ = ["NativeEnv", "PRESETS", "buffer_spec", "make", "names", "param_defaults"]
