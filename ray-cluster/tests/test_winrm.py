"""`WinRMRunner` against the WS-Man test double (the stand-in for Windows hosts): real
HTTP on loopback, real pywinrm, Basic and NTLM (with message encryption) and HTTPS."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from opsconductor_ray.credentials import Credential
from opsconductor_ray.errors import AuthenticationFailed, ConnectError, ConnectionRefused, HostKeyRejected
from opsconductor_ray.protocol import TargetSpec
from opsconductor_ray.testing.wsman import SIGNAL_TERMINATE, WSManTestDouble
from opsconductor_ray.winrm import WinRMRunner, clean_clixml, powershell_command_line
from opsconductor_shared.runplan import EnvVar, Script, Step, Transfer
from tests.support.net import free_port

USER = "Administrator"
PASSWORD = "Passw0rd!"


@pytest.fixture(scope="module")
def double() -> Iterator[WSManTestDouble]:
    server = WSManTestDouble({USER: PASSWORD, "deploy": "s3cret"}).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def ntlm_double() -> Iterator[WSManTestDouble]:
    server = WSManTestDouble({USER: PASSWORD}, ntlm=True).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def tls_double() -> Iterator[WSManTestDouble]:
    server = WSManTestDouble({USER: PASSWORD}, tls=True).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def runner() -> AsyncIterator[WinRMRunner]:
    engine = WinRMRunner(max_workers=8, operation_timeout_s=1, read_timeout_s=3)
    try:
        yield engine
    finally:
        engine.close()


def target_of(server: WSManTestDouble, port: int | None = None) -> TargetSpec:
    return TargetSpec(
        target_id="win-1", name="win-1", host="127.0.0.1", port=port or server.port, method="winrm"
    )


def credential(password: str = PASSWORD, user: str = USER, **options: str) -> Credential:
    options.setdefault("transport", "basic")
    # The test double speaks Basic over plain http: allowed here explicitly (L5 refuses it otherwise).
    options.setdefault("allowInsecure", "true")
    return Credential(username=user, password=password, fingerprint=f"{user}:{password}", options=options)


class Output:
    """Collects on_output calls; remembers how many commands were still running at each."""

    def __init__(self, server: WSManTestDouble | None = None) -> None:
        self.chunks: list[tuple[str, str]] = []
        self.running_at_chunk: list[int] = []
        self.server = server
        self.first = asyncio.Event()
        self.cut = False
        """The runner reported cutting output itself (on_truncated)."""

    def truncated(self) -> None:
        self.cut = True

    def __call__(self, stream: str, text: str) -> None:
        self.chunks.append((stream, text))
        if self.server is not None:
            self.running_at_chunk.append(self.server.running_commands)
        self.first.set()

    def text(self, stream: str = "STDOUT") -> str:
        return "".join(text for name, text in self.chunks if name == stream)


async def run(
    runner: WinRMRunner,
    server: WSManTestDouble,
    step: Step,
    cred: Credential | None = None,
    cancel: asyncio.Event | None = None,
) -> tuple[int | None, str | None, Output]:
    output = Output(server)
    exit_code, reason = await runner.run_step(
        target_of(server),
        cred or credential(),
        step,
        on_output=output,
        cancel=cancel or asyncio.Event(),
        on_truncated=output.truncated,
    )
    return exit_code, reason, output


def cmd(command: str, timeout_s: int = 20, **fields: object) -> Step:
    return Step(name="cmd", command=command, timeout_seconds=timeout_s, **fields)  # type: ignore[arg-type]


def ps(body: str, *arguments: str, timeout_s: int = 20) -> Step:
    return Step(
        name="ps",
        type="script",
        script=Script(interpreter="powershell", body=body, arguments=arguments),
        timeout_seconds=timeout_s,
    )


async def wait_until(predicate: object, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


# ----------------------------------------------------------------------------- cmd


async def test_cmd_stdout_and_exit_code(runner: WinRMRunner, double: WSManTestDouble) -> None:
    exit_code, reason, output = await run(runner, double, cmd("echo hello & hostname"))
    assert (exit_code, reason) == (0, None)
    assert output.text() == "hello\r\nWIN-DOUBLE\r\n"
    assert output.text("STDERR") == ""


async def test_cmd_nonzero_exit_and_stderr(runner: WinRMRunner, double: WSManTestDouble) -> None:
    exit_code, reason, output = await run(runner, double, cmd("echo oops 1>&2 & exit /b 3"))
    assert (exit_code, reason) == (3, None)
    assert output.text("STDERR") == "oops\r\n"


async def test_unknown_command_is_cmds_9009(runner: WinRMRunner, double: WSManTestDouble) -> None:
    exit_code, _, output = await run(runner, double, cmd("frobnicate now"))
    assert exit_code == 9009
    assert "'frobnicate' is not recognized" in output.text("STDERR")


async def test_working_directory_and_environment(runner: WinRMRunner, double: WSManTestDouble) -> None:
    step = cmd(
        "cd & echo %APP_ENV%-%RELEASE%",
        working_directory="D:\\apps",
        env=(EnvVar(name="APP_ENV", value="prod"), EnvVar(name="RELEASE", value="42")),
    )
    exit_code, _, output = await run(runner, double, step)
    assert exit_code == 0
    assert output.text() == "D:\\apps\r\nprod-42\r\n"


async def test_output_streams_while_the_command_runs(runner: WinRMRunner, double: WSManTestDouble) -> None:
    exit_code, _, output = await run(runner, double, cmd("ping -n 3 127.0.0.1"))
    assert exit_code == 0
    assert output.text().count("Reply from 127.0.0.1") == 3
    assert len(output.chunks) >= 3  # one Receive per reply line, not one blob at the end
    assert output.running_at_chunk[0] >= 1  # the first line arrived before the command ended


# ----------------------------------------------------------------------------- PowerShell


async def test_powershell_script_output_and_exit(runner: WinRMRunner, double: WSManTestDouble) -> None:
    exit_code, _, output = await run(runner, double, ps("Write-Output 'from ps'\nhostname\nexit 7"))
    assert exit_code == 7
    assert output.text() == "from ps\r\nWIN-DOUBLE\r\n"
    assert double.commands[-1].startswith("powershell -NoProfile -NonInteractive")


async def test_powershell_errors_are_readable(runner: WinRMRunner, double: WSManTestDouble) -> None:
    exit_code, _, output = await run(runner, double, ps("Write-Output ok; Write-Error 'disk is full'"))
    assert exit_code == 1
    assert output.text() == "ok\r\n"
    assert output.text("STDERR").strip() == "disk is full"  # CLIXML unwrapped


async def test_powershell_arguments_are_literal(runner: WinRMRunner, double: WSManTestDouble) -> None:
    hostile = "it's $env:COMPUTERNAME; exit 5"
    exit_code, _, output = await run(
        runner, double, ps('Write-Output "[$($args[0])] [$($args[1])]"', "web", hostile)
    )
    assert exit_code == 0
    assert output.text() == f"[web] [{hostile}]\r\n"


def test_powershell_command_line_encodes_utf16() -> None:
    line = powershell_command_line("Write-Output 'é'", ("a'b",))
    assert line.split()[-2] == "-EncodedCommand"
    import base64

    script = base64.b64decode(line.split()[-1]).decode("utf-16-le")
    assert script == "& {\nWrite-Output 'é'\n} 'a''b'"


def test_clean_clixml() -> None:
    raw = '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="x"><S S="Error">a &amp; b_x000D__x000A_</S><S S="Error">c</S></Objs>'
    assert clean_clixml(raw) == "a & b\nc"
    assert clean_clixml("plain") == "plain"


async def test_unsupported_interpreter(runner: WinRMRunner, double: WSManTestDouble) -> None:
    commands = len(double.commands)
    bash = Step(name="b", command="", type="script", script=Script(interpreter="bash", body="echo"))
    exit_code, reason, _ = await run(runner, double, bash)
    assert (exit_code, reason) == (
        None,
        "interpreter 'bash' is not available on WinRM targets (use powershell)",
    )
    assert len(double.commands) == commands


async def test_download_reads_the_remote_file(runner: WinRMRunner, double: WSManTestDouble) -> None:
    double.files["c:\\logs\\app.log"] = "line 1\r\nline 2\r\n"
    step = Step(
        name="dl",
        command="",
        type="file_transfer",
        transfer=Transfer(direction="download", source="C:\\logs\\app.log", destination="app.log"),
    )
    exit_code, _, output = await run(runner, double, step)
    assert exit_code == 0
    assert output.text() == "line 1\r\nline 2\r\n"


# ----------------------------------------------------------------------------- timeouts and cancel


async def test_timeout_terminates_the_command(runner: WinRMRunner, double: WSManTestDouble) -> None:
    signals = len(double.signals)
    exit_code, reason, output = await run(runner, double, cmd("ping -n 60 127.0.0.1", timeout_s=2))
    assert exit_code is None
    assert reason == "timed out after 2s; the command was sent the terminate signal"
    assert "Reply from" in output.text()
    assert SIGNAL_TERMINATE in double.signals[signals:]
    await wait_until(lambda: double.running_commands == 0)


async def test_powershell_sleep_times_out(runner: WinRMRunner, double: WSManTestDouble) -> None:
    exit_code, reason, _ = await run(runner, double, ps("Start-Sleep -Seconds 60", timeout_s=1))
    assert exit_code is None
    assert reason is not None and reason.startswith("timed out after 1s")
    await wait_until(lambda: double.running_commands == 0)


async def test_cancel_terminates_the_command(runner: WinRMRunner, double: WSManTestDouble) -> None:
    cancel = asyncio.Event()
    output = Output(double)
    task = asyncio.create_task(
        runner.run_step(
            target_of(double),
            credential(),
            cmd("ping -n 60 127.0.0.1", timeout_s=60),
            on_output=output,
            cancel=cancel,
        )
    )
    await asyncio.wait_for(output.first.wait(), 10)
    cancel.set()
    exit_code, reason = await asyncio.wait_for(task, 20)
    assert exit_code is None
    assert reason == "cancelled; the command was sent the terminate signal"
    assert SIGNAL_TERMINATE in double.signals
    await wait_until(lambda: double.running_commands == 0)


async def test_already_cancelled_runs_nothing(runner: WinRMRunner, double: WSManTestDouble) -> None:
    cancel = asyncio.Event()
    cancel.set()
    commands = len(double.commands)
    exit_code, reason, _ = await run(runner, double, cmd("echo never"), cancel=cancel)
    assert (exit_code, reason) == (None, "cancelled before the step started")
    assert len(double.commands) == commands


# ----------------------------------------------------------------------------- sessions, auth, transport


async def test_sessions_are_reused_and_shells_closed(runner: WinRMRunner, double: WSManTestDouble) -> None:
    deleted = double.shells_deleted
    for _ in range(3):
        assert (await run(runner, double, cmd("echo again")))[0] == 0
    assert runner.created == 1
    assert runner.reused == 2
    assert double.shells_deleted == deleted + 3


async def test_concurrent_steps_on_one_host(runner: WinRMRunner, double: WSManTestDouble) -> None:
    results = await asyncio.gather(*(run(runner, double, cmd(f"echo n{i}")) for i in range(6)))
    assert sorted(output.text() for _, _, output in results) == sorted(f"n{i}\r\n" for i in range(6))


async def test_basic_wrong_password_is_authentication_failed(
    runner: WinRMRunner, double: WSManTestDouble
) -> None:
    failures = double.auth_failures
    with pytest.raises(AuthenticationFailed) as caught:
        await run(runner, double, cmd("echo x"), cred=credential("wrong"))
    assert caught.value.message == (
        f"authentication rejected for user 'Administrator' on 127.0.0.1:{double.port} (WinRM basic)"
    )
    assert "wrong" not in caught.value.message
    assert double.auth_failures > failures


async def test_ntlm_with_message_encryption(runner: WinRMRunner, ntlm_double: WSManTestDouble) -> None:
    exit_code, _, output = await run(runner, ntlm_double, cmd("whoami"), cred=credential(transport="ntlm"))
    assert exit_code == 0
    assert output.text() == "win-double\\Administrator\r\n"
    exit_code, _, output = await run(
        runner, ntlm_double, ps("Write-Output ntlm-ps"), cred=credential(transport="ntlm")
    )
    assert (exit_code, output.text()) == (0, "ntlm-ps\r\n")


async def test_ntlm_is_the_default_transport(runner: WinRMRunner, ntlm_double: WSManTestDouble) -> None:
    cred = Credential(username=USER, password=PASSWORD, fingerprint="default")
    exit_code, _, output = await run(runner, ntlm_double, cmd("echo default"), cred=cred)
    assert (exit_code, output.text()) == (0, "default\r\n")


async def test_ntlm_wrong_password(runner: WinRMRunner, ntlm_double: WSManTestDouble) -> None:
    with pytest.raises(AuthenticationFailed, match=r"user 'Administrator' .* \(WinRM ntlm\)"):
        await run(runner, ntlm_double, cmd("echo x"), cred=credential("nope", transport="ntlm"))


async def test_https_with_and_without_certificate_validation(
    runner: WinRMRunner, tls_double: WSManTestDouble
) -> None:
    ignore = credential(scheme="https", serverCertValidation="ignore")
    exit_code, _, output = await run(runner, tls_double, cmd("echo tls"), cred=ignore)
    assert (exit_code, output.text()) == (0, "tls\r\n")
    with pytest.raises(
        HostKeyRejected, match=r"TLS certificate of 127\.0\.0\.1:.* was rejected: certificate verify failed"
    ):
        await run(runner, tls_double, cmd("echo tls"), cred=credential(scheme="https"))


async def test_connection_refused(runner: WinRMRunner, double: WSManTestDouble) -> None:
    port = free_port()
    with pytest.raises(ConnectionRefused, match=f"connection refused by 127.0.0.1:{port}"):
        await runner.run_step(
            target_of(double, port), credential(), cmd("echo x"), on_output=Output(), cancel=asyncio.Event()
        )


async def test_silent_server_does_not_hang(runner: WinRMRunner, double: WSManTestDouble) -> None:
    """A listener that accepts and never answers: bounded by the read timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        with pytest.raises(ConnectError, match=f"127.0.0.1:{port} did not answer within 3s"):
            await runner.run_step(
                target_of(double, port),
                credential(),
                cmd("echo x"),
                on_output=Output(),
                cancel=asyncio.Event(),
            )
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        listener.close()


