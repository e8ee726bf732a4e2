"""Native C environments and the registry that makes them."""

from .native import NativeEnv, buffer_spec, param_defaults
from .registry import PRESETS, make, names

__all__ = ["NativeEnv", "PRESETS", "buffer_spec", "make", "names", "param_defaults"]
