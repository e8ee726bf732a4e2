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


def test_unpacked_views_follow_the_rows_batch_after_batch() -> None:
    """The views an Unpacker keeps for rows it has seen show each batch's new contents."""
    space = spaces.Dict({"hp": spaces.Box(0, 100, (2,), dtype=np.int16), "kind": spaces.Discrete(9)})
    layout = layout_of(space)
    arena = np.zeros((6, layout.nbytes), np.uint8)
    packer, unpacker = Packer(layout, arena), Unpacker(layout)
    groups = [arena[:3], arena[3:]]
    for step in range(4):
        for row in range(6):
            packer.write(row, {"hp": np.array([row, step], np.int16), "kind": (row + step) % 9})
        for g, group in enumerate(groups):
            out = unpacker.unpack(torch.from_numpy(group))  # a new tensor over the same rows each time
            rows = np.arange(3 * g, 3 * g + 3)
            assert out["hp"][:, 0].tolist() == rows.tolist() and out["hp"][:, 1].tolist() == [step] * 3
            assert out["kind"].tolist() == ((rows + step) % 9).tolist()
    # Other rows of the same size are other memory: their own values, not the kept views'.
    other = torch.from_numpy(arena[:3].copy())
    other[:, 0] = 7
    assert unpacker.unpack(other)["hp"][:, 0].tolist() == [7, 7, 7]


def test_views_made_in_inference_mode_are_not_reused_for_autograd() -> None:
    layout = layout_of(spaces.Dict({"x": spaces.Box(-1, 1, (2,), np.float32), "k": spaces.Discrete(3)}))
    rows = torch.zeros(4, layout.nbytes, dtype=torch.uint8)
    unpacker = Unpacker(layout)
    with torch.inference_mode():
        assert unpacker.unpack(rows)["x"].is_inference()
    x = unpacker.unpack(rows)["x"]
    assert not x.is_inference()
    weight = torch.ones(2, requires_grad=True)
    (x * weight).sum().backward()  # an inference tensor would refuse to be saved for backward
    assert weight.grad is not None
