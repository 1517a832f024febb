"""Unit tests of the targets service's pure rules: hosts, ports, methods, credentials, cursors, grants."""

from __future__ import annotations

import asyncio
import base64
import os
import time

import asyncssh
import pytest

from opsconductor_shared.crypto import KeyRing
from opsconductor_shared.errors import ValidationError
from opsconductor_targets.service import (
    METHOD_CONFIG_DEFAULTS,
    METHOD_CONFIG_SPEC,
    METHOD_PORTS,
    GrantRejected,
    GrantSigner,
    NewCredential,
    NewMethod,
    NewTarget,
    normalize_host,
    validate_new_target,
    validate_port,
)

KEY = asyncssh.generate_private_key("ssh-ed25519").export_private_key("openssh").decode()
RSA = asyncssh.generate_private_key("ssh-rsa", key_size=2048)
ENCRYPTED_KEY = RSA.export_private_key("pkcs8-pem", passphrase="s3cret-phrase").decode()


def ssh(host: str = "10.0.0.1", **kw: object) -> NewMethod:
    cred = kw.pop("credential", NewCredential(type="password", username="root", password="pw"))
    return NewMethod(type="ssh", host=host, credential=cred, **kw)  # type: ignore[arg-type]


def target(*methods: NewMethod, **kw: object) -> NewTarget:
    base: dict[str, object] = {"name": "web-1", "os_type": "linux"}
    base.update(kw)
    return NewTarget(methods=list(methods) or [ssh()], **base)  # type: ignore[arg-type]


def field_of(new: NewTarget) -> str | None:
    with pytest.raises(ValidationError) as info:
        validate_new_target(new)
    return info.value.field


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("10.0.0.1", "10.0.0.1"),
        ("Web-01.Example.COM", "web-01.example.com"),
        ("db.internal.", "db.internal"),
        ("::1", "::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("2001:0db8:0000::0001", "2001:db8::1"),
        ("localhost", "localhost"),
        ("srv_01.corp", "srv_01.corp"),
    ],
)
def test_valid_hosts(raw: str, expected: str) -> None:
    assert normalize_host(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "my host",
        " 10.0.0.1",
        "10.0.0.1\n",
        "999.1.1.1",
        "10.0.0",
        "-bad.example",
        "bad-.example",
        "a..b",
        "x" * 64 + ".com",
        ("a" * 60 + ".") * 5,
        "host/name",
        "ho$t",
        "http://x.com",
        "under@score",
    ],
)
def test_invalid_hosts(raw: str) -> None:
    with pytest.raises(ValidationError) as info:
        normalize_host(raw, "methods[0].host")
    assert info.value.field == "methods[0].host"


def test_ports() -> None:
    assert validate_port(None, "ssh") == 22
    assert validate_port(None, "winrm") == 5985
    assert validate_port(None, "postgresql") == 5432
    assert validate_port(2222, "ssh") == 2222
    assert validate_port(0, "sqlite") == 0
    for bad in (0, -1, 65536, 100000):
        with pytest.raises(ValidationError) as info:
            validate_port(bad, "ssh", "methods[0].port")
        assert info.value.field == "methods[0].port"


def test_name_rules() -> None:
    assert field_of(target(name="")) == "name"
    assert field_of(target(name="   ")) == "name"
    assert field_of(target(name="x" * 101)) == "name"
    assert validate_new_target(target(name="x" * 100)).name == "x" * 100


def test_defaults_and_primary() -> None:
    plan = validate_new_target(
        target(
            ssh("10.0.0.1"),
            NewMethod(type="winrm", host="10.0.0.1", credential=NewCredential("password", "a", "b")),
        )
    )
    assert [m.port for m in plan.methods] == [22, 5985]
    assert [m.is_primary for m in plan.methods] == [True, False]
    assert plan.environment == "development" and plan.status == "active"
    assert plan.methods[1].config["transport"] == "ntlm"
    plan = validate_new_target(target(ssh("10.0.0.1"), ssh("10.0.0.2", is_primary=True)))
    assert [m.is_primary for m in plan.methods] == [False, True]
    assert field_of(target(ssh("10.0.0.1", is_primary=True), ssh("10.0.0.2", is_primary=True))) == "methods"
    assert field_of(NewTarget(name="a", os_type="linux", methods=[])) == "methods"


