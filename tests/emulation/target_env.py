"""A small Gymnasium env with a Dict observation and a mixed Dict action, importable by id.

``gymnasium.make("target_env:Target-v0")`` imports this module, which registers
the id; actor processes and the learner then need no per-env code.

Each step shows a target (Discrete 4) and a goal force (Box); the reward is
1 for moving towards the target plus ``1 - |force - goal|``. A random policy
earns about 0.25 + 0.3 per step; a trained one approaches 2.
"""

from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium import spaces

LENGTH = 8


class TargetEnv(gymnasium.Env):
    observation_space = spaces.Dict({"target": spaces.Discrete(4), "goal": spaces.Box(-1, 1, (1,), np.float32)})
    action_space = spaces.Dict({"move": spaces.Discrete(4), "force": spaces.Box(-1, 1, (1,), np.float32)})

    def _observe(self) -> dict:
        self.target = int(self.np_random.integers(4))
        self.goal = self.np_random.uniform(-1, 1, size=1).astype(np.float32)
        return {"target": self.target, "goal": self.goal}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple:
        super().reset(seed=seed)
        self.t = 0
        return self._observe(), {}

    def step(self, action: dict) -> tuple:
        assert self.action_space.contains(action), action
        reward = float(action["move"] == self.target) + 1.0 - float(abs(action["force"][0] - self.goal[0]))
        self.t += 1
        return self._observe(), reward, False, self.t >= LENGTH, {}


if "Target-v0" not in gymnasium.registry:
    gymnasium.register("Target-v0", entry_point=TargetEnv)
