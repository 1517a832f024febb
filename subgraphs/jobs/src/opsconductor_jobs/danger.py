"""Dangerous-command detection: pattern rules over the rendered text of a job's steps.

Pure functions. ``jobPlan`` and ``validateJob`` report findings; the executions service refuses a
run with findings unless the caller holds ``jobs:execute-dangerous`` and confirms.

Why patterns and not a shell parser: steps are sh, bash, PowerShell, cmd and Python, often
mixed. The rules catch the common accidents (a wrong variable turning ``rm -rf $DIR/`` into
``rm -rf /``, a pasted ``mkfs``, a stray ``reboot``) and the obvious credential grabs. They are a
guard against mistakes, not against an adversary: obfuscated commands (``r''m``, ``$IFS``,
base64) pass; the real control is who may run jobs at all.

Most rules look at one *segment* at a time: the text split on command separators
(``; && || | & newline $( `` and backquote), so "``rm``" and "``-r``" must be in the same
command. Rules that need a pipe (``curl | sh``, the fork bomb) look at the whole text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# Where a text comes from in a step: code (command, script body and arguments, executable
# uploads), a path that is read (download source) or a path that is written (upload destination).
CODE = "code"
READ_PATH = "read_path"
WRITE_PATH = "write_path"

MATCH_MAX = 200


@dataclass(frozen=True)
class Rule:
    id: str
    reason: str
    pattern: re.Pattern[str]
    whole: bool = False  # match the whole text instead of each segment
    kinds: frozenset[str] = frozenset({CODE})


@dataclass(frozen=True)
class Finding:
    step_name: str
    rule: str
    reason: str
    match: str

    def to_json(self) -> dict[str, str]:
        return {"stepName": self.step_name, "rule": self.rule, "reason": self.reason, "match": self.match}


def _rule(
    id: str, reason: str, pattern: str, *, flags: int = 0, whole: bool = False, kinds: Iterable[str] = (CODE,)
) -> Rule:
    return Rule(id, reason, re.compile(pattern, flags), whole, frozenset(kinds))


# A command word may follow these (sudo rm, exec reboot, ... then halt).
_PREFIX = r"^\s*(?:(?:sudo|doas|exec|nohup|then|do|else|command|time|\{|\()(?:\s+-\S+)*\s+)*"
_START = r"(?:^|[\s\"'(])"  # a word starts here
_END = r"[\"']?(?=\s|$|[)\"'])"
_UNIX_SYSTEM_DIRS = r"(?:bin|boot|dev|etc|home|lib|lib32|lib64|opt|proc|root|sbin|srv|sys|usr|var)"
_UNIX_DANGER_PATH = (
    r"[\"']?(?:/|/\*|~|~/|~/\*|\$HOME/?\*?|\$\{HOME\}/?\*?|/" + _UNIX_SYSTEM_DIRS + r"/?\*?)" + _END
)
_WIN_DANGER_PATH = (
    r"[\"']?(?:[A-Za-z]:[\\/]?\*?|[A-Za-z]:[\\/](?:Windows|Users|Program Files(?: \(x86\))?|ProgramData)"
    r"[\\/]?\*?|\$env:(?:SystemRoot|SystemDrive|windir|USERPROFILE|ProgramFiles)[\\/]?\*?)" + _END
)
_ANYWHERE = r"(?=(?:.*\s)?"  # lookahead: some later word of the segment is ...

BUILTIN_RULES: tuple[Rule, ...] = (
    # -- destructive filesystem ---------------------------------------------------------------
    _rule(
        "fs.rm-recursive-root",
        "recursively deletes the root, a system directory or the home directory",
        _START
        + r"(?:/usr)?(?:/bin/)?rm\s"
        + _ANYWHERE
        + r"(?:-[a-zA-Z]*[rR][a-zA-Z]*|--recursive)(?:\s|$))"
        + _ANYWHERE
        + _UNIX_DANGER_PATH
        + r")",
    ),
    _rule("fs.no-preserve-root", "disables rm's protection of /", r"--no-preserve-root\b"),
    _rule(
        "fs.recursive-permissions-root",
        "recursively changes owner or permissions of / or a system directory",
        _START
        + r"(?:chmod|chown|chgrp)\s"
        + _ANYWHERE
        + r"(?:-[a-zA-Z]*R[a-zA-Z]*|--recursive)(?:\s|$))"
        + _ANYWHERE
        + r"[\"']?(?:/|/\*|/"
        + _UNIX_SYSTEM_DIRS
        + r"/?\*?)"
        + _END
        + r")",
    ),
    _rule(
        "fs.find-delete-root",
        "deletes files found from /",
        _START + r"find\s+[\"']?/[\"']?\s(?=.*(?:-delete\b|-exec\s+rm\b))",
    ),
    _rule(
        "fs.truncate-system-file",
        "overwrites a system account or boot file",
        r"(?<!>)>\s*[\"']?/etc/(?:passwd|shadow|group|gshadow|sudoers|fstab)\b",
    ),
    # -- disks ----------------------------------------------------------------------------------
    _rule(
        "disk.mkfs",
        "creates a filesystem (erases the device)",
        _START + r"(?:mkfs(?:\.\w+)?|mke2fs|mkswap)(?:\s|$)",
    ),
    _rule(
        "disk.dd-device",
        "dd writes to a device",
        r"\bdd\b(?=.*\bof=[\"']?/dev/(?!null\b|zero\b|stdout\b|stderr\b|tty\b)\w)",
    ),
    _rule(
        "disk.redirect-device",
        "redirects output onto a disk device",
        r">\s*[\"']?/dev/(?:sd[a-z]|hd[a-z]|vd[a-z]|xvd[a-z]|nvme\d|mmcblk\d|disk\d|dm-\d|mapper/)",
    ),
    _rule(
        "disk.wipe",
        "wipes or repartitions a disk",
        _START
        + r"(?:wipefs|blkdiscard)(?:\s|$)|"
        + _START
        + r"sgdisk\s"
        + _ANYWHERE
        + r"(?:--zap-all|-Z|--clear|-o)(?:\s|$))|"
        + _START
        + r"shred\s"
        + _ANYWHERE
        + r"/dev/)|"
        + _START
        + r"parted\s"
        + _ANYWHERE
        + r"(?:mklabel|rm)(?:\s|$))|"
        + r"\bhdparm\b.*--security-erase",
    ),
    # -- power ----------------------------------------------------------------------------------
    _rule(
        "power.shutdown",
        "shuts down or reboots the machine",
        _PREFIX
        + r"(?:/usr)?(?:/s?bin/)?(?:shutdown|reboot|halt|poweroff)(?:\.exe)?(?:\s|$)|"
        + _PREFIX
        + r"(?:tel)?init\s+[06](?:\s|$)|"
        + r"\bsystemctl\s"
        + _ANYWHERE
        + r"(?:reboot|poweroff|halt|kexec)(?:\s|$))|"
        + r"/proc/sysrq-trigger",
    ),
    _rule(
        "power.stop-computer",
        "shuts down or restarts Windows",
        r"\b(?:Stop-Computer|Restart-Computer)\b",
        flags=re.IGNORECASE,
    ),
    # -- fork bomb ------------------------------------------------------------------------------
    _rule(
        "process.fork-bomb",
        "a fork bomb exhausts the process table",
        r"([A-Za-z_:][\w:]*)\s*\(\s*\)\s*\{\s*\1\s*\|\s*\1\s*&?\s*\}",
        whole=True,
    ),
    # -- credentials ----------------------------------------------------------------------------
    _rule(
        "cred.shadow",
        "reads or writes the password hash database",
        r"/etc/(?:g?shadow|master\.passwd|security/opasswd)\b",
        kinds=(CODE, READ_PATH, WRITE_PATH),
    ),
    _rule(
        "cred.ssh-private-key",
        "reads an SSH private key",
        r"\.ssh/(?:id_[\w-]+|identity)\b(?!\.pub)|/etc/ssh/ssh_host_\w+_key\b(?!\.pub)",
        kinds=(CODE, READ_PATH),
    ),
    _rule(
        "cred.credential-file",
        "reads a stored cloud or git credential file",
        r"\.aws/credentials\b|\.git-credentials\b|\.docker/config\.json\b",
        kinds=(CODE, READ_PATH),
    ),
    _rule(
        "cred.secret-over-network",
        "sends environment secrets or credential files over the network",
        r"\b(?:env|printenv|export\s+-p)\s*\|\s*(?:curl|wget|nc|ncat|netcat|socat)\b|"
        r"\b(?:curl|wget|nc|ncat)\b[^\n]*\$\{?[A-Z_]*(?:SECRET|TOKEN|PASSWORD|PASSWD|API_KEY|PRIVATE_KEY)[A-Z_]*\b|"
        r"\b(?:curl|wget)\b[^\n]*(?:-d|--data(?:-binary|-raw|-urlencode)?|-F|--form|-T|--upload-file|--post-file)"
        r"[=\s]+[\"']?(?:\w+=)?@?(?:/etc/|~/\.|\$HOME/\.|/root/)",
        whole=True,
    ),
    _rule(
        "net.pipe-to-shell",
        "runs code downloaded from the network",
        r"\b(?:curl|wget|fetch)\b[^\n|]*\|\s*(?:sudo\s+(?:-\S+\s+)*)?(?:(?:ba|z|k|da|fi)?sh|python3?|perl|ruby)\b|"
        r"\b(?:ba)?sh\s+<\(\s*(?:curl|wget)\b|"
        r"(?i:\b(?:iwr|irm|Invoke-WebRequest|Invoke-RestMethod)\b[^\n|]*\|\s*(?:iex|Invoke-Expression)\b)|"
        r"(?i:\b(?:iex|Invoke-Expression)\b[^\n]*(?:DownloadString|Invoke-WebRequest|Invoke-RestMethod|\biwr\b|\birm\b))",
        whole=True,
    ),
    _rule(
        "cred.windows-dump",
        "dumps Windows credentials (SAM, LSASS, NTDS)",
        r"\b(?:mimikatz|sekurlsa|lsadump)\b|reg(?:\.exe)?\s+save\s+[\"']?HK(?:LM|EY_LOCAL_MACHINE)\\(?:SAM|SECURITY|SYSTEM)\b|"
        r"\bntds\.dit\b|procdump[^\n]*lsass|comsvcs(?:\.dll)?[^\n]*MiniDump",
        flags=re.IGNORECASE,
    ),
    # -- Windows filesystem and disks -----------------------------------------------------------
    _rule(
        "win.remove-recursive-root",
        "recursively deletes a drive root or a Windows system directory",
        _START
        + r"(?:Remove-Item|ri|rm|rmdir|rd|del|erase)\s"
        + _ANYWHERE
        + r"(?:-r(?:ecurse)?|/s)(?:\s|$|:))"
        + _ANYWHERE
        + r"(?:-(?:Literal)?Path\s+)?"
        + _WIN_DANGER_PATH
        + r")",
        flags=re.IGNORECASE,
    ),
    _rule(
        "win.format-volume",
        "formats or clears a disk or volume",
        r"\b(?:Format-Volume|Clear-Disk|Initialize-Disk|Remove-Partition|Reset-PhysicalDisk)\b|"
        + _START
        + r"format(?:\.com)?\s+[A-Za-z]:|\bdiskpart\b|\bcipher(?:\.exe)?\s+/w\b",
        flags=re.IGNORECASE,
    ),
    # -- file transfers ----------------------------------------------------------------------------
    _rule(
        "transfer.system-path",
        "uploads over a system account, boot, device or authorized_keys file",
        r"^(?:/etc/(?:passwd|group|sudoers(?:\.d/.*)?|pam\.d/.*)|/boot/.*|/dev/.*|"
        r"(?:/root|/home/[^/]+)/\.ssh/authorized_keys2?|[A-Za-z]:[\\/]Windows[\\/]System32(?:[\\/].*)?)$",
        flags=re.IGNORECASE,
        kinds=(WRITE_PATH,),
    ),
)

RULE_IDS = tuple(r.id for r in BUILTIN_RULES)

_SEPARATORS = re.compile(r"&&|\|\||[;|&\n`]|\$\(|\)")
_CONTINUATION = re.compile(r"\\\r?\n")


def build_rules(disabled: Iterable[str] = (), extra: Mapping[str, str] | None = None) -> tuple[Rule, ...]:
    """The built-in rules minus ``disabled`` ids, plus site rules (id → regex, whole-text, code only).

    An invalid site regex raises ``re.error`` (settings validation surfaces it at start-up).
    """
    off = set(disabled)
    rules = [r for r in BUILTIN_RULES if r.id not in off]
    for rule_id, pattern in (extra or {}).items():
        if rule_id in off:
            continue
        rules.append(
            Rule(
                id=rule_id,
                reason=f"matches the site rule {rule_id}",
                pattern=re.compile(pattern),
                whole=True,
                kinds=frozenset({CODE}),
            )
        )
    return tuple(rules)


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MATCH_MAX else text[: MATCH_MAX - 1] + "…"


def scan_text(text: str, rules: Iterable[Rule], kind: str = CODE) -> list[tuple[Rule, str]]:
    """Rules that match ``text`` (one hit per rule) with the matching segment or match."""
    if not text:
        return []
    joined = _CONTINUATION.sub(" ", text)
    segments = [s for s in _SEPARATORS.split(joined) if s.strip()] if kind == CODE else [joined]
    hits: list[tuple[Rule, str]] = []
    for rule in rules:
        if kind not in rule.kinds:
            continue
        if rule.whole or kind != CODE:
            found = rule.pattern.search(joined)
            if found:
                hits.append((rule, _clip(found.group(0) or joined)))
            continue
        for segment in segments:
            if rule.pattern.search(segment):
                hits.append((rule, _clip(segment)))
                break
    return hits


def scan_step(step_name: str, texts: Iterable[tuple[str, str]], rules: tuple[Rule, ...]) -> list[Finding]:
    """Findings for one step from its ``(kind, text)`` pieces; one finding per rule per step."""
    seen: set[str] = set()
    findings: list[Finding] = []
    for kind, text in texts:
        for rule, match in scan_text(text, rules, kind):
            if rule.id in seen:
                continue
            seen.add(rule.id)
            findings.append(Finding(step_name=step_name, rule=rule.id, reason=rule.reason, match=match))
    return findings
