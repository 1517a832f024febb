"""Steps on Windows targets over WS-Management (pywinrm): `WinRMRunner` (runner.py), the
endpoint and error mapping (endpoint.py), and what a step becomes as a WinRS command (commands.py)."""

from __future__ import annotations

from opsconductor_ray.winrm.commands import (
    SHELL_RESOURCE,
    SIGNAL_TERMINATE,
    clean_clixml,
    powershell_command_line,
    ps_quote,
    upload_script,
)
from opsconductor_ray.winrm.endpoint import (
    DEFAULT_TRANSPORT,
    TRANSPORTS,
    Endpoint,
    endpoint_of,
    map_winrm_exception,
)
from opsconductor_ray.winrm.runner import OnOutput, WinRMRunner

__all__ = [
    "DEFAULT_TRANSPORT",
    "SHELL_RESOURCE",
    "SIGNAL_TERMINATE",
    "TRANSPORTS",
    "Endpoint",
    "OnOutput",
    "WinRMRunner",
    "clean_clixml",
    "endpoint_of",
    "map_winrm_exception",
    "powershell_command_line",
    "ps_quote",
    "upload_script",
]
