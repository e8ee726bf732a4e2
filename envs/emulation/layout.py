"""Where each leaf of a structured gymnasium space lives in one flat byte row.

A nested Dict/Tuple of Box, Discrete, MultiDiscrete and MultiBinary becomes a
``uint8`` row per agent; each leaf sits at an offset aligned to its dtype so the
learner can reinterpret the row as typed tensors without copying. The layout is
computed once from the space; packing and unpacking then only touch numpy views
(one assignment per leaf, never one per element).

Simple spaces (a bare Box, Discrete, MultiDiscrete or MultiBinary) are not
packed: their buffer keeps its natural shape and dtype, and their layout has a
single leaf at the empty path.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from gymnasium import spaces

# Storage dtype for index-like leaves: wide enough for any realistic count,
# narrow enough for torch (which cannot embed uint64) and half the bytes of int64.
INDEX_DTYPE = np.dtype(np.int32)
BINARY_DTYPE = np.dtype(np.int8)
LEAF_KINDS = ("box", "discrete", "multi_discrete", "multi_binary")

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Leaf:
    """One array of the structure: its key path, byte offset in the row, dtype and shape."""

    path: Path
    offset: int
    dtype: np.dtype
    shape: tuple[int, ...]
    kind: str
    space: spaces.Space

    @property
    def count(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.count * self.dtype.itemsize

    @property
    def name(self) -> str:
        return path_name(self.path)


@dataclass(frozen=True)
class Layout:
    """How one agent's observation (or action) is stored in its buffer row.

    ``packed`` rows are ``uint8`` of ``nbytes``; natural ones have the leaf's own
    ``shape`` and ``dtype``. ``space`` is the structure the rows stand for, with
    dropped keys removed.
    """

    space: spaces.Space
    leaves: tuple[Leaf, ...]
    packed: bool
    nbytes: int
    dropped: tuple[str, ...] = field(default=())

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one buffer row."""
        return (self.nbytes,) if self.packed else self.leaves[0].shape

    @property
    def dtype(self) -> np.dtype:
        """Dtype of the buffer."""
        return np.dtype(np.uint8) if self.packed else self.leaves[0].dtype

    def row_space(self) -> spaces.Space:
        """The space of one buffer row as the pool and learner see it."""
        if self.packed:
            return PackedSpace(self)
        return self.space


class PackedSpace(spaces.Box):
    """A ``uint8`` Box of packed rows that remembers the structure it packs.

    Generic code sees a plain Box matching the buffer; structure-aware code
    (``learner.unpack``, ``learner.encoders``) reads ``.layout``.
    """

    def __init__(self, layout: Layout) -> None:
        super().__init__(low=0, high=255, shape=(layout.nbytes,), dtype=np.uint8)
        self.layout = layout

    def __repr__(self) -> str:
        return f"PackedSpace({self.layout.nbytes} bytes, {len(self.layout.leaves)} leaves)"


def path_name(path: Path) -> str:
    """``('a', 0, 'b')`` -> ``'a/0/b'``; the key path as users write it in ``drop_keys``."""
    return "/".join(str(p) for p in path)


def layout_of(
    space: spaces.Space,
    drop_keys: Iterable[str] = (),
    drop_unsupported: bool = False,
    what: str = "observation",
) -> Layout:
    """Computes the layout of ``space`` once.

    ``drop_keys`` names key paths to leave out (``"mission"``, ``"outer/inner"``,
    tuple positions as numbers); ``drop_unsupported`` leaves out every leaf that
    cannot be stored in a fixed-size row (Text, Graph, Sequence, MiniGrid's
    MissionSpace). Otherwise such a leaf is a ``ValueError`` naming its path.
    """
    if isinstance(drop_keys, str):
        drop_keys = (drop_keys,)
    drop = {str(k).strip("/") for k in drop_keys}
    dropped: list[str] = []
    kept = _filter(space, (), drop, drop_unsupported, dropped, what)
    unused = drop - set(dropped)
    if unused:
        raise ValueError(f"drop_keys: {what} space has no key path '{sorted(unused)[0]}'")
    if kept is None:
        raise ValueError(f"{what} space has nothing left to store after dropping {dropped}")
    if not isinstance(kept, (spaces.Dict, spaces.Tuple)):
        leaf = _leaf((), 0, kept, what)
        return Layout(kept, (leaf,), packed=False, nbytes=leaf.nbytes, dropped=tuple(dropped))
    leaves = []
    offset = 0
    align = 1
    for path, sub in _walk(kept, ()):
        dtype = _storage_dtype(sub, what)
        offset = _round_up(offset, dtype.alignment)
        align = max(align, dtype.alignment)
        leaf = _leaf(path, offset, sub, what)
        leaves.append(leaf)
        offset += leaf.nbytes
    # Rows a multiple of the widest alignment keep every row's leaves aligned.
    nbytes = max(_round_up(offset, align), align)
    return Layout(kept, tuple(leaves), packed=True, nbytes=nbytes, dropped=tuple(dropped))


