"""The plant simulator: plausible signals, injected faults with ground-truth labels, served over OPC-UA.

Public API (also for publishing the same plant over MQTT)::

    from edge.simulator import Plant, PlantConfig, plant_tags, parse_faults, serve_plant, PlantServer

    tags = plant_tags(lines=2, machines=3)       # [SimTag(name, asset, line, machine, measure, unit, index)]
    plant = Plant(PlantConfig(seed=1, faults=tuple(parse_faults("auto", plant.machines, duration_s=600))),
                  labels_path=Path("labels.jsonl"))
    tick = plant.step()                          # tick.ts_us, tick.values[i] <-> plant.tags[i], tick.valid
    await serve_plant(PlantConfig(), port=4840, duration_s=60)
"""

from typing import Any

from edge.simulator.faults import Fault, FaultSpecError, auto_faults, parse_faults
from edge.simulator.plant import MEASURES, Plant, PlantConfig, SimTag, Tick, machine_names, plant_tags

SIM_NAMESPACE = "urn:factory-edge:sim"


def __getattr__(name: str) -> Any:
    # the OPC-UA server (and asyncua) load only when asked for: MQTT publishers need just the plant
    if name in ("PlantServer", "serve_plant"):
        from edge.simulator import opcua_server

        return getattr(opcua_server, name)
    raise AttributeError(name)

__all__ = [
    "MEASURES",
    "SIM_NAMESPACE",
    "Fault",
    "FaultSpecError",
    "Plant",
    "PlantConfig",
    "PlantServer",
    "SimTag",
    "Tick",
    "auto_faults",
    "machine_names",
    "parse_faults",
    "plant_tags",
    "serve_plant",
]
