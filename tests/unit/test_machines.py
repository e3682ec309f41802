"""Tests for taskloom.machines."""

from __future__ import annotations

import doctest

import pytest

from taskloom import machines
from taskloom.errors import InvalidOptionError
from taskloom.machines import DEFAULT_MACHINE, MACHINE_PRESETS, MachinePreset, resolve_machine


def test_presets_match_trigger_dev_sizes() -> None:
    sizes = {name: (p.cpu, p.memory_gb) for name, p in MACHINE_PRESETS.items()}
    assert sizes == {
        "micro": (0.25, 0.25),
        "small-1x": (0.5, 0.5),
        "small-2x": (1, 1),
        "medium-1x": (1, 2),
        "medium-2x": (2, 4),
        "large-1x": (4, 8),
        "large-2x": (8, 16),
    }
    assert all(name == preset.name for name, preset in MACHINE_PRESETS.items())
    assert DEFAULT_MACHINE == "small-1x"


@pytest.mark.parametrize("name", list(MACHINE_PRESETS))
def test_resolve_every_preset(name: str) -> None:
    assert resolve_machine(name, what="machine") is MACHINE_PRESETS[name]
    assert resolve_machine(MACHINE_PRESETS[name], what="machine") is MACHINE_PRESETS[name]


@pytest.mark.parametrize("bad", ["huge", "", "Small-1x ", None, 2, MachinePreset("small-1x", 9, 9)])
def test_resolve_rejects_unknown_names(bad: object) -> None:
    with pytest.raises(InvalidOptionError) as caught:
        resolve_machine(bad, what="machine of task 'render'")
    message = str(caught.value)
    assert message.startswith("machine of task 'render'")
    assert repr(bad) in message
    assert "micro, small-1x, small-2x, medium-1x, medium-2x, large-1x, large-2x" in message


def test_resolve_suggests_a_close_name() -> None:
    with pytest.raises(InvalidOptionError, match="did you mean 'large-1x'"):
        resolve_machine("large1x", what="machine")


def test_docstring_examples() -> None:
    assert doctest.testmod(machines).failed == 0
