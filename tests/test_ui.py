"""The web UI end to end in Chromium: the real router, subgraphs, Ray and sshd behind it.

Flow: log in -> add a target on the test sshd (accept its host key, test the connection) ->
create a job -> run it -> watch the output stream in -> cancel a long run -> retry the failed
(cancelled) targets -> log out. Then a viewer sees no write buttons, axe-core finds no serious
violations on the main pages, and the log viewer keeps up with 100 targets x 10,000 lines.
Screenshots of every main page: test-artifacts/ui/*.png.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from typing import Any

import pytest

from tests.support.platform import gql, login
from tests.support.ui import ARTIFACTS, UiStack, axe_violations, new_page, shot
from tests.support.ui import login as ui_login

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(600)]

RUNNING_JOB = (
    "for i in $(seq 1 20); do echo \"line $i\"; printf '\\033[32mgreen %s\\033[0m\\n' $i; done; echo oops >&2"
)


async def _select(page: Any, label: str, option: str) -> None:
    """Pick an option of an MUI select by its label."""
    await page.get_by_role("combobox", name=re.compile(rf"^{re.escape(label)}( \*)?$")).click()
    await page.get_by_role("option", name=option, exact=True).click()


async def _admin_token(ui: UiStack, password: str) -> str:
    return await login(ui.router.url, "admin", password)


async def test_newcomer_flow(browser: Any, ui_stack: UiStack, ui_fleet: Any, platform: Any) -> None:
    page = await new_page(browser)
    try:
        await _newcomer_flow(page, browser, ui_stack, ui_fleet, platform)
    except Exception:
        await shot(page, "failure-newcomer-flow")
        raise


async def _newcomer_flow(page: Any, browser: Any, ui_stack: UiStack, ui_fleet: Any, platform: Any) -> None:
    await page.goto(ui_stack.url)
    await page.get_by_role("button", name="Log in").wait_for()
    await shot(page, "01-login")
    await ui_login(page, ui_stack.url, "admin", platform.admin_password)
    await page.get_by_role("heading", name="Dashboard").wait_for()
    await page.wait_for_load_state("networkidle")
    await shot(page, "02-dashboard")

    # ---- add a target on the test sshd
    endpoint = ui_fleet.endpoints[0]
    name = f"ui-web-{uuid.uuid4().hex[:6]}"
    await page.get_by_role("link", name="Targets").click()
    await page.get_by_role("button", name="New target").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_role("textbox", name=re.compile(r"^Name")).fill(name)
    await _select(page, "Environment", "testing")
    await dialog.get_by_label("Host").fill(endpoint.host)
    await dialog.get_by_label("Port").fill(str(endpoint.port))
    await _select(page, "Credential", "SSH key")
    await dialog.get_by_label("Username").fill(ui_fleet.username)
    await dialog.get_by_label("Private key").fill(ui_fleet.private_key_pem)
    await dialog.get_by_role("button", name="Save").click()
    await page.get_by_role("heading", name=re.compile(name)).wait_for()
    await page.get_by_role("button", name="Accept current host key").click()
    await page.get_by_text(re.compile(r"Host key SHA256:.* trusted")).wait_for()
    await page.get_by_role("button", name="Test connection").click()
    await page.get_by_text(re.compile(r"^Connected")).wait_for()
    await page.reload()
    await page.locator("[data-health=HEALTHY]").first.wait_for()
    await shot(page, "04-target-detail")
    target_url = page.url

    await page.get_by_role("link", name="Targets").click()
    await page.get_by_label("Search").fill(name)
    await page.get_by_test_id("target-row").first.wait_for()
    await shot(page, "03-targets")

    # ---- create a job
    await page.get_by_role("link", name="Jobs").click()
    await page.get_by_role("button", name="New job").click()
    job_name = f"ui-job-{uuid.uuid4().hex[:6]}"
    await page.get_by_label("Job name").fill(job_name)
    await page.get_by_label("Command").fill(RUNNING_JOB)
    await page.get_by_label("Find targets").fill(name)
    await page.get_by_role("checkbox", name=f"Pick {name}").click()
    await page.get_by_role("button", name="Validate").click()
    await page.get_by_test_id("job-check").filter(has_text="Valid").wait_for()
    await page.get_by_role("button", name="Save").click()
    await page.get_by_role("heading", name=re.compile(rf"{job_name} \(JOB-")).wait_for()
    await page.get_by_role("button", name="Dry-run plan").click()
    await page.get_by_test_id("job-check").filter(has_text="Plan v1").wait_for()
    await shot(page, "05-job-editor")

    # ---- run it and watch the output stream in
    await page.get_by_role("button", name="Run…").click()
    await page.get_by_role("dialog").get_by_text("Plan: version 1").wait_for()
    await shot(page, "06-run-dialog")
    await page.get_by_role("button", name="Run now").click()
    await page.get_by_test_id("log-viewer").wait_for()
    log = page.get_by_test_id("log-viewer")
    await log.get_by_text("line 20", exact=True).wait_for()
    await page.get_by_test_id("stream-state").filter(has_text="finished").wait_for()
    await page.get_by_test_id("run-summary").filter(has_text="1 succeeded").wait_for()
    # ANSI colours are rendered, not shown as escape codes
    green = log.get_by_text("green 20", exact=True)
    assert "rgb(" in (await green.get_attribute("style") or "")
    # stream filter: stderr only
    await page.get_by_role("checkbox", name="stdout").uncheck()
    await page.get_by_role("checkbox", name="events").uncheck()
    await log.get_by_text("oops").wait_for()
    assert await log.locator(".log-line").count() == 1
    await page.get_by_role("checkbox", name="stdout").check()
    await page.get_by_role("checkbox", name="events").check()
    # regex search runs in the worker
    await page.get_by_test_id("log-search").fill(r"line 1\d$")
    await page.get_by_test_id("search-count").filter(has_text="1 / 10").wait_for()
    # download of the whole log, without timestamps
    async with page.expect_download() as dl_info:
        await page.get_by_role("button", name="Download all").click()
    download = await dl_info.value
    text = ARTIFACTS / "run.log"
    await download.save_as(str(text))
    body = text.read_text()
    assert f"{name} | line 20" in body and "\x1b[" not in body
    await shot(page, "07-run-page")
    phone = await new_page(browser, width=390, height=844)
    await ui_login(phone, page.url, "admin", platform.admin_password)
    await phone.get_by_test_id("log-viewer").get_by_text("line 20", exact=True).wait_for()
    await shot(phone, "08-run-page-phone")
    await phone.context.close()

    # ---- cancel a long run, then retry its failed (cancelled) targets
    await page.get_by_role("link", name="Jobs").click()
    await page.get_by_role("link", name=job_name).click()
    await page.get_by_label("Command").fill("echo started; sleep 120; echo never")
    await page.get_by_role("button", name="Save").click()
    await page.get_by_text("Job saved").wait_for()
    await page.get_by_role("button", name="Run…").click()
    await page.get_by_role("button", name="Run now").click()
    await page.get_by_test_id("log-viewer").get_by_text("started", exact=True).wait_for()
    await page.get_by_role("button", name="Cancel run").click()
    await page.get_by_test_id("run-summary").filter(has_text="1 cancelled").wait_for(timeout=60_000)
    first_run = page.url
    await page.get_by_role("button", name="Retry failed targets").click()
    await page.wait_for_url(lambda u: u != first_run)
    await page.get_by_test_id("run-summary").filter(has_text="retry of").wait_for()
    await page.get_by_test_id("log-viewer").get_by_text("started", exact=True).wait_for()
    await page.get_by_role("button", name="Cancel run").click()
    await page.get_by_test_id("run-summary").filter(has_text="1 cancelled").wait_for(timeout=60_000)

    # ---- the other main pages
    for link, heading, file in [
        ("Executions", "Executions", "09-executions"),
        ("Schedules", "Schedules", "10-schedules"),
        ("Users & roles", "Users and roles", "12-users"),
        ("My profile", "My profile", "13-profile"),
        ("System health", "System health", "14-system"),
    ]:
        await page.get_by_role("link", name=link).click()
        await page.get_by_role("heading", name=heading, exact=True, level=1).wait_for()
        await page.wait_for_load_state("networkidle")
        await shot(page, file)
        if link == "Schedules":
            await page.get_by_role("button", name="New schedule").click()
            await _select(page, "Job", job_name)
            await page.get_by_label("Time zone (IANA)").fill("Europe/Berlin")
            await page.get_by_label("Cron (5 fields)").fill("30 2 * * *")
            await page.get_by_test_id("schedule-preview").wait_for()
            await shot(page, "11-schedule-editor")
            await page.get_by_role("button", name="Cancel").click()
    assert await page.get_by_test_id("router-health").filter(has_text="ready").count() == 1

    # ---- log out
    await page.get_by_role("button", name="Log out").click()
    await page.get_by_role("button", name="Log in").wait_for()
    # the session is gone: reloading stays logged out
    await page.goto(target_url)
    await page.get_by_role("button", name="Log in").wait_for()
    await page.context.close()


async def test_viewer_sees_no_write_buttons(browser: Any, ui_stack: UiStack, platform: Any) -> None:
    token = await _admin_token(ui_stack, platform.admin_password)
    username = f"viewer{uuid.uuid4().hex[:6]}"
    password = "Viewer-Pass-123!"
    body = await gql(
        ui_stack.router.url,
        """mutation($i: CreateUserInput!) { createUser(input: $i) { __typename ... on Error { message } } }""",
        {
            "i": {
                "username": username,
                "email": f"{username}@example.test",
                "password": password,
                "roles": ["viewer"],
            }
        },
        token=token,
    )
    assert body["data"]["createUser"]["__typename"] == "UserCreated", body
    page = await new_page(browser)
    await ui_login(page, ui_stack.url, username, password)
    nav = page.get_by_role("navigation", name="Main")
    assert await nav.get_by_role("link", name="Users & roles").count() == 0
    await nav.get_by_role("link", name="Targets").click()
    await page.get_by_role("heading", name="Targets", exact=True, level=1).wait_for()
    await page.wait_for_load_state("networkidle")
    assert await page.get_by_role("button", name="New target").count() == 0
    assert await page.get_by_role("button", name=re.compile("^Test")).count() == 0
    await shot(page, "15-viewer-targets")
    await nav.get_by_role("link", name="Jobs").click()
    await page.get_by_role("heading", name="Jobs", exact=True, level=1).wait_for()
    await page.wait_for_load_state("networkidle")
    assert await page.get_by_role("button", name="New job").count() == 0
    await nav.get_by_role("link", name="Schedules").click()
    await page.get_by_role("heading", name="Schedules", exact=True, level=1).wait_for()
    assert await page.get_by_role("button", name="New schedule").count() == 0
    await page.context.close()


async def test_main_pages_have_no_serious_accessibility_violations(
    browser: Any, ui_stack: UiStack, platform: Any
) -> None:
    page = await new_page(browser, bypass_csp=True)
    await page.goto(ui_stack.url)
    await page.get_by_role("button", name="Log in").wait_for()
    found: dict[str, list[dict[str, Any]]] = {"login": await axe_violations(page)}
    await ui_login(page, ui_stack.url, "admin", platform.admin_password)
    for path, heading in [
        ("/", "Dashboard"),
        ("/targets", "Targets"),
        ("/jobs", "Jobs"),
        ("/jobs/new", "New job"),
        ("/executions", "Executions"),
        ("/schedules", "Schedules"),
        ("/users", "Users and roles"),
        ("/profile", "My profile"),
        ("/system", "System health"),
    ]:
        await page.goto(ui_stack.url + path)
        await page.get_by_role("heading", name=heading, exact=True, level=1).wait_for()
        await page.wait_for_load_state("networkidle")
        found[path] = await axe_violations(page)
    serious = {p: [v for v in vs if v["impact"] in ("serious", "critical")] for p, vs in found.items()}
    (ARTIFACTS / "axe.json").write_text(json.dumps(found, indent=1))
    assert not any(serious.values()), json.dumps(serious, indent=1)
    await page.context.close()


PERF_TARGETS = 100
PERF_LINES = 10_000


async def test_log_viewer_keeps_up_with_100_targets_of_10000_lines(
    browser: Any, ui_stack: UiStack, ui_fleet: Any, platform: Any
) -> None:
    token = await _admin_token(ui_stack, platform.admin_password)
    ids = []
    for endpoint in ui_fleet.endpoints[1 : PERF_TARGETS + 1]:
        body = await gql(
            ui_stack.router.url,
            """mutation($i: CreateTargetInput!) { createTarget(input: $i) { __typename
              ... on TargetCreated { target { id } } ... on Error { message } } }""",
            {
                "i": {
                    "name": f"perf-{endpoint.host}",
                    "osType": "linux",
                    "environment": "testing",
                    "methods": [
                        {
                            "type": "SSH",
                            "host": endpoint.host,
                            "port": endpoint.port,
                            "credential": {
                                "type": "SSH_KEY",
                                "username": ui_fleet.username,
                                "privateKey": ui_fleet.private_key_pem,
                            },
                        }
                    ],
                }
            },
            token=token,
        )
        assert body["data"]["createTarget"]["__typename"] == "TargetCreated", body
        ids.append(body["data"]["createTarget"]["target"]["id"])
    body = await gql(
        ui_stack.router.url,
        """mutation($i: CreateJobInput!) { createJob(input: $i) { __typename ... on JobCreated { job { id } }
          ... on Error { message } } }""",
        {
            "i": {
                "name": "perf-log",
                "targetIds": ids,
                "steps": [
                    {"name": "lines", "command": f"seq -f 'output line %g of the perf run' 1 {PERF_LINES}"}
                ],
                "policy": {"maxParallel": PERF_TARGETS},
            }
        },
        token=token,
    )
    job_id = body["data"]["createJob"]["job"]["id"]
    body = await gql(
        ui_stack.router.url,
        """mutation($id: ID!) { runJob(jobId: $id) { __typename ... on ExecutionStarted { execution { id } }
          ... on Error { message } } }""",
        {"id": job_id},
        token=token,
    )
    execution_id = body["data"]["runJob"]["execution"]["id"]
    deadline = time.monotonic() + 300
    status = ""
    while time.monotonic() < deadline:
        body = await gql(
            ui_stack.router.url,
            "query($id: ID!) { execution(id: $id) { status succeededTargets } }",
            {"id": execution_id},
            token=token,
        )
        status = body["data"]["execution"]["status"]
        if status in ("SUCCEEDED", "FAILED", "CANCELLED"):
            break
        await asyncio.sleep(1)
    assert status == "SUCCEEDED", body

    page = await new_page(browser)
    await ui_login(page, ui_stack.url, "admin", platform.admin_password)
    # long tasks and the first log line, recorded by the page itself
    await page.add_init_script(
        """
        window.__longTasks = [];
        new PerformanceObserver((list) => { for (const e of list.getEntries())
          window.__longTasks.push({ start: e.startTime, duration: e.duration }); })
          .observe({ type: 'longtask', buffered: true });
        new MutationObserver((_, obs) => {
          if (document.querySelector('.log-line')) { window.__firstLine = performance.now(); obs.disconnect(); }
        }).observe(document, { childList: true, subtree: true });
        """
    )
    await page.goto(f"{ui_stack.url}/executions/{execution_id}")
    await page.locator(".log-line").first.wait_for()
    first_line_ms = await page.evaluate("window.__firstLine")
    expected = PERF_TARGETS * PERF_LINES
    await page.get_by_test_id("stream-state").filter(has_text="finished").wait_for(timeout=240_000)
    lines = int(await page.get_by_test_id("log-viewer").get_attribute("data-lines") or 0)
    assert lines >= expected, lines
    await page.get_by_role("switch", name="follow").uncheck()
    scroll_start = await page.evaluate("performance.now()")
    scroller = page.get_by_test_id("log-viewer").locator("[data-virtuoso-scroller]")
    # a user's scroll: wheel steps, a drag of the thumb to the middle, then to the end
    await scroller.hover()
    for _ in range(20):
        await page.mouse.wheel(0, 2000)
        await page.wait_for_timeout(30)
    await scroller.evaluate("el => { el.scrollTop = el.scrollHeight / 2; }")
    await page.wait_for_timeout(300)
    await scroller.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    await page.wait_for_timeout(500)
    last = page.get_by_test_id("log-viewer").get_by_text(f"output line {PERF_LINES} of the perf run")
    assert await last.count() >= 1
    tasks = await page.evaluate("window.__longTasks")
    scroll_tasks = [t for t in tasks if t["start"] >= scroll_start]
    worst_scroll = max((t["duration"] for t in scroll_tasks), default=0)
    worst_load = max((t["duration"] for t in tasks), default=0)
    figures = {
        "targets": PERF_TARGETS,
        "lines": lines,
        "first_screen_ms": round(first_line_ms),
        "longest_task_while_scrolling_ms": round(worst_scroll),
        "longest_task_overall_ms": round(worst_load),
        "long_tasks": len(tasks),
    }
    (ARTIFACTS / "log-viewer-perf.json").write_text(json.dumps(figures, indent=1))
    await shot(page, "16-run-page-100-targets")
    assert first_line_ms < 1500, figures
    assert worst_scroll <= 200, figures
    await page.context.close()
