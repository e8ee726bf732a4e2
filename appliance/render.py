"""`appliance render moba [RUN_DIR]`: draw one game as PNG frames or an animated GIF, and as text.

The frames come from the env's extras (`terrain`, `heroes`, `units`), so what is drawn is
the game's own state, not a reconstruction. A run's latest checkpoint plays team 0
greedily; without a run the scripted bot does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import envs

HERO_COLS = 20
UNIT_COLS = 8
CREEP, TOWER, ANCIENT, CAMP = 2, 3, 4, 5
TERRAIN_RGB = {0: (34, 52, 34), 1: (12, 28, 12), 2: (96, 86, 66), 3: (70, 70, 86)}
TEAM_RGB = ((70, 160, 255), (255, 90, 70))
NEUTRAL_RGB = (230, 210, 60)
# Text: terrain, then units (team 0 upper case / team 1 lower case).
TERRAIN_CHARS = {0: " ", 1: "#", 2: ".", 3: ":"}
UNIT_CHARS = {CREEP: ("+", "x"), TOWER: ("T", "t"), ANCIENT: ("A", "a"), CAMP: ("n", "n")}


@dataclass
class Frame:
    tick: int
    image: Any  # PIL.Image.Image
    text: str


def frame(terrain: np.ndarray, heroes: np.ndarray, units: np.ndarray, tick: int, scale: int = 8) -> Frame:
    """One picture and one text map of a game state (one map's extras rows)."""
    from PIL import Image, ImageDraw

    size = int(round(np.sqrt(terrain.size)))
    cells = terrain.reshape(size, size)
    heroes = heroes.reshape(-1, HERO_COLS)
    units = units.reshape(-1, UNIT_COLS)
    rgb = np.zeros((size, size, 3), dtype=np.uint8)
    for code, color in TERRAIN_RGB.items():
        rgb[cells == code] = color
    image = Image.fromarray(rgb).resize((size * scale, size * scale), Image.NEAREST)  # type: ignore[attr-defined]  # set from Resampling at import: stubs miss it
    draw = ImageDraw.Draw(image)
    text = [[TERRAIN_CHARS.get(int(c), "?") for c in row] for row in cells]
    for kind, team, x, y, hp, hp_max, alive, _target in units:
        if not alive:
            continue
        x, y, kind, team = int(x), int(y), int(kind), int(team)
        color = NEUTRAL_RGB if kind == CAMP else TEAM_RGB[team]
        box = [x * scale, y * scale, (x + 1) * scale - 1, (y + 1) * scale - 1]
        if kind in (TOWER, ANCIENT):
            pad = -scale // 2 if kind == ANCIENT else 0
            draw.rectangle([box[0] + pad, box[1] + pad, box[2] - pad, box[3] - pad], fill=color, outline=(0, 0, 0))
            bar = int(round((scale - pad * 2) * hp / hp_max))
            draw.rectangle([box[0] + pad, box[1] + pad - 3, box[0] + pad + bar, box[1] + pad - 2], fill=(0, 230, 0))
        else:
            inset = scale // 3
            draw.ellipse([box[0] + inset, box[1] + inset, box[2] - inset, box[3] - inset], fill=color)
        text[y][x] = UNIT_CHARS[kind][team & 1]
    for k, row in enumerate(heroes):
        if not row[14]:  # alive
            continue
        x, y, team = int(row[1]), int(row[2]), int(row[0])
        box = [x * scale, y * scale, (x + 1) * scale - 1, (y + 1) * scale - 1]
        draw.ellipse(box, fill=TEAM_RGB[team], outline=(255, 255, 255))
        draw.rectangle([box[0], box[1] - 2, box[0] + int(round(scale * row[3] / row[4])), box[1] - 1],
                       fill=(0, 230, 0))
        text[y][x] = str(k % 5 + 1) if team == 0 else "abcde"[k % 5]
    return Frame(tick, image, "\n".join("".join(row) for row in text))


def _policy(run_dir: str | Path, obs_space: Any, act_space: Any) -> tuple[Any, dict[str, Any]]:
    import torch  # noqa: F401  (the learner needs it; imported here to keep `render` light without a run)

    from learner import checkpoint
    from learner.policy import make_policy

    _, state = checkpoint.load_latest(Path(run_dir))
    policy = make_policy(state["config"], obs_space, act_space)
    policy.load_state_dict(state["model"])
    policy.eval()
    return policy, state["config"]


def _check_out(out: Path) -> None:
    """Refuses an ``out`` that cannot take the frames, in one sentence."""
    if out.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp"):
        raise ValueError(f"--out {out}: one image cannot hold the game; name a .gif, or a directory for one "
                         "PNG per frame")
    if out.suffix.lower() == ".gif":
        if out.is_dir():
            raise ValueError(f"--out {out} is a directory; name a .gif file")
        if out.parent.exists() and not out.parent.is_dir():
            raise ValueError(f"--out {out}: {out.parent} is a file, not a directory")
    elif out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; name a .gif, or a directory for one PNG per frame")


def render(run_dir: str | Path | None, out: str | Path, opponent: str = "scripted", steps: int = 600,
           every: int = 2, scale: int = 8, seed: int = 0) -> list[Frame]:
    """Plays one game (up to ``steps`` ticks) and writes every ``every``-th frame to ``out``.

    ``out`` ending in ``.gif`` is one animated GIF; anything else is a directory of PNGs.
    """
    from learner.evaluate import OPPONENTS

    _check_out(Path(out))  # before the game is played
    params: dict[str, Any] = {}
    policy = None
    if run_dir is not None:
        from learner import checkpoint
        from learner.config import complete

        _, state = checkpoint.load_latest(checkpoint.check_run_dir(run_dir))
        config = complete(state["config"])
        if config["env"]["name"] != "moba":
            raise ValueError(f"{run_dir} trained {config['env']['name']}, not moba")
        params = dict(config["env"]["params"])
    else:
        params["player"] = OPPONENTS["scripted"]
    params["opponent"] = OPPONENTS[opponent]
    params["extras"] = 1  # the heroes and units tables the frames are drawn from
    env = envs.make("moba", num_envs=1, seed=seed, **params)
    try:
        if run_dir is not None:
            policy, _ = _policy(run_dir, env.single_observation_space, env.single_action_space)
        frames = [frame(env.terrain[0], env.heroes[0], env.units[0], 0, scale)]
        for t in range(1, steps + 1):
            if policy is not None:
                import torch

                from learner.heads import to_env

                with torch.no_grad():
                    actions, _ = policy.greedy(torch.from_numpy(env.observations), None, torch.zeros(env.num_agents))
                env.actions[...] = to_env(actions)
            env.step()
            if env.game[0, 0] == 0:  # the game ended: its last state is gone with the reset
                break
            if t % every == 0:
                frames.append(frame(env.terrain[0], env.heroes[0], env.units[0], t, scale))
    finally:
        env.close()
    out = Path(out)
    if out.suffix.lower() == ".gif":
        out.parent.mkdir(parents=True, exist_ok=True)
        frames[0].image.save(out, save_all=True, append_images=[f.image for f in frames[1:]], duration=60, loop=0)
    else:
        out.mkdir(parents=True, exist_ok=True)
        for f in frames:
            f.image.save(out / f"frame_{f.tick:05d}.png")
    return frames
