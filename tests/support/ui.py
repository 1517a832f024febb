"""The web UI in a real browser: the built frontend (frontend/dist, `make ui`), served by
scripts/ui_server.py on a free loopback port, a router whose CORS list names that origin, and
Debian's /usr/bin/chromium driven by Playwright (never a downloaded browser; one per session).

Screenshots go to test-artifacts/ui/ (gitignored). An sshd fleet (bench/infra.py: 16 loopback
addresses per sshd, 127.0.200.x and up) gives the UI tests hosts of their own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.support.net import free_port
from tests.support.platform import SESSION_ROUTER_RATE_LIMITS, RunningPlatform
from tests.support.router import REPO_ROOT, RouterProcess, start_router, subgraph_urls_env

CHROMIUM = Path(os.environ.get("OPSC_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = REPO_ROOT / "test-artifacts" / "ui"
DIST = REPO_ROOT / "frontend" / "dist"
AXE = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"


@dataclass
class UiStack:
    url: str
    router: RouterProcess


def build_ui() -> None:
    """`make ui`: builds frontend/dist only when a source is newer (make test already did)."""
    subprocess.run(["make", "--no-print-directory", "ui"], cwd=REPO_ROOT, check=True, timeout=600)


@pytest.fixture(scope="session")
def ui_stack(platform: RunningPlatform) -> Iterator[UiStack]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (make test and .ci/run do)")
    build_ui()
    ui_port = free_port()
    origin = f"http://127.0.0.1:{ui_port}"
    router = start_router(
        free_port(),
        {
            **subgraph_urls_env(platform.ports),
            "OPSC_JWKS_URL": f"{platform.base('auth')}/.well-known/jwks.json",
            "OPSC_CORS_ORIGINS": origin,
            **SESSION_ROUTER_RATE_LIMITS,
        },
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = (ARTIFACTS / "ui-server.log").open("wb")
    server = subprocess.Popen(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "ui_server.py"),
            "--port",
            str(ui_port),
            "--router",
            router.url,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_http(f"{origin}/config.js", server)
        yield UiStack(url=origin, router=router)
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()
        router.stop()


def _wait_http(url: str, proc: subprocess.Popen[bytes]) -> None:
    import time
    import urllib.request

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ui server exited with {proc.returncode}; see {ARTIFACTS / 'ui-server.log'}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"ui server did not answer on {url}")


@pytest.fixture(scope="session")
def ui_fleet() -> Iterator[Any]:
    """sshd processes with 112 loopback hosts of the UI tests' own (targets may not share a host)."""
    from bench.infra import start_fleet

    fleet = start_fleet(101)
    try:
        yield fleet
    finally:
        fleet.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    """One chromium for the whole session (Debian's; --no-sandbox: the tests run as root)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def new_page(browser: Any, *, width: int = 1280, height: int = 800, bypass_csp: bool = False) -> Any:
    context = await browser.new_context(
        viewport={"width": width, "height": height}, bypass_csp=bypass_csp, accept_downloads=True
    )
    context.set_default_timeout(30_000)
    page = await context.new_page()
    # the browser's errors end up in the test's captured output (shown when it fails)
    page.on("console", lambda m: m.type in ("error", "warning") and print(f"browser {m.type}: {m.text}"))
    page.on("pageerror", lambda e: print(f"browser pageerror: {e}"))
    page.on("requestfailed", lambda r: print(f"browser requestfailed: {r.url} {r.failure}"))
    return page


async def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=False)
    return path


async def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core on the current page (the context needs bypass_csp: the script is injected inline)."""
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate(
        """async () => {
          const r = await axe.run(document, { resultTypes: ['violations'] });
          return r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ')) }));
        }"""
    )
    return list(result)


async def login(page: Any, url: str, username: str, password: str) -> None:
    await page.goto(url)
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    try:
        # the app shell's "Log out" (the user's name is hidden on a phone-sized screen)
        await page.get_by_role("banner").get_by_role("button", name="Log out").wait_for()
    except Exception:
        await shot(page, "login-failure")
        raise