def test_other_fields() -> None:
    assert field_of(target(environment="prod")) == "environment"
    assert field_of(target(os_type="")) == "osType"
    assert field_of(target(tags=[""])) == "tags"
    assert validate_new_target(target(tags=["Web", "web", " db "])).tags == ["Web", "db"]
    assert field_of(target(ssh(port=70000))) == "methods[0].port"
    assert field_of(target(ssh(host="bad host"))) == "methods[0].host"
    assert field_of(target(NewMethod(type="ftp", host="10.0.0.1"))) == "methods[0].type"


def test_ssh_needs_a_matching_credential() -> None:
    assert field_of(target(NewMethod(type="ssh", host="10.0.0.1"))) == "methods[0].credential"
    assert (
        field_of(target(ssh(credential=NewCredential("password", "root"))))
        == "methods[0].credential.password"
    )
    assert (
        field_of(target(ssh(credential=NewCredential("ssh_key", "root"))))
        == "methods[0].credential.privateKey"
    )
    assert (
        field_of(target(ssh(credential=NewCredential("api_key", "root", "k"))))
        == "methods[0].credential.type"
    )
    assert (
        field_of(target(ssh(credential=NewCredential("password", "", "pw"))))
        == "methods[0].credential.username"
    )
    # other methods do not need a credential
    plan = validate_new_target(target(NewMethod(type="snmp", host="10.0.0.9")))
    assert plan.methods[0].secret is None and plan.methods[0].port == 161


def test_private_keys_must_parse() -> None:
    ok = validate_new_target(target(ssh(credential=NewCredential("ssh_key", "root", private_key=KEY))))
    assert ok.methods[0].secret == {"password": None, "privateKey": KEY, "passphrase": None}
    bad = NewCredential("ssh_key", "root", private_key="-----BEGIN OPENSSH PRIVATE KEY-----\nnope\n")
    with pytest.raises(ValidationError) as info:
        validate_new_target(target(ssh(credential=bad)))
    assert info.value.field == "methods[0].credential.privateKey"
    assert "nope" not in info.value.message
    enc = NewCredential("ssh_key", "root", private_key=ENCRYPTED_KEY, passphrase="s3cret-phrase")
    assert validate_new_target(target(ssh(credential=enc))).methods[0].secret["passphrase"] == "s3cret-phrase"  # type: ignore[index]
    for phrase in (None, "wrong"):
        wrong = NewCredential("ssh_key", "root", private_key=ENCRYPTED_KEY, passphrase=phrase)
        assert field_of(target(ssh(credential=wrong))) == "methods[0].credential.passphrase"


def test_config_rejects_secrets_and_keeps_the_rest() -> None:
    plan = validate_new_target(
        target(ssh(config={"timeout": 5, "host": "ignored", "key_algorithm": "ed25519"}))
    )
    assert plan.methods[0].config == {"timeout": 5, "key_algorithm": "ed25519"}
    for config in ({"password": "x"}, {"nested": {"privateKey": "x"}}, {"community": "public"}):
        assert field_of(target(ssh(config=config))) == "methods[0].config"


