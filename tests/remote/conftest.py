"""Fixtures of the remote-actor tests: keys, network namespaces (removed at the end), captured logs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from actors.remote_wire import keys_new
from appliance.bench.netns import Namespace


@pytest.fixture
def keys(tmp_path: Path) -> str:
    directory = tmp_path / "keys"
    keys_new(directory, clients=3)
    return str(directory)


@pytest.fixture
def namespaces() -> Iterator[Callable[[int], Namespace]]:
    """Makes namespaces on demand; every one is removed (its processes stopped) at the end."""
    made: list[Namespace] = []

    def make(index: int) -> Namespace:
        made.append(Namespace(index))
        return made[-1]

    yield make
    for ns in made:
        ns.close()


@pytest.fixture(autouse=True)
def remote_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="appliance.remote")
    return caplog
