"""The rollout with a pool that serves env rows in groups, in turn (the ActorPool shape)."""

import numpy as np
import torch

import envs
from learner.policy import Policy
from learner.rollout import Rollout


class TwoGroupPool:
    """Two real cartpole vectors served alternately as batches of rows 0-3 and 4-7."""

    def __init__(self, seed: int) -> None:
        self.groups = [envs.make("cartpole", num_envs=4, seed=seed + g) for g in range(2)]
        self.num_agents, self.batch_rows = 8, 4
        self.single_observation_space = self.groups[0].single_observation_space
        self.single_action_space = self.groups[0].single_action_space
        self.turn = 0

    def async_reset(self, seed: int) -> None:
        for g, env in enumerate(self.groups):
            env.reset(seed + g)
        self.turn = 0

    def recv(self) -> tuple:
        e = self.groups[self.turn]
        return e.observations, e.rewards, e.terminals, e.truncations, e.masks, np.arange(4) + 4 * self.turn

    @property
    def final_observations(self) -> np.ndarray:
        return self.groups[self.turn].final_observations

    def send(self, actions: np.ndarray) -> None:
        self.groups[self.turn].step(actions)
        self.turn = 1 - self.turn

    def close(self) -> None:
        for env in self.groups:
            env.close()


def test_grouped_pool_fills_every_row_and_step_in_order() -> None:
    torch.manual_seed(0)
    pool = TwoGroupPool(seed=5)
    policy = Policy(pool.single_observation_space, pool.single_action_space, hidden=16)
    rollout = Rollout(policy, pool, num_steps=12, device=torch.device("cpu"))
    assert not rollout.single_group
    rollout.restart(5)
    for _ in range(3):
        rollout.collect()
        assert (rollout.step == 12).all()
        # Every transition was recorded (cartpole pays 1 per step) in the slot of its action...
        assert torch.equal(rollout.rewards, torch.ones(12, 8))
        # ...and an episode end at step t marks step t+1 as a start, row by row.
        ended = rollout.terminals | rollout.truncations
        assert torch.equal(rollout.starts[1:], ended[:-1])
        assert rollout.masks.all()
        # Bootstrap values are V of the observation after step T-1, i.e. of the carried step 0.
        with torch.no_grad():
            carried_values = policy.value(rollout.carry["obs"], None, torch.zeros(8, dtype=torch.bool))
        torch.testing.assert_close(rollout.next_values, carried_values)
    pool.close()