def test_config_is_typed_per_method_with_legacy_defaults() -> None:
    for method_type, defaults in METHOD_CONFIG_DEFAULTS.items():
        host = "/var/db/x.sqlite" if method_type == "sqlite" else "10.0.0.7"
        method = ssh() if method_type == "ssh" else NewMethod(type=method_type, host=host)
        plan = validate_new_target(target(method))
        assert plan.methods[0].config == defaults
        assert plan.methods[0].port == METHOD_PORTS[method_type]
        assert set(defaults) <= set(METHOD_CONFIG_SPEC[method_type]), method_type
    assert METHOD_CONFIG_DEFAULTS["winrm"]["transport"] == "ntlm"
    assert METHOD_CONFIG_DEFAULTS["redis"]["database"] == 0
    # unknown keys (typos) and wrong types are refused, naming the key
    bad = [
        ("ssh", {"shell": "bash"}, "methods[0].config.shell"),
        ("ssh", {"timeout": "30"}, "methods[0].config.timeout"),
        ("ssh", {"timeout": 0}, "methods[0].config.timeout"),
        ("ssh", {"timeout": True}, "methods[0].config.timeout"),
        ("winrm", {"transport": "plaintext"}, "methods[0].config.transport"),
        ("winrm", {"server_cert_validation": "maybe"}, "methods[0].config.server_cert_validation"),
        ("snmp", {"version": 2}, "methods[0].config.version"),
        ("redis", {"database": 16}, "methods[0].config.database"),
        ("rest_api", {"verify_ssl": "yes"}, "methods[0].config.verify_ssl"),
        ("postgresql", {"ssl_mode": "sometimes"}, "methods[0].config.ssl_mode"),
        ("smtp", {"encryption": "tls"}, "methods[0].config.encryption"),
    ]
    for method_type, config, field in bad:
        method = NewMethod(type=method_type, host="10.0.0.7", config=config)
        if method_type == "ssh":
            method = ssh(config=config)
        assert field_of(target(method)) == field, (method_type, config)
    good = {
        "transport": "kerberos",
        "server_cert_validation": "ignore",
        "allow_unverified_tls": True,  # review L5: ignoring the certificate is an explicit choice
        "scheme": "https",
    }
    plan = validate_new_target(target(NewMethod(type="winrm", host="10.0.0.7", config=good)))
    assert plan.methods[0].config["transport"] == "kerberos"
    assert plan.methods[0].config["timeout"] == 30


def test_password_credential_only_stores_its_secret() -> None:
    cred = NewCredential("password", "root", password="pw", private_key="ignored", passphrase="ignored")
    assert validate_new_target(target(ssh(credential=cred))).methods[0].secret == {
        "password": "pw",
        "privateKey": None,
        "passphrase": None,
    }
    assert "pw" not in repr(cred)


def test_grant_signatures_and_expiry() -> None:
    keyring = KeyRing({"k1": os.urandom(32)}, "k1")
    signer = GrantSigner(keyring)
    signer._keys["abc123"] = os.urandom(32)
    signer._active = "abc123"

    async def scenario() -> None:
        now = time.time()
        grant = await signer.sign(
            {"tid": ["t1", "t2"], "iat": int(now), "exp": int(now) + 60, "pur": "x", "jti": "j"}
        )
        claims = await signer.verify(grant)
        assert claims.target_ids == ["t1", "t2"] and claims.purpose == "x"
        with pytest.raises(GrantRejected, match="expired"):
            await signer.verify(grant, at=now + 61)
        prefix, kid, body, mac = grant.split(".")
        forged_body = (
            base64.urlsafe_b64encode(b'{"tid":["t3"],"iat":1,"exp":9999999999}').decode().rstrip("=")
        )
        for forged in (
            f"{prefix}.{kid}.{forged_body}.{mac}",
            f"{prefix}.{kid}.{body}.{mac[:-2]}AA",
            "garbage",
        ):
            with pytest.raises(GrantRejected):
                await signer.verify(forged)

    asyncio.run(scenario())


def test_grant_method_chooses_as_best_method() -> None:
    """Review §3.2 point 8: the grant's method choice is `best_method`'s (primary, else the best
    priority among active methods), not a sort of its own; an asked-for method must be active."""
    from opsconductor_targets.service.reads import GrantMethod, GrantTarget, best_method, grant_method

    def m(mid: str, *, primary: bool = False, active: bool = True, priority: int = 1) -> GrantMethod:
        return GrantMethod(
            id=mid, type="ssh", host="h", port=22, is_primary=primary, is_active=active, priority=priority
        )

    cases = [
        [m("a", priority=3), m("b", primary=True, priority=5), m("c", priority=1)],
        [m("a", primary=True, active=False), m("b", priority=7), m("c", priority=2)],
        [m("a", active=False)],
    ]
    for methods in cases:
        target = GrantTarget(id="t", name="t", methods=methods)
        assert grant_method(target, None) is best_method(methods)
    assert grant_method(GrantTarget(id="t", name="t", methods=cases[0]), None) is cases[0][1]
    assert grant_method(GrantTarget(id="t", name="t", methods=cases[1]), None) is cases[1][2]
    assert grant_method(GrantTarget(id="t", name="t", methods=cases[2]), None) is None
    assert grant_method(GrantTarget(id="t", name="t", methods=cases[1]), "a") is None  # inactive
    assert grant_method(GrantTarget(id="t", name="t", methods=cases[1]), "b") is cases[1][1]
