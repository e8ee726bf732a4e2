"""Actor-critic policies built from the env's spaces, with an optional LSTM core.

The encoder follows the observation space (``kind = "auto"``, see
:func:`encoder_kind`): packed structured rows (``PackedSpace``) and other
non-Box spaces get :class:`learner.encoders.StructuredEncoder`, uint8 images
(HxWxC or CxHxW, e.g. Atari's 4x84x84) the Nature CNN, int grids of cell codes
the small grid CNN, vectors the MLP. The action head follows the action space
(:mod:`learner.heads`: categorical, factored categoricals, Bernoulli, diagonal
Gaussian, or one head per leaf of a mixed structured space).

All share one interface so the rollout and PPO never ask which one they hold:

- ``act(obs, state, starts)`` for collection: one step for a batch of rows;
- ``forward(obs, actions, state, starts)`` for the update: replays a (T, B)
  segment from its stored initial state and returns log-probs, entropies, values;
- ``greedy(obs, state, starts)`` for evaluation.

``starts`` marks rows whose observation is the first of an episode; the LSTM
state of those rows is zeroed before the step, the others' is left untouched.
Without an LSTM the state is ``None`` throughout.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

import gymnasium
import numpy as np
import torch
from torch import nn

from .encoders import ImageEncoder, SmallImageEncoder, StructuredEncoder, image_channels_first
from .heads import ActionHead
from .nethack_encoder import NetHackEncoder

State = tuple[torch.Tensor, torch.Tensor] | None


_Layer = TypeVar("_Layer", nn.Linear, nn.Conv2d)


def _init(layer: _Layer, std: float = float(np.sqrt(2)), bias: float = 0.0) -> _Layer:
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(cast(torch.Tensor, layer.bias), bias)  # every layer here has its bias
    return layer


class MLPEncoder(nn.Module):
    """Two tanh layers, as CleanRL's CartPole agent."""

    def __init__(self, obs_shape: tuple[int, ...], hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            _init(nn.Linear(int(np.prod(obs_shape)), hidden)),
            nn.Tanh(),
            _init(nn.Linear(hidden, hidden)),
            nn.Tanh(),
        )

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs.float())


