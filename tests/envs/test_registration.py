"""A new native env is one header plus one line (envs/c/env.h says exactly what).

A temporary copy of ``envs/`` and ``setup.py`` gets ``envs/c/tiny.h`` and its
``#include`` line in ``envs/c/registry.h``, nothing else; the copy is built with the
package's own build and a child process steps the new env through ``envs.make``.
The same copy then shows that the build treats a warning as an error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A counter: the observation is the step within the episode, the reward the action,
# and every episode ends (terminal) after `length` steps.
TINY_H = r"""
#ifndef TINY_H
#define TINY_H
#include "env.h"

static const ParamSpec tiny_PARAMS[] = {
    {"length", 3, 1, 100, 1, "steps per episode"},
    {0},
};
static const ExtraSpec tiny_EXTRAS[] = {{0}};

typedef struct {
    Log log;
    int num_envs, length;
    float *obs, *rewards;
    const int32_t *actions;
    uint8_t *terminals, *truncations, *masks;
    int *t;
    float *ret;
} tiny;

static void tiny_layout(const double *p, Layout *L) {
    (void)p;
    L->agents_per_env = 1;
    L->obs_ndim = 1;
    L->obs_shape[0] = 1;
    L->obs_dtype = 'f';
    L->obs_low = 0;
    L->obs_high = 100;
    L->num_actions = 2;
}

static int tiny_init(tiny *e, const Buffers *b, char *err, size_t n) {
    e->num_envs = b->num_envs;
    e->length = (int)b->params[0];
    e->obs = b->observations;
    e->actions = b->actions;
    e->rewards = b->rewards;
    e->terminals = b->terminals;
    e->truncations = b->truncations;
    e->masks = b->masks;
    e->t = calloc((size_t)b->num_envs, sizeof(int));
    e->ret = calloc((size_t)b->num_envs, sizeof(float));
    if (!e->t || !e->ret) return ENV_ERR(err, n, "tiny: out of memory");
    return 0;
}

static void tiny_reset(tiny *e, uint64_t seed) {
    (void)seed;
    for (int i = 0; i < e->num_envs; i++) {
        e->t[i] = 0;
        e->ret[i] = 0;
        e->obs[i] = 0;
        e->rewards[i] = 0;
        e->terminals[i] = e->truncations[i] = 0;
        e->masks[i] = 1;
    }
}

static void tiny_step(tiny *e) {
    for (int i = 0; i < e->num_envs; i++) {
        float r = e->actions[i] == 1 ? 1.0f : 0.0f;
        e->rewards[i] = r;
        e->ret[i] += r;
        e->t[i]++;
        e->terminals[i] = e->t[i] >= e->length;
        if (e->terminals[i]) {
            log_episode(&e->log, e->ret[i], e->t[i], e->ret[i]);
            e->t[i] = 0;
            e->ret[i] = 0;
        }
        e->obs[i] = (float)e->t[i];
    }
}

static void tiny_free(tiny *e) {
    free(e->t);
    free(e->ret);
    e->t = NULL;
    e->ret = NULL;
}

#endif
ENV_KIND(tiny)
"""

CHILD = r"""
import numpy as np
import envs
from envs import _native

print("loaded", _native.__file__)
assert envs.native_names() == sorted(["cartpole", "grid", "moba", "snake", "tiny"]), envs.native_names()
env = envs.make("tiny", num_envs=2, seed=0, length=3)
env.reset(0)
env.actions[:] = [1, 0]
seen = []
for _ in range(3):
    env.step()
    seen.append((env.observations[:, 0].tolist(), env.rewards.tolist(), env.terminals.tolist()))
assert seen[0] == ([1.0, 1.0], [1.0, 0.0], [False, False]), seen
assert seen[2] == ([0.0, 0.0], [1.0, 0.0], [True, True]), seen  # auto-reset in the same step
stats = env.episode_stats()
assert stats["episodes"] == 2 and stats["episode_return"] == 1.5 and stats["episode_length"] == 3, stats
try:
    envs.make("tiny", length=0)
except ValueError as error:
    assert "length" in str(error), error
else:
    raise AssertionError("length=0 was accepted")
envs.make("cartpole", num_envs=2).step()  # the envs already there still build
print("done")
"""


def build(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace", "--build-temp", str(root / "build")],
        cwd=root, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="module")
def copy_with_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: cannot build the extension")
    root = tmp_path_factory.mktemp("registration")
    shutil.copytree(ROOT / "envs", root / "envs", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    shutil.copy(ROOT / "setup.py", root / "setup.py")
    (root / "envs" / "c" / "tiny.h").write_text(TINY_H)
    with open(root / "envs" / "c" / "registry.h", "a") as registry:
        registry.write('#include "tiny.h"\n')  # the one line
    return root


def test_one_header_and_one_line_add_an_env(copy_with_tiny: Path) -> None:
    built = build(copy_with_tiny)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    child = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=copy_with_tiny, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(copy_with_tiny), "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert child.returncode == 0, child.stdout[-3000:] + child.stderr[-3000:]
    lines = child.stdout.splitlines()
    assert Path(lines[0].split()[1]).parent == copy_with_tiny / "envs", lines  # the copy's build ran
    assert lines[-1] == "done"


def test_a_warning_in_an_env_header_fails_the_build(copy_with_tiny: Path) -> None:
    header = copy_with_tiny / "envs" / "c" / "tiny.h"
    header.write_text(TINY_H.replace("    (void)seed;\n", "    int unused = 0;\n"))
    built = build(copy_with_tiny)
    assert built.returncode != 0, built.stdout[-3000:]
    assert "unused" in built.stderr and "-Werror" in built.stderr, built.stderr[-3000:]