async def test_unknown_transport_is_refused(runner: WinRMRunner, double: WSManTestDouble) -> None:
    from opsconductor_ray.errors import CredentialUnavailable

    with pytest.raises(CredentialUnavailable, match="WinRM transport 'digest' is not supported"):
        await run(runner, double, cmd("echo x"), cred=credential(transport="digest"))


async def test_test_connection(runner: WinRMRunner, double: WSManTestDouble) -> None:
    result = await runner.test_connection(target_of(double), credential(), 5)
    assert result.ok
    assert result.latency_ms is not None
    assert "over WinRM (basic, http" in result.message
    assert result.message.endswith("hostname WIN-DOUBLE")
    bad = await runner.test_connection(target_of(double), credential("bad"), 5)
    assert not bad.ok
    assert bad.message.startswith("authentication rejected for user 'Administrator'")


async def test_on_started_comes_before_output_and_only_once_connected(
    runner: WinRMRunner, double: WSManTestDouble
) -> None:
    order: list[str] = []

    def output(stream: str, text: str) -> None:
        order.append(stream)

    step = cmd("echo one")
    for _ in range(2):
        await runner.run_step(
            target_of(double),
            credential(),
            step,
            on_output=output,
            cancel=asyncio.Event(),
            on_started=lambda reused: order.append(f"started reused={reused}"),
        )
    assert order == ["started reused=False", "STDOUT", "started reused=True", "STDOUT"]
    order.clear()
    with pytest.raises(AuthenticationFailed):
        await runner.run_step(
            target_of(double),
            credential("bad"),
            step,
            on_output=output,
            cancel=asyncio.Event(),
            on_started=lambda reused: order.append("started"),
        )
    assert order == []


