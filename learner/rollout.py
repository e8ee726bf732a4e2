"""Collecting T steps for every env row from a pool into device-resident storage.

Storage is indexed by env row (the pool's ``env_ids``), so it works whether a
pool returns all rows at once (``SerialPool``) or groups of rows in turn
(``ActorPool``): each row keeps its own step counter, and a rollout is complete
when every row holds T steps and the value of the observation after them.

Two ways the rollout ends for a group of rows, by pool shape:

- one group (the whole vector is one batch): the batch after step T is held
  unsent; its value bootstraps this rollout and, after the update, it becomes
  step 0 of the next one, acted on by the updated policy (CleanRL's loop);
- several groups: a group that finishes early is acted on right away (its pool
  must keep stepping), that step is carried into the next rollout as step 0
  with the pre-update policy's log-prob, and if the group comes back again
  before the others finish, the extra transition is dropped and the carry
  replaced by the newer step (PPO's ratio uses the stored behaviour log-probs).
  Such dropped transitions are counted in ``dropped``. ``actors.ActorPool``
  in order "turn" (the default) serves its groups round-robin, so none are
  dropped with it: while the policy runs on one group, the actors of every
  other group step. In order "ready" a fast actor's group can come back first
  near a rollout's end; its extra steps are the ones dropped.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import numpy as np
import torch

from .heads import to_env
from .policy import Policy, State


class Rollout:
    """T steps x N rows of experience on ``device``, filled from ``pool`` by ``policy``."""

    def __init__(self, policy: Policy, pool: Any, num_steps: int, device: torch.device) -> None:
        self.policy = policy
        self.pool = pool
        self.T = num_steps
        self.N = pool.num_agents
        self.device = device
        self.single_group = pool.batch_rows == pool.num_agents
        space = pool.single_observation_space
        obs_dtype = torch.from_numpy(np.zeros(1, dtype=space.dtype)).dtype
        T, N = self.T, self.N
        z: dict[str, Any] = dict(device=device)
        self.obs = torch.zeros((T, N, *space.shape), dtype=obs_dtype, **z)
        self.actions = torch.zeros((T, N, *policy.head.shape), dtype=policy.head.dtype, **z)
        self.logprobs = torch.zeros((T, N), **z)
        self.values = torch.zeros((T, N), **z)
        self.rewards = torch.zeros((T, N), **z)
        self.final_values = torch.zeros((T, N), **z)
        self.terminals = torch.zeros((T, N), dtype=torch.bool, **z)
        self.truncations = torch.zeros((T, N), dtype=torch.bool, **z)
        self.starts = torch.zeros((T, N), dtype=torch.bool, **z)
        self.masks = torch.zeros((T, N), dtype=torch.bool, **z)
        self.next_values = torch.zeros(N, **z)
        self.state0: State = policy.initial_state(N, device)
        self.state: State = policy.initial_state(N, device)
        self.step = np.zeros(N, dtype=np.int64)
        self.pending = np.zeros(N, dtype=bool)  # an action was sent; its transition is still to come
        self.carried = np.zeros(N, dtype=bool)  # several groups: row already bootstrapped, step 0 carried
        self.carry: dict[str, Any] = {}  # a tensor per buffer; "state": the LSTM state's tensors
        self.held: tuple[Any, ...] | None = None
        self.pinned = device.type == "cuda"
        self.staging: dict[str, torch.Tensor] = {}
        # Seconds spent: "env" waiting on the pool, "inference" acting on batches,
        # "copy" the part of "inference" that moves data between host and device.
        self.times: dict[str, float] = defaultdict(float)
        self.dropped = 0  # transitions of early-finished groups left out of a rollout (see above)

    def restart(self, seed: int) -> None:
        """Resets the pool from ``seed`` and forgets any episode in flight (deterministic resume)."""
        self.pool.async_reset(seed)
        self.step[:] = 0
        self.pending[:] = False
        self.carried[:] = False
        self.held = None
        self.state = self.policy.initial_state(self.N, self.device)

    def _to_device(self, array: np.ndarray, name: str) -> torch.Tensor:
        """Copies a pool view to the device; on CUDA through a pinned staging tensor, without blocking.

        Each ``name`` has its own staging tensor, reused only after the step's
        actions came back to the CPU (which waits for every copy before it).
        """
        start = time.perf_counter()
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if not self.pinned:
            out = tensor.to(self.device)
        else:
            stage = self.staging.get(name)
            if stage is None or stage.shape != tensor.shape or stage.dtype != tensor.dtype:
                stage = self.staging[name] = torch.empty(tensor.shape, dtype=tensor.dtype).pin_memory()
            stage.copy_(tensor)
            out = stage.to(self.device, non_blocking=True)
        self.times["copy"] += time.perf_counter() - start
        return out

    def _rows_state(self, rows: torch.Tensor) -> State:
        return None if self.state is None else (self.state[0][:, rows], self.state[1][:, rows])

    def _begin(self) -> None:
        """Starts a rollout: moves carried steps into slot 0."""
        self.step[:] = 0
        if self.carried.any():
            rows = torch.from_numpy(np.flatnonzero(self.carried)).to(self.device)
            for key in ("obs", "actions", "logprobs", "values", "starts", "masks"):
                getattr(self, key)[0, rows] = self.carry[key][rows]
            if self.state0 is not None:
                for s0, c in zip(self.state0, self.carry["state"], strict=True):
                    s0[:, rows] = c[:, rows]
            self.step[self.carried] = 1
            self.carried[:] = False

    @torch.inference_mode()
    def collect(self) -> None:
        """Fills T steps for every row and the bootstrap values after them."""
        self._begin()
        waiting = self.N
        while waiting:
            if self.held is not None:
                batch, self.held = self.held, None
                fresh = False
            else:
                start = time.perf_counter()
                batch = self.pool.recv()
                self.times["env"] += time.perf_counter() - start
                fresh = True
            waiting -= self._process(batch, fresh)

    def _process(self, batch: tuple[Any, ...], fresh: bool) -> int:
        """Handles one batch; returns how many rows it completed."""
        start = time.perf_counter()
        obs, rewards, terminals, truncations, masks, env_ids = batch[:6]
        ids = np.asarray(env_ids)
        t = int(self.step[ids[0]])
        if not np.all(self.step[ids] == t):
            raise RuntimeError("a pool batch mixed env rows at different steps; groups must step together")
        rows = torch.from_numpy(ids).to(self.device)
        obs_d = self._to_device(obs, "obs")
        starts = batch[6] if not fresh else self._to_device(np.logical_or(terminals, truncations), "starts")
        completed = 0
        if fresh and self.pending[ids].any():
            self._record(rows, ids, t, rewards, terminals, truncations, starts)
        overflow = bool(self.carried[ids[0]])
        if t == self.T and not overflow:
            completed = len(ids)
            if self.single_group:
                self.next_values[rows] = self.policy.value(obs_d, self._rows_state(rows), starts)
                self.held = (obs, rewards, terminals, truncations, masks, env_ids, starts)
                self.times["inference"] += time.perf_counter() - start
                return completed
        state = self._rows_state(rows)
        actions, logprobs, values, new_state = self.policy.act(obs_d, state, starts)
        mask_d = self._to_device(masks, "masks")
        if t < self.T:
            slot = dict(
                obs=obs_d, actions=actions, logprobs=logprobs, values=values, starts=starts, masks=mask_d
            )
            for key, value in slot.items():
                getattr(self, key)[t, rows] = value
            if t == 0 and self.state0 is not None and state is not None:
                for s0, s in zip(self.state0, state, strict=True):
                    s0[:, rows] = s
            self.step[ids] = t + 1
        else:  # several groups: bootstrap now, carry this step into the next rollout
            self.next_values[rows] = values if not overflow else self.next_values[rows]
            self._carry(rows, obs_d, actions, logprobs, values, starts, mask_d, state)
            self.carried[ids] = True
        if self.state is not None and new_state is not None:
            for s, n in zip(self.state, new_state, strict=True):
                s[:, rows] = n
        if self.pinned:
            torch.cuda.synchronize(self.device)  # to_env would wait for it anyway; this keeps it out of "copy"
        copied = time.perf_counter()
        actions_np = to_env(actions)
        done = time.perf_counter()
        self.times["copy"] += done - copied
        self.times["inference"] += done - start
        start = time.perf_counter()
        self.pool.send(actions_np)
        self.times["env"] += time.perf_counter() - start
        self.pending[ids] = True
        return completed

    def _record(
        self,
        rows: torch.Tensor,
        ids: np.ndarray,
        t: int,
        rewards: np.ndarray,
        terminals: np.ndarray,
        truncations: np.ndarray,
        starts: torch.Tensor,
    ) -> None:
        """Writes the transition caused by the previous step's actions into slot t-1."""
        if self.carried[ids[0]] or t == 0:
            self.dropped += len(ids)  # an overflow step of a finished group (see module docstring)
            return
        if getattr(self.pool, "lost", False):
            # actors.RemotePool: this group's host was lost, the transition never came; the
            # step it follows must not train (its reward and next observation are unknown).
            self.masks[t - 1, rows] = False
        term = self._to_device(terminals, "terminals").bool()
        trunc = self._to_device(truncations, "truncations").bool()
        final = torch.zeros(len(ids), device=self.device)
        cut = np.flatnonzero(np.asarray(truncations) & ~np.asarray(terminals, dtype=bool))
        if len(cut):
            # V(final observation), from the ended episode's own LSTM state.
            sub = torch.from_numpy(cut).to(self.device)
            final_obs = self._to_device(np.asarray(self.pool.final_observations)[cut], "final")
            state = self._rows_state(rows[sub])
            final[sub] = self.policy.value(
                final_obs, state, torch.zeros(len(cut), dtype=torch.bool, device=self.device)
            )
        self.rewards[t - 1, rows] = self._to_device(rewards, "rewards").float()
        self.terminals[t - 1, rows] = term
        self.truncations[t - 1, rows] = trunc
        self.final_values[t - 1, rows] = final

    def _carry(
        self,
        rows: torch.Tensor,
        obs: torch.Tensor,
        actions: torch.Tensor,
        logprobs: torch.Tensor,
        values: torch.Tensor,
        starts: torch.Tensor,
        masks: torch.Tensor,
        state: State,
    ) -> None:
        if not self.carry:
            self.carry = {
                key: torch.zeros_like(getattr(self, key)[0])
                for key in ("obs", "actions", "logprobs", "values", "starts", "masks")
            }
            if self.state0 is not None:
                self.carry["state"] = tuple(torch.zeros_like(s) for s in self.state0)
        for key, value in dict(
            obs=obs, actions=actions, logprobs=logprobs, values=values, starts=starts, masks=masks
        ).items():
            self.carry[key][rows] = value
        if state is not None:
            for c, s in zip(self.carry["state"], state, strict=True):
                c[:, rows] = s

    def reward_per_step(self) -> float:
        """Mean reward of the last rollout's unmasked steps."""
        return float((self.rewards * self.masks).sum() / self.masks.sum().clamp(min=1))

    def batch(self) -> dict[str, Any]:
        """The rollout as the tensors :func:`learner.ppo.update` reads (advantages added by the caller)."""
        return dict(
            obs=self.obs,
            actions=self.actions,
            logprobs=self.logprobs,
            values=self.values,
            masks=self.masks,
            starts=self.starts,
            state=self.state0,
        )
