"""Packing structured spaces into byte rows and back, on random nested spaces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from hypothesis import given, settings
from hypothesis import strategies as st

from envs.emulation.layout import Packer, columns, flatten, layout_of
from learner.unpack import Unpacker

BOX_DTYPES = [np.float64, np.float32, np.float16, np.int16, np.uint8, np.int32, np.int64, np.int8, np.bool_]
shapes = st.lists(st.integers(1, 3), min_size=0, max_size=3).map(tuple)


@st.composite
def boxes(draw: st.DrawFn) -> spaces.Box:
    dtype = np.dtype(draw(st.sampled_from(BOX_DTYPES)))
    shape = draw(shapes)
    if dtype == np.bool_:
        return spaces.Box(0, 1, shape, dtype=dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return spaces.Box(max(info.min, -100), min(info.max, 100), shape, dtype=dtype)
    return spaces.Box(-10.0, 10.0, shape, dtype=dtype)


leaf_spaces = st.one_of(
    boxes(),
    st.builds(spaces.Discrete, st.integers(1, 20), start=st.integers(-5, 5)),
    st.lists(st.integers(1, 9), min_size=1, max_size=4).map(lambda v: spaces.MultiDiscrete(v)),
    st.lists(st.integers(1, 3), min_size=1, max_size=2).map(lambda v: spaces.MultiBinary(v)),
)
keys = st.text("abcdefgh", min_size=1, max_size=4)
trees = st.recursive(
    leaf_spaces,
    lambda inner: st.one_of(
        st.dictionaries(keys, inner, min_size=1, max_size=4).map(spaces.Dict),
        st.lists(inner, min_size=1, max_size=4).map(spaces.Tuple),
    ),
    max_leaves=12,
)
structured = st.one_of(
    st.dictionaries(keys, trees, min_size=1, max_size=4).map(spaces.Dict),
    st.lists(trees, min_size=1, max_size=3).map(spaces.Tuple),
)


def assert_same(a: object, b: object) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@settings(max_examples=60, deadline=None)
@given(space=structured, seed=st.integers(0, 2**16))
def test_round_trip_numpy_and_torch(space: spaces.Space, seed: int) -> None:
    space.seed(seed)
    layout = layout_of(space)
    assert layout.packed
    # Every leaf aligned to its dtype, inside the row, and no two overlapping.
    spans = sorted((leaf.offset, leaf.offset + leaf.nbytes) for leaf in layout.leaves)
    for leaf in layout.leaves:
        assert leaf.offset % leaf.dtype.alignment == 0
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert end <= start
    assert spans[-1][1] <= layout.nbytes
    assert layout.nbytes % max(leaf.dtype.alignment for leaf in layout.leaves) == 0

    rows = np.zeros((5, layout.nbytes), dtype=np.uint8)
    packer = Packer(layout, rows)
    samples = [space.sample() for _ in range(5)]
    for i, sample in enumerate(samples):
        packer.write(i, sample)
    for i, sample in enumerate(samples):
        back = packer.read(i)
        assert_same(sample, back)
        assert space.contains(back)

    unpacker = Unpacker(layout)
    tensor = torch.from_numpy(rows)
    structure = unpacker.unpack(tensor)
    base, end = tensor.data_ptr(), tensor.data_ptr() + rows.nbytes
    leaves = flatten(layout, structure)
    for leaf, col, value in zip(layout.leaves, columns(layout, rows), leaves, strict=True):
        assert tuple(value.shape) == (5, *leaf.shape)
        np.testing.assert_array_equal(value.numpy(), col)
        if value.numel():
            assert base <= value.data_ptr() < end, f"leaf {leaf.name} was copied, not viewed"
    assert torch.equal(unpacker.pack(structure), tensor)

    # A row tensor starting one byte off alignment still unpacks correctly (by copying).
    shifted = torch.zeros(5 * layout.nbytes + 1, dtype=torch.uint8)
    odd = shifted[1:].view(5, layout.nbytes)
    odd.copy_(tensor)
    for x, y in zip(flatten(layout, unpacker.unpack(odd)), flatten(layout, structure), strict=True):
        assert torch.equal(x, y)


def test_mixed_dtypes_are_aligned() -> None:
    space = spaces.Dict({
        "flag": spaces.MultiBinary(3),
        "pos": spaces.Box(-1, 1, (2,), dtype=np.float64),
        "hp": spaces.Box(0, 100, (1,), dtype=np.int16),
        "kind": spaces.Discrete(4),
    })
    layout = layout_of(space)
    where = {leaf.name: (leaf.offset, leaf.dtype) for leaf in layout.leaves}
    # gymnasium sorts Dict keys: flag, hp, kind, pos.
    assert where["flag"] == (0, np.int8)
    assert where["hp"] == (4, np.int16)
    assert where["kind"] == (8, np.int32)
    assert where["pos"] == (16, np.float64)
    assert layout.nbytes == 32


def test_simple_spaces_stay_natural() -> None:
    obs = layout_of(spaces.Box(0, 255, (4, 84, 84), dtype=np.uint8))
    assert not obs.packed and obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    act = layout_of(spaces.Discrete(6), what="action")
    assert act.shape == () and act.dtype == np.int32
    cont = layout_of(spaces.Box(-2, 2, (3,), dtype=np.float64), what="action")
    assert cont.shape == (3,) and cont.dtype == np.float32


def test_unsupported_leaves_name_their_path() -> None:
    space = spaces.Dict({"a": spaces.Dict({"text": spaces.Text(5), "x": spaces.Discrete(2)}),
                         "seq": spaces.Sequence(spaces.Discrete(2))})
    with pytest.raises(ValueError, match="'a/text'.*Text"):
        layout_of(space)
    with pytest.raises(ValueError, match="'seq'.*Sequence"):
        layout_of(space, drop_keys=("a/text",))
    layout = layout_of(space, drop_keys=("a/text", "seq"))
    assert [leaf.name for leaf in layout.leaves] == ["a/x"]
    assert layout_of(space, drop_unsupported=True).dropped == ("a/text", "seq")
    graph = spaces.Dict({"g": spaces.Graph(spaces.Box(0, 1, (2,)), None), "x": spaces.Discrete(2)})
    with pytest.raises(ValueError, match="'g'.*Graph"):
        layout_of(graph)
    with pytest.raises(ValueError, match="drop_keys.*'nope'"):
        layout_of(space, drop_keys=("nope",), drop_unsupported=True)
