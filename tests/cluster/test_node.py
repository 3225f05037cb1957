"""Node identity from ``plugins/cluster.yaml``: defaults, settings, refusals."""

from __future__ import annotations

import re

import pytest

from core.cluster.node import DEFAULT_LEASE, NodeSettingsError, load_node


def test_default_node_id_is_host_and_random_suffix_per_start() -> None:
    a, b = load_node({}, shared=True), load_node({}, shared=True)
    assert re.fullmatch(r"[A-Za-z0-9._-]+-[0-9a-f]{6}", a.node_id)
    assert a.node_id != b.node_id and a.node_id.rsplit("-", 1)[0] == b.node_id.rsplit("-", 1)[0]
    assert a.lease == DEFAULT_LEASE and a.renew_every == DEFAULT_LEASE / 3 and a.shared


def test_settings_give_a_stable_id_and_lease() -> None:
    n = load_node({"NodeID": "mx1.example", "LeaseSeconds": 12}, shared=False)
    assert (n.node_id, n.lease, n.shared) == ("mx1.example", 12.0, False)
    assert n.lease_until() > 0


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"NodeID": "has space"}, "cluster NodeID 'has space'"),
        ({"NodeID": "x" * 101}, "at most 100"),
        ({"LeaseSeconds": "soon"}, "is not a number"),
        ({"LeaseSeconds": 1}, "at least 2"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, object], error: str) -> None:
    with pytest.raises(NodeSettingsError, match=re.escape(error)):
        load_node(settings, shared=True)
