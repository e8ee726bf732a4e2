"""Actor processes stepping envs into a shared-memory arena, and the pools that drive them."""

from .serial import SerialPool

__all__ = ["SerialPool"]
