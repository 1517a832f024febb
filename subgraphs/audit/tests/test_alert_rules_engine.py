"""The rules engine (threshold, sliding window, groupBy, matching), templates, webhook signatures
and the destination policy: pure functions, no services needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from opsconductor_audit.service.alerting import signing, templates
from opsconductor_audit.service.alerting.destinations import DestinationDenied, DestinationPolicy
from opsconductor_audit.service.alerting.rules import Channel, RuleEngine, RuleSpec, observed, validate
from opsconductor_shared.errors import ValidationError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _rule(**kw: object) -> RuleSpec:
    base: dict[str, object] = {
        "id": "r1",
        "name": "failures",
        "event_types": ("executions.execution_finished",),
        "threshold": 3,
        "window_seconds": 60,
        "outcome": "FAILURE",
    }
    base.update(kw)
    return RuleSpec(**base)  # type: ignore[arg-type]


def _event(
    seconds: float, *, type_: str = "executions.execution_finished", outcome: str = "FAILURE", **kw: object
):
    return observed(
        {"type": type_, "outcome": outcome, "at": T0 + timedelta(seconds=seconds), "id": f"e{seconds}", **kw}
    )


def test_threshold_within_window_triggers_once_and_restarts() -> None:
    engine = RuleEngine()
    engine.load([_rule()])
    assert engine.observe(_event(0)) == []
    assert engine.observe(_event(10)) == []
    [trigger] = engine.observe(_event(20))
    assert trigger.count == 3 and trigger.first_at == T0 and trigger.event_ids == ("e0", "e10", "e20")
    # the window starts again empty: two more are not enough
    assert engine.observe(_event(21)) == [] and engine.observe(_event(22)) == []
    assert len(engine.observe(_event(23))) == 1


def test_events_older_than_the_window_drop_out() -> None:
    engine = RuleEngine()
    engine.load([_rule()])
    engine.observe(_event(0))
    engine.observe(_event(30))
    assert engine.observe(_event(61)) == []  # e0 is 61 s older: out of the 60 s window
    assert engine.window_count("r1") == 2
    assert len(engine.observe(_event(89))) == 1  # e30, e61, e89 within 60 s


def test_group_by_keeps_one_window_per_key() -> None:
    engine = RuleEngine()
    engine.load([_rule(group_by="data.jobId", threshold=2)])
    assert engine.observe(_event(0, data={"jobId": "a"})) == []
    assert engine.observe(_event(1, data={"jobId": "b"})) == []
    [trigger] = engine.observe(_event(2, data={"jobId": "a"}))
    assert trigger.group_key == "a"
    assert engine.window_count("r1", "b") == 1
    engine2 = RuleEngine()
    engine2.load([_rule(group_by="actorName", threshold=2, event_types=("auth.*",), outcome=None)])
    engine2.observe(_event(0, type_="auth.login_failed", actorName="bob"))
    assert engine2.observe(_event(1, type_="auth.login_failed", actorName="eve")) == []
    assert engine2.observe(_event(2, type_="auth.login_failed", actorName="bob"))[0].group_key == "bob"


def test_matching_by_type_outcome_data_and_enabled() -> None:
    engine = RuleEngine()
    engine.load(
        [
            _rule(
                id="crit",
                event_types=("targets.target_health_changed",),
                outcome=None,
                threshold=1,
                data_match={"healthStatus": "critical"},
            ),
            _rule(id="off", enabled=False, threshold=1),
        ]
    )
    assert engine.observe(_event(0, outcome="SUCCESS")) == []  # outcome mismatch; "off" is disabled
    assert (
        engine.observe(_event(0, type_="targets.target_health_changed", data={"healthStatus": "warning"}))
        == []
    )
    [t] = engine.observe(_event(0, type_="targets.target_health_changed", data={"healthStatus": "critical"}))
    assert t.rule.id == "crit"


def test_reload_keeps_windows_of_unchanged_rules_only() -> None:
    engine = RuleEngine()
    engine.load([_rule(), _rule(id="r2")])
    engine.observe(_event(0))
    engine.load([_rule(), _rule(id="r2", threshold=5)])
    assert engine.window_count("r1") == 1 and engine.window_count("r2") == 0


def test_memory_is_bounded_per_rule() -> None:
    engine = RuleEngine(max_keys=10)
    engine.load([_rule(group_by="subjectId", threshold=2)])
    for i in range(100):
        engine.observe(_event(i / 100, subjectId=f"s{i}"))
    assert len(engine._windows["r1"]) == 10


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"threshold": 0}, "threshold"),
        ({"window_seconds": 0}, "windowSeconds"),
        ({"event_types": []}, "eventTypes"),
        ({"severity": "LOUD"}, "severity"),
        ({"group_by": "password"}, "groupBy"),
        ({"outcome": "MAYBE"}, "outcome"),
        ({"channels": [Channel("SMS", "x")]}, "channels"),
        ({"data_match": [1]}, "dataMatch"),
    ],
)
def test_validation_names_the_field(override: dict[str, object], field: str) -> None:
    args: dict[str, object] = {
        "name": "n",
        "event_types": ["a.b"],
        "threshold": 1,
        "window_seconds": 60,
        "severity": "ERROR",
        "outcome": None,
        "group_by": None,
        "data_match": {},
        "channels": [],
    }
    args.update(override)
    with pytest.raises(ValidationError) as info:
        validate(**args)  # type: ignore[arg-type]
    assert info.value.field == field


def test_templates_render_safely() -> None:
    spec = templates.TemplateSpec(
        "t", "EMAIL", "$severity: $title\r\nBcc: x@y", "${message} $unknown $$ {{7*7}}"
    )
    subject, body = templates.render(spec, {"severity": "ERROR", "title": "x", "message": "m" * 5000})
    assert "\n" not in subject and subject.startswith("ERROR: x")
    assert "$unknown" in body and "$ {{7*7}}" in body and len(body) < 2100
    with pytest.raises(ValidationError):
        templates.check("ok", "price: $")


def test_webhook_signature_round_trip() -> None:
    headers = signing.sign("s3cret", b'{"a":1}', now=1000)
    ts, sig = headers[signing.TIMESTAMP_HEADER], headers[signing.SIGNATURE_HEADER]
    assert sig.startswith("v1=") and signing.verify("s3cret", b'{"a":1}', ts, sig, now=1010)
    assert not signing.verify("s3cret", b'{"a":2}', ts, sig, now=1010)
    assert not signing.verify("other", b'{"a":1}', ts, sig, now=1010)
    assert not signing.verify("s3cret", b'{"a":1}', ts, sig, now=5000)  # replay


async def test_destination_policy_refuses_metadata_and_platform_endpoints() -> None:
    policy = DestinationPolicy(
        deny_networks="10.0.0.0/8", platform_endpoints=["http://127.0.0.1:8004/graphql"]
    )
    await policy.check_url("http://127.0.0.1:9999/hook")
    for url in (
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]/x",
        "http://10.1.2.3/x",
        "http://127.0.0.1:8004/graphql",
        "ftp://127.0.0.1/x",
        "http://user:pw@127.0.0.1:9999/",
    ):
        with pytest.raises(DestinationDenied):
            await policy.check_url(url)