async def test_shells_per_host_are_limited(double: WSManTestDouble) -> None:
    runner = WinRMRunner(max_commands_per_host=1, operation_timeout_s=1, read_timeout_s=3)
    try:
        cancel = asyncio.Event()
        first = Output(double)
        long = asyncio.create_task(
            runner.run_step(
                target_of(double),
                credential(),
                cmd("ping -n 60 127.0.0.1", timeout_s=60),
                on_output=first,
                cancel=cancel,
            )
        )
        await asyncio.wait_for(first.first.wait(), 10)
        exit_code, reason, _ = await run(runner, double, cmd("echo second", timeout_s=1))
        assert exit_code is None
        assert reason == f"timed out after 1s waiting for a WinRM shell slot on 127.0.0.1:{double.port}"
        cancel.set()
        assert (await asyncio.wait_for(long, 20))[1] == "cancelled; the command was sent the terminate signal"
        assert (await run(runner, double, cmd("echo third")))[:2] == (0, None)
    finally:
        runner.close()


async def test_upload_goes_through_stdin(runner: WinRMRunner, double: WSManTestDouble) -> None:
    content = "".join(f"line {i} — ünïcode 'quoted'\r\n" for i in range(20_000))  # ~700 KB: many Sends
    step = Step(
        name="up",
        command="",
        type="file_transfer",
        transfer=Transfer(
            direction="upload", destination="C:\\deploy\\it's.txt", content=content, mode="0644"
        ),
    )
    exit_code, reason, output = await run(runner, double, step)
    assert (exit_code, reason, output.text("STDERR")) == (0, None, "")
    assert double.files["c:\\deploy\\it's.txt"] == content
    assert len(double.commands[-1]) < 8000  # the content did not go on the command line
    download = Step(
        name="dl",
        command="",
        type="file_transfer",
        transfer=Transfer(direction="download", source="C:\\deploy\\it's.txt", destination="x"),
    )
    exit_code, _, output = await run(runner, double, download)
    assert (exit_code, output.text()) == (0, content)
    # the same 1 MiB limit as over SFTP: refused before anything is sent
    sent = len(double.commands)
    too_big = Step(
        name="big",
        command="",
        type="file_transfer",
        transfer=Transfer(direction="upload", destination="C:\\x.bin", content="x" * (1024 * 1024 + 1)),
    )
    exit_code, reason, _ = await run(runner, double, too_big)
    assert (exit_code, reason) == (None, "upload content exceeds 1048576 bytes")
    assert len(double.commands) == sent


