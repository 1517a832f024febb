"""A WS-Management / WinRS test double: the stand-in for Windows hosts in our tests.

There is no Windows machine here, so `WSManTestDouble` is a small real HTTP server on
127.0.0.1 that speaks the part of WS-Management and the Windows Remote Shell protocol
([MS-WSMV]) that pywinrm uses: Create shell, Command, Receive (base64 stdout/stderr
streams, CommandState Done with ExitCode, the OperationTimeout fault while a command is
silent), Send (stdin), Signal (terminate / ctrl_c) and Delete shell. Authentication is
HTTP Basic (wrong credentials → 401), and NTLM with message encryption over plain HTTP
through pyspnego's server side (`ntlm=True`), the way a default Windows listener on 5985
behaves. `tls=True` serves HTTPS with a throw-away self-signed certificate (port 5986's
role); `certificate_pem` exposes it for tests that validate it.

It never runs what it receives on this host. Commands go to a tiny scripted interpreter
(deliberately not a shell) that knows just enough for tests:

cmd (the default shell): `echo X` (`%NAME%` expands from the shell's environment; a
trailing `1>&2` writes to stderr), `exit N` / `exit /b N`, `hostname`, `whoami`, `cd`
(prints the working directory), `type FILE` (from `files`), `ping -n N HOST` (one reply
line per second, for streaming, timeouts and cancel), commands joined by `&` / `&&`;
anything else: "'x' is not recognized ..." and exit 9009, as cmd.exe says.

PowerShell (`powershell ... -EncodedCommand <base64 UTF-16LE>`, what pywinrm's `run_ps`
sends): statements split on new lines and `;`: `Write-Output X` / `echo X` / `Write-Host X`
/ a bare quoted string, `Write-Error X` (a CLIXML error record on stderr, exit code 1),
`exit N`, `Start-Sleep N` / `Start-Sleep -Seconds N` (interruptible), `hostname`,
`Get-Location`, `Get-Content PATH`, `Set-Content -Path P -Value V`, `$x = V`,
`$x = [Console]::In.ReadToEnd()` (WinRS stdin, as the engine's upload sends it) and
`[IO.File]::WriteAllBytes('P', [Convert]::FromBase64String($x))`; `$env:NAME` and
`$args[i]` expand; a script of the form `& { body } 'a' 'b'` binds `$args`. Unknown
commands write PowerShell's CommandNotFound error and continue.

Files live in the double's memory (`files`, keyed case-insensitively by path).
"""

from opsconductor_ray.testing.wsman.server import SIGNAL_CTRL_C, SIGNAL_TERMINATE, WSManTestDouble

__all__ = ["SIGNAL_CTRL_C", "SIGNAL_TERMINATE", "WSManTestDouble"]