def _filter(
    space: spaces.Space, path: Path, drop: set[str], drop_unsupported: bool, dropped: list[str], what: str
) -> spaces.Space | None:
    if path and path_name(path) in drop:
        dropped.append(path_name(path))
        return None
    if isinstance(space, spaces.Dict):
        kept = {}
        for key, sub in space.spaces.items():
            sub_kept = _filter(sub, (*path, key), drop, drop_unsupported, dropped, what)
            if sub_kept is not None:
                kept[key] = sub_kept
        return spaces.Dict(kept) if kept else None
    if isinstance(space, spaces.Tuple):
        subs = [_filter(s, (*path, i), drop, drop_unsupported, dropped, what) for i, s in enumerate(space)]
        if any(s is None for s in subs):
            # Positions carry meaning in a Tuple; dropping one would renumber the rest.
            first = next(i for i, s in enumerate(subs) if s is None)
            raise ValueError(
                f"{what} space: cannot drop '{path_name((*path, first))}' from a Tuple; drop the whole Tuple"
            )
        return spaces.Tuple(cast("list[spaces.Space]", subs))  # none is None (checked above)
    if isinstance(space, (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)):
        return space
    if drop_unsupported:
        dropped.append(path_name(path))
        return None
    where = f"key '{path_name(path)}'" if path else "the space itself"
    raise ValueError(
        f"{what} space: {where} is a {type(space).__name__}, which has no fixed-size array form; "
        f"pass drop_keys=('{path_name(path) or '...'}',) or drop_unsupported=True to leave it out"
    )


def _walk(space: spaces.Space, path: Path) -> Iterable[tuple[Path, spaces.Space]]:
    if isinstance(space, spaces.Dict):
        for key, sub in space.spaces.items():
            yield from _walk(sub, (*path, key))
    elif isinstance(space, spaces.Tuple):
        for i, sub in enumerate(space):
            yield from _walk(sub, (*path, i))
    else:
        yield path, space


def _storage_dtype(space: spaces.Space, what: str) -> np.dtype:
    if isinstance(space, spaces.Box):
        # Policies emit float32 actions; the env gets them cast back to its own dtype.
        if what == "action" and np.issubdtype(space.dtype, np.floating):
            return np.dtype(np.float32)
        return np.dtype(space.dtype)
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)):
        return INDEX_DTYPE
    return BINARY_DTYPE


def _leaf(path: Path, offset: int, space: spaces.Space, what: str) -> Leaf:
    if isinstance(space, spaces.Box):
        kind, shape = "box", tuple(space.shape)
    elif isinstance(space, spaces.Discrete):
        kind, shape = "discrete", ()
        if not (-(2**31) <= int(space.start) and int(space.start) + int(space.n) <= 2**31):
            raise ValueError(f"{what} space: Discrete at '{path_name(path)}' does not fit int32")
    elif isinstance(space, spaces.MultiDiscrete):
        kind, shape = "multi_discrete", tuple(space.nvec.shape)
    else:  # _filter keeps only these four kinds
        kind, shape = "multi_binary", tuple(np.atleast_1d(cast(spaces.MultiBinary, space).n))
    return Leaf(path, offset, _storage_dtype(space, what), tuple(int(s) for s in shape), kind, space)


def _round_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align


def columns(layout: Layout, buffer: np.ndarray) -> list[np.ndarray]:
    """Per-leaf typed views ``(A, *leaf.shape)`` into a packed ``(A, nbytes)`` buffer."""
    if not layout.packed:
        return [buffer]
    if buffer.dtype != np.uint8 or buffer.ndim != 2 or buffer.shape[1] != layout.nbytes:
        raise ValueError(f"buffer must be uint8 (A, {layout.nbytes}), got {buffer.dtype} {buffer.shape}")
    cols = []
    for leaf in layout.leaves:
        col = buffer[:, leaf.offset : leaf.offset + leaf.nbytes].view(leaf.dtype)
        col = col.reshape(len(buffer), *leaf.shape)
        if not np.shares_memory(col, buffer):  # pragma: no cover - numpy always splits the last axis in place
            raise RuntimeError(f"leaf '{leaf.name}' is not a view of the buffer")
        cols.append(col)
    return cols


def flatten(layout: Layout, value: Any) -> list[Any]:
    """The structure's leaves in layout order (a dict/tuple tree → a list)."""
    return [get(value) for get in getters(layout)]


def unflatten(layout: Layout, values: Sequence[Any]) -> Any:
    """Rebuilds the nested structure of ``layout.space`` from leaves in layout order."""
    return builder(layout)(values)


# Per-layout compiled accessors, keyed by the layout's id and holding it, so a
# recycled id can never alias another layout. Layouts are few and long-lived.
_COMPILED: dict[int, tuple[Layout, list[Callable[[Any], Any]], Callable[[Sequence[Any]], Any]]] = {}


def _compiled(layout: Layout) -> tuple[Layout, list[Callable[[Any], Any]], Callable[[Sequence[Any]], Any]]:
    entry = _COMPILED.get(id(layout))
    if entry is None or entry[0] is not layout:
        entry = (layout, [_getter(leaf.path) for leaf in layout.leaves], _builder(layout.space))
        _COMPILED[id(layout)] = entry
    return entry


