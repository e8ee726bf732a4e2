"""The RL training appliance: one command from C environments to a trained policy."""

__version__ = "0.1.0"
