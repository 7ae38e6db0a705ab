"""The built-in `modbus` platform: industrial RS-485 (RTU) and TCP probes.

Registered through the `smartanom` entry-point group like any third-party
plugin. Roles: `config.py` the YAML schema, `decoding.py` registers -> value
(pure), `bus.py` the pymodbus I/O, `runner.py` the polling task, `output.py`
the coil/register output.
docs/modbus.md is the user's guide.
"""

from smartanom import Platform, hookimpl
from smartanom.builtin.modbus.config import ModbusOptions
from smartanom.builtin.modbus.output import OUTPUT_KIND
from smartanom.builtin.modbus.runner import run


@hookimpl
def register_platforms():
    return [
        Platform(
            name="modbus",
            run=run,
            options=ModbusOptions,
            description="Modbus RTU (RS-485) and Modbus TCP probes: pH, EC, temperature, level, ...",
        )
    ]


@hookimpl
def register_outputs():
    return [OUTPUT_KIND]