def getters(layout: Layout) -> list[Callable[[Any], Any]]:
    """One function per leaf (layout order) that picks that leaf out of a structure."""
    return _compiled(layout)[1]


def builder(layout: Layout) -> Callable[[Sequence[Any]], Any]:
    """A function from leaves in layout order to the nested structure of ``layout.space``."""
    return _compiled(layout)[2]


def _getter(path: Path) -> Callable[[Any], Any]:
    if not path:
        return lambda value: value
    if len(path) == 1:
        return operator.itemgetter(path[0])
    picks = [operator.itemgetter(key) for key in path]

    def get(value: Any) -> Any:
        for pick in picks:
            value = pick(value)
        return value

    return get


def _builder(space: spaces.Space) -> Callable[[Sequence[Any]], Any]:
    """Compiles the structure once; a flat Dict (the common case) is one ``dict(zip())``."""
    if isinstance(space, spaces.Dict) and not any(
        isinstance(sub, (spaces.Dict, spaces.Tuple)) for sub in space.spaces.values()
    ):
        keys = tuple(space.spaces)
        return lambda values: dict(zip(keys, values, strict=True))

    def build(space: spaces.Space, it: Iterator[Any]) -> Any:
        if isinstance(space, spaces.Dict):
            return {key: build(sub, it) for key, sub in space.spaces.items()}
        if isinstance(space, spaces.Tuple):
            return tuple(build(sub, it) for sub in space)
        return next(it)

    return lambda values: build(space, iter(values))


class Packer:
    """Writes structures into (and reads them out of) rows of one buffer, via per-leaf views.

    ``clip=True`` (action buffers) clips Box leaves to their bounds on ``read``:
    Gaussian policies sample unbounded actions and keep them for their
    log-probs; the env only ever sees in-bounds values.
    """

    def __init__(self, layout: Layout, buffer: np.ndarray, clip: bool = False) -> None:
        self.layout = layout
        self.buffer = buffer
        self.cols = columns(layout, buffer)
        self._casts = [_env_dtype(leaf) for leaf in layout.leaves]
        self._bounds = [
            (cast(spaces.Box, leaf.space).low, cast(spaces.Box, leaf.space).high)
            if clip and leaf.kind == "box" else None
            for leaf in layout.leaves
        ]
        # Per-step work is one numpy assignment (write) or conversion (read) per leaf:
        # the key paths, casts, the structure and each row's leaf views are made here,
        # once (a view assigned with [...] skips the row indexing of col[row] = ...).
        self._getters = getters(layout)
        self._row_views = [[col[row, ...] for col in self.cols] for row in range(len(buffer))]
        self._readers = [(col, _reader(leaf, cast, bounds))
                         for col, leaf, cast, bounds in zip(self.cols, layout.leaves, self._casts, self._bounds,
                                                            strict=True)]
        self._build = builder(layout)
        # Discrete actions go to the env as Python ints, all rows converted in one call.
        self.reads_ints = not layout.packed and layout.leaves[0].kind == "discrete"

    def write(self, row: int, value: Any) -> None:
        """Stores one agent's structure (as the env gives it) into row ``row``."""
        views = self._row_views[row]
        if not self.layout.packed:
            views[0][...] = value
            return
        for view, get in zip(views, self._getters, strict=True):
            leaf = get(value)
            if leaf is not view:  # else the env wrote it in place (observe_in_place)
                view[...] = leaf

    def row_views(self, row: int) -> list[np.ndarray]:
        """Row ``row``'s leaf views, in layout order (the arrays :meth:`write` assigns to)."""
        return list(self._row_views[row])

    def read_all(self) -> list[Any]:
        """Every row as :meth:`read` gives it; for Discrete actions one ``tolist()``."""
        if self.reads_ints:
            return self.buffer.tolist()
        return [self.read(row) for row in range(len(self.buffer))]

    def read(self, row: int) -> Any:
        """Row ``row`` as the structure the env expects, leaves in the space's own dtypes."""
        if not self.layout.packed:
            col, convert = self._readers[0]
            return convert(col[row])
        return self._build([convert(col[row]) for col, convert in self._readers])


def _reader(leaf: Leaf, dtype: np.dtype, bounds: tuple[Any, Any] | None) -> Callable[[Any], Any]:
    if bounds is not None:
        low, high = bounds
        return lambda value: _to_env(np.clip(value, low, high), leaf, dtype)
    if leaf.kind == "discrete":
        return dtype.type
    return lambda value: np.array(value, dtype=dtype)


def _env_dtype(leaf: Leaf) -> np.dtype:
    return np.dtype(leaf.space.dtype) if leaf.space.dtype is not None else leaf.dtype


def _to_env(value: Any, leaf: Leaf, dtype: np.dtype) -> Any:
    if leaf.kind == "discrete":
        return dtype.type(value)
    return np.array(value, dtype=dtype)
