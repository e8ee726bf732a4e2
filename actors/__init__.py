"""Actor processes stepping envs into a shared-memory arena, and the pools that drive them."""

from .pool import ActorError, ActorPool, actor_seed
from .serial import SerialPool

__all__ = ["ActorError", "ActorPool", "SerialPool", "actor_seed"]
