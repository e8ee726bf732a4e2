"""One creator contract for envs.make, SerialPool, ActorPool and the adapters; bad input is one sentence."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
from pathlib import Path

import gymnasium
import numpy as np
import psutil
import pytest
from pettingzoo.butterfly import knights_archers_zombies_v11

import envs
from actors import ActorPool, SerialPool
from actors.arena import PREFIX, runtime_base, shm_dir
from actors.gym_vector import GymVectorEnv

ROOT = Path(__file__).resolve().parents[2]


def leftovers() -> list[str]:
    mine = f"{PREFIX}{os.getpid()}-"
    found = [p.name for d in (shm_dir(), runtime_base()) for p in d.iterdir() if p.name.startswith(mine)]
    children = [c for c in psutil.Process().children(recursive=True) if "actor" in " ".join(c.cmdline())]
    return found + [str(c.pid) for c in children if c.status() != psutil.STATUS_ZOMBIE and "forkserver" not in
                    " ".join(c.cmdline())]


def returns_int() -> int:
    return 3


def raises() -> gymnasium.Env:
    raise RuntimeError("no such level")


def kaz_parallel(**kwargs: object) -> object:
    return knights_archers_zombies_v11.parallel_env(**kwargs)


POOLS = {
    "make": lambda env, **kw: envs.make(env, num_envs=2, **kw),
    "serial": lambda env, **kw: SerialPool(env, 2, **kw),
    "actors": lambda env, **kw: ActorPool(env, 2, 2, 2, **kw),
    "gym": lambda env, **kw: GymVectorEnv(ActorPool(env, 2, 1, 2, **kw)),
}


@pytest.mark.parametrize("surface", POOLS)
def test_bad_creators_get_one_sentence_naming_them_and_leave_nothing(surface: str) -> None:
    lock = threading.Lock()
    cases = [
        (returns_int, {}, r"env creator test_creators\.returns_int returned int, not one Gymnasium Env"),
        (raises, {}, r"env creator test_creators\.raises raised RuntimeError when called with \(\): no such level"),
        (functools.partial(kaz_parallel, max_zombies=2), {"bogus": 1},
         r"env creator partial\(test_creators\.kaz_parallel, max_zombies=2\) raised TypeError .*'bogus'"),
    ]
    if surface == "actors":
        cases.append((lambda: gymnasium.make("CartPole-v1") if lock else None, {},
                      r"env creator .*<lambda> .* cannot be sent to the actor processes .*lock"))
    for creator, kwargs, message in cases:
        with pytest.raises(envs.CreatorError, match=message) as info:
            POOLS[surface](creator, **kwargs)
        assert "\n" not in str(info.value)
        assert not leftovers()


def test_a_pettingzoo_partial_is_a_creator_everywhere() -> None:
    """The issue's example: partial(parallel_env, max_zombies=...) as the creator, kwargs passed through."""
    creator = functools.partial(knights_archers_zombies_v11.parallel_env, max_zombies=2)
    with ActorPool(creator, num_envs=2, num_actors=1, batch_size=2) as pool:
        pool.async_reset(0)
        obs, *_ = pool.recv()
        assert obs.shape[0] == pool.num_agents == 2 * pool.agents_per_env
    named = envs.make("pettingzoo.butterfly.knights_archers_zombies_v11", num_envs=2, max_zombies=2)
    assert named.single_observation_space == pool.single_observation_space
    named.close()


@envs.vector_env
def two_cartpole_vectors(num_envs: int, seed: int, buffers: object = None, **params: object) -> envs.NativeEnv:
    return envs.NativeEnv("cartpole", num_envs=num_envs, seed=seed, buffers=buffers, **params)


def unmarked_cartpole_vector() -> envs.NativeEnv:
    return envs.NativeEnv("cartpole", num_envs=2)


def test_a_vector_factory_is_a_named_form() -> None:
    with ActorPool(two_cartpole_vectors, 4, 2, 4, seed=3, max_steps=7) as pool, \
            ActorPool("cartpole", 4, 2, 4, seed=3, max_steps=7) as ref:
        pool.async_reset(3)
        ref.async_reset(3)
        for _ in range(20):
            a, b = pool.recv()[0], ref.recv()[0]
            np.testing.assert_array_equal(a, b)
            pool.send(np.ones(4, np.int32))
            ref.send(np.ones(4, np.int32))
    # The same function unmarked is a creator of one env, and fails saying so.
    with pytest.raises(envs.CreatorError, match="returned NativeEnv, not one Gymnasium Env.*envs.vector_env"):
        envs.make(unmarked_cartpole_vector, num_envs=2)


def test_module_function_names_a_creator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_envs.py").write_text(
        "import gymnasium\n"
        "def short(length=500):\n"
        "    return gymnasium.make('CartPole-v1', max_episode_steps=length)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for pool in (SerialPool("my_envs:short", 2, length=4), ActorPool("my_envs:short", 2, 2, 2, length=4)):
        with pool:
            pool.async_reset(0)
            for _ in range(9):  # the reset batch, then 8 steps: two episodes of 4 per env
                pool.recv()
                pool.send(np.array([0, 1]))
            stats = pool.episode_stats()
            assert stats["episodes"] == 4 and stats["episode_length"] == 4
    with pytest.raises(envs.CreatorError, match="cannot import module 'no_such_module'"):
        envs.make("no_such_module:make")


def test_appliance_train_takes_module_function(tmp_path: Path) -> None:
    (tmp_path / "my_envs.py").write_text(
        "import gymnasium\n"
        "def short(length=500):\n"
        "    return gymnasium.make('CartPole-v1', max_episode_steps=length)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    done = subprocess.run(
        [sys.executable, "-m", "appliance", "train", "--env", "my_envs:short", "--total-steps", "2048",
         "--run-dir", str(tmp_path / "run"), "--set", "env.num_envs=8"],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = (tmp_path / "run" / "summary.json").read_text()
    assert '"agent_steps"' in summary
