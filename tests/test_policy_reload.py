"""The policy registry notices changed files on the next check, and lists the directory only when it changed.

Every check asks the registry for the current set; it stats the directory and
each known file, and lists the directory again only when the directory's
mtime moved or is too recent to trust (a coarse-clock tick). These tests
change files the ways people and tools do and expect the next ``refresh`` to
load the new set.
"""

from __future__ import annotations

import os
import time

import pytest

from governance.policy import registry as policy_registry
from governance.policy.registry import PolicyRegistry

from policy_fixtures.gate_scenarios import copy_policies
from test_gate_api import EXTRA as EXTRA_TEMPLATE

LINEAGE = "lineage.yaml"
EXTRA = EXTRA_TEMPLATE.replace("RULE_ID", "extra.always")


def _age(path, seconds: float) -> None:
    """Set a path's mtime ``seconds`` into the past, as if it had settled long ago."""
    then = time.time_ns() - int(seconds * 1e9)
    os.utime(path, ns=(then, then))


@pytest.fixture()
def registry(tmp_path):
    directory = copy_policies(tmp_path / "policies")
    for path in [directory, *directory.iterdir()]:
        _age(path, 10)
    reg = PolicyRegistry(directory, ledger=None)
    reg.refresh()
    assert reg.active is not None and reg.error is None
    return reg


def _fresh_digest(directory) -> str:
    """The digest a registry that never saw the old files loads."""
    fresh = PolicyRegistry(directory, ledger=None)
    fresh.refresh()
    return fresh.active.digest


def _rules(reg) -> set[str]:
    return {rule.id for rule in reg.active.rules}


def _count_listings(monkeypatch) -> list:
    calls = []
    real = os.scandir

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(policy_registry.os, "scandir", counting)
    return calls


def test_a_settled_directory_is_listed_once_and_then_only_stat(registry, monkeypatch):
    listings = _count_listings(monkeypatch)
    before = registry.active.digest
    for _ in range(3):
        registry.refresh()
    assert listings == [] and registry.active.digest == before


def test_an_edit_in_place_of_the_same_size_is_loaded(registry):
    path = registry.directory / LINEAGE
    text = path.read_text()
    edited = text.replace("so nobody can say", "so nobody can see")  # 3 letters for 3
    assert edited != text and len(edited) == len(text)
    before = registry.active.digest
    path.write_text(edited)
    _age(path, 5)  # a different mtime, however coarse the clock; the directory's is unchanged
    registry.refresh()
    assert registry.active.digest != before
    assert registry.active.digest == _fresh_digest(registry.directory)


def test_an_added_file_is_loaded(registry):
    (registry.directory / "zz-extra.yaml").write_text(EXTRA)
    registry.refresh()
    assert "extra.always" in _rules(registry)


def test_a_file_added_in_the_same_clock_tick_as_the_listing_is_still_loaded(tmp_path):
    """The directory changed just before it was listed: the listing is not trusted
    yet, so a file added without moving the directory's mtime again is found."""
    directory = copy_policies(tmp_path / "policies")
    os.utime(directory)  # changed just now (copytree keeps the source's mtime)
    reg = PolicyRegistry(directory, ledger=None)
    reg.refresh()
    mtime = directory.stat().st_mtime_ns
    (directory / "zz-extra.yaml").write_text(EXTRA)
    os.utime(directory, ns=(mtime, mtime))  # as if both changes fell in one tick
    reg.refresh()
    assert "extra.always" in _rules(reg)


def test_a_removed_file_is_unloaded(registry):
    (registry.directory / "zz-extra.yaml").write_text(EXTRA)
    registry.refresh()
    assert "extra.always" in _rules(registry)
    (registry.directory / "zz-extra.yaml").unlink()
    registry.refresh()
    assert "extra.always" not in _rules(registry)


def test_a_file_replaced_by_rename_is_loaded(registry):
    """Editors and ConfigMap volumes write a new file and rename it over the old one."""
    path = registry.directory / LINEAGE
    staged = registry.directory / ".lineage.yaml.tmp"
    staged.write_text(path.read_text().replace("so nobody can say", "so no one can say"))
    before = registry.active.digest
    os.replace(staged, path)
    registry.refresh()
    assert registry.active.digest != before
    assert registry.active.digest == _fresh_digest(registry.directory)


def test_a_directory_that_disappears_keeps_the_last_good_set(registry, tmp_path):
    before = registry.active.digest
    registry.directory.rename(tmp_path / "elsewhere")
    registry.refresh()
    assert registry.active is not None and registry.active.digest == before
    assert registry.error is not None
