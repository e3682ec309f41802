"""Machine presets: the CPU and memory a run's executor gets, named as in Trigger.dev.

>>> resolve_machine("large-1x", what="machine of task 'render'")
MachinePreset(name='large-1x', cpu=4.0, memory_gb=8.0)
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from .errors import InvalidOptionError

__all__ = ["DEFAULT_MACHINE", "MACHINE_PRESETS", "MachinePreset", "resolve_machine"]


@dataclass(frozen=True, slots=True)
class MachinePreset:
    """A named machine size: `cpu` in vCPUs, `memory_gb` in GB of RAM."""

    name: str
    cpu: float
    memory_gb: float


MACHINE_PRESETS: dict[str, MachinePreset] = {
    preset.name: preset
    for preset in (
        MachinePreset("micro", 0.25, 0.25),
        MachinePreset("small-1x", 0.5, 0.5),
        MachinePreset("small-2x", 1.0, 1.0),
        MachinePreset("medium-1x", 1.0, 2.0),
        MachinePreset("medium-2x", 2.0, 4.0),
        MachinePreset("large-1x", 4.0, 8.0),
        MachinePreset("large-2x", 8.0, 16.0),
    )
}
"""Every preset by name, smallest first."""

DEFAULT_MACHINE = "small-1x"
"""The preset used when neither the trigger, the task nor the config names one."""


def resolve_machine(name: object, *, what: str) -> MachinePreset:
    """Return the preset called `name`, or raise `InvalidOptionError` naming `what`.

    A `MachinePreset` is returned as is when it is one of `MACHINE_PRESETS`.
    """
    if isinstance(name, MachinePreset) and MACHINE_PRESETS.get(name.name) == name:
        return name
    if isinstance(name, str):
        preset = MACHINE_PRESETS.get(name)
        if preset is not None:
            return preset
    valid = ", ".join(MACHINE_PRESETS)
    hint = ""
    if isinstance(name, str):
        close = difflib.get_close_matches(name.strip().lower(), MACHINE_PRESETS, n=1)
        if close:
            hint = f" (did you mean {close[0]!r}?)"
    raise InvalidOptionError(
        f"{what}: unknown machine preset {name!r}{hint}; valid presets are {valid}"
    )