async def test_key_only_credential_is_refused(runner: WinRMRunner, double: WSManTestDouble) -> None:
    from opsconductor_ray.errors import CredentialUnavailable

    key_only = Credential(username="deploy", fingerprint="k", options={"transport": "basic"})
    with pytest.raises(
        CredentialUnavailable, match="WinRM needs a password; the credential of user 'deploy' has none"
    ):
        await run(runner, double, cmd("echo x"), cred=key_only)


async def test_missing_transport_packages_are_readable(runner: WinRMRunner, double: WSManTestDouble) -> None:
    """credssp and kerberos need requests-credssp / a Kerberos stack, not installed here."""
    import importlib.util

    from opsconductor_ray.errors import EngineError

    if importlib.util.find_spec("requests_credssp") is not None:
        # The test is about the message when it is missing; with it installed there is nothing to check.
        pytest.skip("requests-credssp is installed")
    with pytest.raises(EngineError, match="credssp, but requests-credssp is not installed"):
        await run(runner, double, cmd("echo x"), cred=credential(transport="credssp"))


async def test_abandoned_step_still_terminates_the_command(
    runner: WinRMRunner, double: WSManTestDouble
) -> None:
    """The caller's task is cancelled (actor going away): the remote command is stopped anyway."""
    output = Output(double)
    task = asyncio.create_task(
        runner.run_step(
            target_of(double),
            credential(),
            cmd("ping -n 60 127.0.0.1", timeout_s=60),
            on_output=output,
            cancel=asyncio.Event(),
        )
    )
    await asyncio.wait_for(output.first.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until(lambda: double.running_commands == 0)


# ----------------------------------------------------------------------------- security review


def _single_quoted_literals(text: str) -> list[str]:
    """The words of `text` when every one must be a PowerShell single-quoted literal, parsed by
    PowerShell's rule: any of ' U+2018 U+2019 U+201A U+201B closes the string unless the next
    character is one of them too (that pair stands for one quote). Anything else fails."""
    quotes = "'\u2018\u2019\u201a\u201b"
    words: list[str] = []
    index = 0
    while index < len(text):
        if text[index] == " ":
            index += 1
            continue
        assert text[index] in quotes, f"not a single-quoted literal at {index}: {text[index:]!r}"
        index += 1
        word: list[str] = []
        while True:
            assert index < len(text), "unterminated literal"
            char = text[index]
            if char in quotes:
                if index + 1 < len(text) and text[index + 1] in quotes:
                    word.append(char)
                    index += 2
                    continue
                index += 1
                break
            word.append(char)
            index += 1
        words.append("".join(word))
    return words


def _decoded(line: str) -> str:
    import base64

    assert line.split()[-2] == "-EncodedCommand"
    return base64.b64decode(line.split()[-1]).decode("utf-16-le")


@pytest.mark.parametrize("quote", ["'", "\u2018", "\u2019", "\u201a", "\u201b"])
def test_h7_typographic_quotes_in_powershell_arguments_stay_literal(quote: str) -> None:
    """H7: every single-quote character PowerShell accepts is doubled, so an argument like
    `a\u2019; evil; \u2019` stays one literal instead of closing the string and running `evil`."""
    hostile = f"a{quote}; evil; {quote}"
    script = _decoded(powershell_command_line("echo $args", (hostile, "second")))

    assert script.startswith("& {\necho $args\n} ")
    arguments = script.removeprefix("& {\necho $args\n} ")
    assert arguments == f"'a{quote}{quote}; evil; {quote}{quote}' 'second'"
    assert _single_quoted_literals(arguments) == [hostile, "second"]


def test_h7_upload_destination_stays_literal() -> None:
    """H7: the upload destination inside WriteAllBytes('...') cannot close its literal."""
    from opsconductor_ray.winrm import upload_script

    destination = "C:\\a\u2019+(evil)+\u2019"
    script = upload_script(destination)
    line = next(line for line in script.splitlines() if line.startswith("[IO.File]::WriteAllBytes("))
    literal = line.removeprefix("[IO.File]::WriteAllBytes(").removesuffix(
        ", [Convert]::FromBase64String($data))"
    )
    assert literal == "'C:\\a\u2019\u2019+(evil)+\u2019\u2019'"
    assert _single_quoted_literals(literal) == [destination]


async def test_h7_hostile_argument_and_path_arrive_literally(
    runner: WinRMRunner, double: WSManTestDouble
) -> None:
    """H7 through the WS-Man double (which tokenizes with PowerShell's quote rules)."""
    hostile = "a\u2019; Write-Output injected; \u2019"
    exit_code, _, output = await run(runner, double, ps('Write-Output "[$($args[0])]"', hostile))
    assert (exit_code, output.text()) == (0, f"[{hostile}]\r\n")

    path = "C:\\temp\\x\u2018; Write-Output injected; \u2018.txt"
    upload = Step(
        name="up",
        command="",
        type="file_transfer",
        transfer=Transfer(direction="upload", destination=path, content="data"),
        timeout_seconds=20,
    )
    exit_code, _, output = await run(runner, double, upload)
    assert exit_code == 0 and "injected" not in output.text()
    assert double.files[path.lower()] == "data"


@pytest.mark.parametrize(
    ("options", "refused"),
    [
        ({"transport": "basic", "scheme": "http"}, "basic authentication over plain http"),
        ({"transport": "basic", "scheme": "https", "serverCertValidation": "ignore"}, "without certificate"),
        ({"transport": "ntlm", "scheme": "https", "serverCertValidation": "ignore"}, "without certificate"),
        ({"transport": "basic", "scheme": "https"}, None),
        ({"transport": "ntlm", "scheme": "http"}, None),
        ({"transport": "basic", "scheme": "http", "allowInsecure": "true"}, None),
        ({"scheme": "https", "serverCertValidation": "ignore", "allowInsecure": "true"}, None),
    ],
)
def test_l5_insecure_winrm_transport_needs_an_explicit_allowance(
    options: dict[str, str], refused: str | None
) -> None:
    """L5: Basic over http and serverCertValidation ignore are refused unless `allowInsecure`."""
    from opsconductor_ray.errors import InsecureTransportRefused
    from opsconductor_ray.winrm import endpoint_of

    cred = Credential(username=USER, password=PASSWORD, fingerprint="f", options=options)
    target = TargetSpec(target_id="w", name="w", host="127.0.0.1", port=5985, method="winrm")
    if refused is None:
        endpoint = endpoint_of(target, cred)
        assert endpoint.allow_insecure == (options.get("allowInsecure") == "true")
    else:
        with pytest.raises(InsecureTransportRefused, match=refused):
            endpoint_of(target, cred)


async def test_l5_basic_over_http_is_refused_before_the_password_is_sent(
    runner: WinRMRunner, double: WSManTestDouble
) -> None:
    """L5: the refusal happens before any request reaches the host."""
    requests = len(double.commands)
    result = await runner.test_connection(target_of(double), credential(allowInsecure="false"))
    assert not result.ok and "clear text" in result.message
    assert len(double.commands) == requests


async def test_m12_idle_sessions_are_reaped_in_the_background(double: WSManTestDouble) -> None:
    """M12: an idle Protocol (holding the password) is closed by the reaper after
    idle_timeout_s, without waiting for the next checkout of its endpoint; the per-host slot
    dict is empty once no step uses the host."""
    engine = WinRMRunner(
        max_workers=2, operation_timeout_s=1, read_timeout_s=3, idle_timeout_s=0.3, reap_interval_s=0.1
    )
    try:
        exit_code, _, _ = await run(engine, double, cmd("echo x"))
        assert exit_code == 0
        assert engine.stats()["winrm_idle_sessions"] == 1
        assert len(engine._host_slots) == 0
        await wait_until(lambda: engine.stats()["winrm_idle_sessions"] == 0, timeout_s=10)
        assert engine._idle == {}
    finally:
        engine.close()


async def test_m12_powershell_stderr_is_capped(double: WSManTestDouble) -> None:
    """M12: a PowerShell step's CLIXML stderr is kept only up to a bound, then marked."""
    engine = WinRMRunner(max_workers=2, operation_timeout_s=1, read_timeout_s=3, max_powershell_stderr=1000)
    try:
        body = "\n".join(f"Write-Error {'e' * 100}-{i}" for i in range(20))
        exit_code, reason, output = await run(engine, double, ps(body))
        assert (exit_code, reason) == (1, None)
        stderr = output.text("STDERR")
        assert "output truncated at 1000 bytes" in stderr
        assert len(stderr) < 1000 + 100
        assert "-0" in stderr and "-19" not in stderr
        assert output.cut, "the runner says it cut the output (STEP_FINISHED.truncated)"
        exit_code, reason, output = await run(engine, double, ps("Write-Error small"))
        assert (exit_code, reason, output.cut) == (1, None, False)
    finally:
        engine.close()


def test_m12_clean_clixml_is_linear() -> None:
    """M12: many unclosed error records no longer make the scan quadratic (the lazy regex took
    ~7 s for this input); the result is what the regex gave."""
    import re

    hostile = "#< CLIXML" + '<S S="Error">x' * 10_000
    started = time.monotonic()
    assert clean_clixml(hostile) == hostile
    assert time.monotonic() - started < 1.0

    def by_regex(text: str) -> str:
        import html

        found = re.findall(r'<S S="Error">(.*?)</S>', text, flags=re.DOTALL)
        return "".join(html.unescape(m).replace("_x000D__x000A_", "\n") for m in found) if found else text

    for sample in (
        '#< CLIXML<S S="Error">a</S><S S="Error">b &lt;c&gt;</S>tail<S S="Error">unclosed',
        '#< CLIXML<S S="Error"><S S="Error">nested</S></S>',
        '#< CLIXML<S S="Info">no</S>',
    ):
        assert clean_clixml(sample) == by_regex(sample)


@pytest.mark.parametrize("source", ['C:\\a" & whoami & "', "C:\\%COMSPEC%", "C:\\a\r\nwhoami"])
async def test_h7_download_source_cannot_leave_its_quotes(
    runner: WinRMRunner, double: WSManTestDouble, source: str
) -> None:
    """H7 (related): the download runs through cmd.exe; a source that could end the quoted path,
    expand a variable or end the command line is refused before anything runs."""
    commands = len(double.commands)
    step = Step(
        name="down",
        command="",
        type="file_transfer",
        transfer=Transfer(direction="download", destination="x", source=source),
        timeout_seconds=20,
    )
    exit_code, reason, _ = await run(runner, double, step)
    assert exit_code is None and reason is not None and "download needs a source path" in reason
    assert len(double.commands) == commands