class GridEncoder(nn.Module):
    """Nature-CNN shape scaled down to small egocentric grids (e.g. 11x11 or 7x7 int8 cell codes).

    Cell codes are categories, not intensities, so each is embedded (a learned
    one-hot) before three 3x3 convolutions; float images skip the embedding.
    """

    def __init__(
        self, space: gymnasium.spaces.Box, hidden: int, embed: int = 8, widths: tuple[int, int, int] = (32, 64, 64)
    ) -> None:
        super().__init__()
        shape = space.shape
        self.codes = np.issubdtype(space.dtype, np.integer)
        if self.codes:
            if len(shape) != 2:
                raise ValueError(f"policy.kind 'cnn' wants int grids shaped (H, W), got {shape}")
            self.low = int(np.min(space.low))
            self.embed = nn.Embedding(int(np.max(space.high)) - self.low + 1, embed)
            channels = embed
        else:
            if len(shape) != 3:
                raise ValueError(f"policy.kind 'cnn' wants float images shaped (C, H, W), got {shape}")
            channels = shape[0]
        c1, c2, c3 = widths
        self.conv = nn.Sequential(
            _init(nn.Conv2d(channels, c1, 3, padding=1)),
            nn.ReLU(),
            _init(nn.Conv2d(c1, c2, 3, stride=2, padding=1)),
            nn.ReLU(),
            _init(nn.Conv2d(c2, c3, 3, padding=1)),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.conv(self._planes(torch.zeros((1, *shape), dtype=_torch_dtype(space.dtype)))).shape[1]
        self.out = nn.Sequential(_init(nn.Linear(flat, hidden)), nn.ReLU())

    def _planes(self, obs: torch.Tensor) -> torch.Tensor:
        if self.codes:
            codes = (obs.long() - self.low).clamp_(0, self.embed.num_embeddings - 1)
            return self.embed(codes).permute(0, 3, 1, 2)
        return obs.float()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.out(self.conv(self._planes(obs)))


class CodeEncoder(nn.Module):
    """One-hot cell codes through two dense layers (the shape of PufferLib's Ocean policies).

    An (H, W) grid of K cell codes is the one-hot vector of H*W*K entries that a
    ``Linear(H*W*K, hidden)`` reads; only H*W of them are ones, so the first
    layer is a sum of H*W rows of ``table``. Inference takes that sum directly
    (``embedding_bag``, a gather of H*W rows); under autograd the one-hot rows
    go through a dense matrix product instead, whose backward is one GEMM where
    ``embedding_bag``'s is a slow scatter on the CPU. Both compute the same
    function (``tests/learner/test_policy.py`` checks it). About H*W*hidden +
    hidden**2 multiply-adds per sample: 17k for snake's 11x11 window at 128,
    where the ``cnn`` encoder costs 2.6M.
    """

    offsets: torch.Tensor  # a registered buffer

    def __init__(self, space: gymnasium.spaces.Box, hidden: int) -> None:
        super().__init__()
        if not np.issubdtype(space.dtype, np.integer) or len(space.shape) != 2:
            raise ValueError(f"policy.kind 'embed' wants int grids of cell codes shaped (H, W), got {space}")
        self.low = int(np.min(space.low))
        self.codes = int(np.max(space.high)) - self.low + 1
        cells = int(np.prod(space.shape))
        self.register_buffer("offsets", torch.arange(cells, dtype=torch.int64) * self.codes, persistent=False)
        first = _init(nn.Linear(cells * self.codes, hidden))
        self.table = nn.Parameter(first.weight.detach().t().contiguous())  # (cells * codes, hidden)
        self.bias = nn.Parameter(first.bias.detach().clone())
        self.out = nn.Sequential(nn.ReLU(), _init(nn.Linear(hidden, hidden)), nn.ReLU())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        index = (obs.reshape(obs.shape[0], -1).long() - self.low).clamp_(0, self.codes - 1) + self.offsets
        if torch.is_grad_enabled() and self.table.requires_grad:
            onehot = torch.zeros((obs.shape[0], self.table.shape[0]), dtype=self.table.dtype, device=obs.device)
            onehot.scatter_(1, index, 1.0)
            x = torch.addmm(self.bias, onehot, self.table)
        else:
            x = nn.functional.embedding_bag(index, self.table, mode="sum") + self.bias
        return self.out(x)


def _torch_dtype(dtype: Any) -> torch.dtype:
    return torch.from_numpy(np.zeros(1, dtype=dtype)).dtype


PRECISIONS = ("fp32", "bf16")


class _Compiled:
    """``torch.compile(module)``, falling back to the module itself (with one warning) if compiling fails."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.compiled: Any = torch.compile(module)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.compiled is not None:
            try:
                return self.compiled(x)
            except Exception as exc:  # noqa: BLE001 - any compiler failure: the eager module still works
                import warnings

                warnings.warn(f"torch.compile of the policy failed, running it eagerly: {exc}", stacklevel=2)
                self.compiled = None
        return self.module(x)


KINDS = ("auto", "mlp", "cnn", "cnn_small", "embed", "nature", "image_small", "nethack", "structured")


def encoder_kind(space: gymnasium.spaces.Space) -> str:
    """The encoder ``kind = "auto"`` picks for an observation space."""
    if getattr(space, "layout", None) is not None or not isinstance(space, gymnasium.spaces.Box):
        return "structured"
    if space.dtype == np.uint8 and image_channels_first(space.shape) is not None:
        return "nature"
    if np.issubdtype(space.dtype, np.integer) and len(space.shape) == 2:
        return "cnn"
    return "mlp"


class StructuredTrunk(nn.Module):
    """Per-leaf encoders over the unpacked rows, then one layer to ``hidden`` features."""

    def __init__(self, space: gymnasium.spaces.Space, hidden: int) -> None:
        super().__init__()
        self.leaves = StructuredEncoder(space, hidden=hidden)
        self.out = nn.Sequential(_init(nn.Linear(self.leaves.features_dim, hidden)), nn.ReLU())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.out(self.leaves(obs))


class Policy(nn.Module):
    """Encoder, optional LSTM core, an action head for any supported action space and a value head."""

    def __init__(
        self,
        obs_space: gymnasium.spaces.Space,
        action_space: gymnasium.spaces.Space,
        kind: str = "auto",
        hidden: int = 64,
        lstm: bool = False,
        lstm_hidden: int = 64,
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"policy.kind must be one of {', '.join(KINDS)}, got {kind!r}")
        auto = encoder_kind(obs_space)
        kind = auto if kind == "auto" else kind
        if auto == "structured" and kind not in ("structured", "nethack"):
            raise ValueError(f"policy.kind {kind!r} cannot read {obs_space}; use 'auto' or 'structured'")
        self.kind = kind
        # Every kind but structured and nethack reads an array space (a Box; mlp also a Discrete's ()):
        box = cast(gymnasium.spaces.Box, obs_space)
        if kind == "mlp":
            self.encoder: nn.Module = MLPEncoder(box.shape, hidden)
        elif kind == "cnn":
            self.encoder = GridEncoder(box, hidden)
        elif kind == "cnn_small":  # a quarter of the channels: ~7x cheaper per sample
            self.encoder = GridEncoder(box, hidden, widths=(16, 32, 32))
        elif kind == "embed":
            self.encoder = CodeEncoder(box, hidden)
        elif kind == "nature":
            first = image_channels_first(box.shape)
            if first is None:
                raise ValueError(f"policy.kind 'nature' wants HxWxC or CxHxW images, got {obs_space.shape}")
            self.encoder = ImageEncoder(box.shape, first, hidden, scale=1 / 255)
        elif kind == "image_small":
            first = image_channels_first(box.shape)
            if first is None or obs_space.dtype != np.uint8:
                raise ValueError(f"policy.kind 'image_small' wants uint8 HxWxC or CxHxW images, got {obs_space}")
            self.encoder = SmallImageEncoder(box.shape, first, hidden)
        elif kind == "nethack":
            self.encoder = NetHackEncoder(obs_space, hidden)
        else:
            self.encoder = StructuredTrunk(obs_space, hidden)
        features = hidden
        # CleanRL's CartPole agent keeps the critic apart: values then never pull on the policy's features.
        self.critic_encoder: nn.Module | None = (
            MLPEncoder(box.shape, hidden) if kind == "mlp" and not lstm else None
        )
        self.lstm: nn.LSTM | None = None
        if lstm:
            self.lstm = nn.LSTM(hidden, lstm_hidden)
            for name, param in self.lstm.named_parameters():
                if "bias" in name:
                    nn.init.constant_(param, 0)
                else:
                    nn.init.orthogonal_(param, 1.0)
            features = lstm_hidden
        self.head = ActionHead(action_space, features)
        self.critic = _init(nn.Linear(features, 1), std=1.0)

    precision = "fp32"

    def accelerate(self, precision: str = "fp32", compile: bool = False) -> Policy:
        """The GPU learner's options, for the encoder (where a policy's work is): ``precision``
        "bf16" runs it under bfloat16 autocast (heads, LSTM and losses stay float32);
        ``compile`` runs it through ``torch.compile``, and back to eager, with one warning,
        if compiling fails on first use. Neither changes the parameters or their names, so
        checkpoints load either way."""
        if precision not in PRECISIONS:
            raise ValueError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.precision = precision
        # Kept out of nn.Module's registry: the compiled wrapper would rename every parameter.
        self.__dict__["_compiled"] = _Compiled(self.encoder) if compile else None
        return self

    def _encode(self, obs: torch.Tensor) -> torch.Tensor:
        encoder = self.__dict__.get("_compiled") or self.encoder
        if self.precision == "fp32":
            return encoder(obs)
        with torch.autocast(obs.device.type, dtype=torch.bfloat16):
            return encoder(obs).float()

    def initial_state(self, rows: int, device: torch.device | str = "cpu") -> State:
        """Zero LSTM state for ``rows`` rows (``None`` without an LSTM)."""
        if self.lstm is None:
            return None
        shape = (1, rows, self.lstm.hidden_size)
        return torch.zeros(shape, device=device), torch.zeros(shape, device=device)

    def _core(self, obs: torch.Tensor, state: State, starts: torch.Tensor) -> tuple[torch.Tensor, State]:
        """obs (T, B, ...) and starts (T, B) -> features (T, B, F), state after the last step."""
        steps, rows = obs.shape[:2]
        x = self._encode(obs.reshape(steps * rows, *obs.shape[2:]))
        if self.lstm is None:
            return x.reshape(steps, rows, -1), None
        if state is None:
            raise ValueError("an LSTM policy needs a state; use initial_state()")
        x = x.reshape(steps, rows, -1)
        keep = (~starts.bool()).to(x.dtype)
        h, c = state
        out = []
        for t in range(steps):
            k = keep[t].view(1, -1, 1)
            y, (h, c) = self.lstm(x[t].unsqueeze(0), (h * k, c * k))
            out.append(y)
        return torch.cat(out, dim=0), (h, c)

    def act(
        self, obs: torch.Tensor, state: State, starts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, State]:
        """Samples one action per row: ``(actions, logprobs, values, next_state)``.

        ``actions`` are ``(B, *head.shape)`` of ``head.dtype``: the env's action
        buffer representation (packed uint8 rows for structured spaces).
        """
        x, state = self._core(obs.unsqueeze(0), state, starts.unsqueeze(0))
        actions, logprobs = self.head.sample(x[0])
        return actions, logprobs, self._value(obs.unsqueeze(0), x)[0], state

    def value(self, obs: torch.Tensor, state: State, starts: torch.Tensor) -> torch.Tensor:
        """V(obs) per row, without advancing anything."""
        x, _ = self._core(obs.unsqueeze(0), state, starts.unsqueeze(0))
        return self._value(obs.unsqueeze(0), x)[0]

    def greedy(self, obs: torch.Tensor, state: State, starts: torch.Tensor) -> tuple[torch.Tensor, State]:
        """The most likely action per row, for evaluation."""
        x, state = self._core(obs.unsqueeze(0), state, starts.unsqueeze(0))
        return self.head.mode(x[0]), state

    def forward(
        self, obs: torch.Tensor, actions: torch.Tensor, state: State, starts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Replays a (T, B) segment: ``(logprobs, entropies, values)``, each (T, B)."""
        x, _ = self._core(obs, state, starts)
        logprobs, entropies = self.head.evaluate(x, actions)
        return logprobs, entropies, self._value(obs, x)

    def _value(self, obs: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """(T, B) values, from the critic's own trunk when it has one."""
        if self.critic_encoder is not None:
            steps, rows = obs.shape[:2]
            features = self.critic_encoder(obs.reshape(steps * rows, *obs.shape[2:])).reshape(steps, rows, -1)
        return self.critic(features).squeeze(-1)


def make_policy(
    config: dict[str, Any], obs_space: gymnasium.spaces.Space, action_space: gymnasium.spaces.Space
) -> Policy:
    """The policy the ``[policy]`` section describes (``[train]``'s precision and compile flag applied)."""
    from .schema import PolicyConfig, TrainConfig

    p = PolicyConfig.from_config(config.get("policy", {}))
    policy = Policy(obs_space, action_space, kind=p.kind, hidden=p.hidden, lstm=p.lstm, lstm_hidden=p.lstm_hidden)
    train = TrainConfig.from_config(config.get("train", {}))
    return policy.accelerate(train.precision, train.compile)
