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

Linear time (review C1): the text is user input (any ``jobs:read`` holder may call
``validateJob``), so every built-in rule runs in time linear in the text, and fast:

* Segment rules look at the text with every separator replaced by newlines (same length), so a
  segment is a line; they never consume a newline (``_H`` instead of ``\\s``).
* "A command, then later in its segment ..." is a :class:`FirstThen`: the first command of a
  line (found by a search that starts with a literal, so the regex engine skips ahead fast) and
  a tail matched once from there; the next search starts at the next line. A later command of
  the same line sees a part of what the first one saw, so it cannot match when the first does
  not. (The old ``cmd(?=(?:.*\\s)?x)`` rescanned the rest of the line at every command.)
* Word-start checks come after the first character (``r(?<![^\\s"'(]r)m``), so every search
  starts with a literal; repetitions that could be split several ways are possessive.
* A plain :class:`Regex` looks at the text in pieces of :data:`WINDOW` characters, so one call
  never holds the GIL (and the service's event loop) for long.

:data:`SCAN_MAX_CHARS` and a deadline bound one request (:class:`ScanLimitError`); the service
runs the scan in a thread. Site rules (settings) are the operator's own Python expressions over
the whole text: keep them free of nested or overlapping repetitions, the deadline is their only
bound.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# Where a text comes from in a step: code (command, script body and arguments, executable
# uploads), a path that is read (download source) or a path that is written (upload destination).
CODE = "code"
READ_PATH = "read_path"
WRITE_PATH = "write_path"

MATCH_MAX = 200
# Per request (all texts of all steps): more is refused, not scanned. A job sent through the
# router is at most ~1 MB; substituting parameters can grow it.
SCAN_MAX_CHARS = 8 * 1024 * 1024
# One regex call of a plain rule looks at one piece of a text at most this long (see _windows);
# a match longer than OVERLAP across two pieces of one giant line can be missed.
WINDOW = 64 * 1024
OVERLAP = 4 * 1024


class ScanLimitError(Exception):
    """The scan was not done (too much text, or past its deadline); the service answers ValidationFailed."""


@dataclass
class _Subject:
    """One text as a rule sees it, with its lower-cased twin (same length) made on first use."""

    text: str
    deadline: float | None
    _folded: str | None = field(default=None, repr=False)

    @property
    def folded(self) -> str:
        if self._folded is None:
            text = self.text
            self._folded = text.lower() if text.isascii() else text.translate(_FOLD).lower()
        return self._folded

    def check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise ScanLimitError("the dangerous-command check took too long")


# Characters that IGNORECASE matches to an ASCII letter but str.lower() does not map onto one
# (U+0130 is also the only character whose lower() is longer than one character).
_FOLD = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})


def _windows(text: str) -> list[tuple[int, int]]:
    """Pieces of at most ``WINDOW`` characters: cut after a newline near the end of a piece,
    else (inside a giant line) overlapping the next piece by ``OVERLAP``."""
    if len(text) <= WINDOW:
        return [(0, len(text))]
    pieces: list[tuple[int, int]] = []
    start = 0
    while start < len(text):
        end = min(start + WINDOW, len(text))
        following = end
        if end < len(text):
            newline = text.rfind("\n", start + WINDOW // 2, end)
            if newline >= 0:
                end = following = newline + 1
            else:
                following = end - OVERLAP
        pieces.append((start, end))
        start = following
    return pieces


@dataclass(frozen=True)
class Regex:
    """A plain search. ``fold``: the pattern is lower case and runs on the lower-cased text."""

    pattern: re.Pattern[str]
    fold: bool = False

    def find(self, subject: _Subject) -> tuple[int, int] | None:
        hay = subject.folded if self.fold else subject.text
        for start, end in _windows(hay):
            subject.check_deadline()
            found = self.pattern.search(hay if end - start == len(hay) else hay[start:end])
            if found:
                return start + found.start(), start + found.end()
        return None


@dataclass(frozen=True)
class FirstThen:
    """The first ``command`` of each scope (a line, or a piece between any of ``scope_end``),
    then ``tail`` matched right after it, within the scope unless ``cross``."""

    command: re.Pattern[str]
    tail: re.Pattern[str]
    fold: bool = False
    scope_end: str = "\n"
    cross: bool = False

    def find(self, subject: _Subject) -> tuple[int, int] | None:
        hay = subject.folded if self.fold else subject.text
        size = len(hay)
        next_end = dict.fromkeys(self.scope_end, -1)  # next occurrence of each scope end
        pos = 0
        for count in range(size + 1):  # each round moves past a scope end
            if count % 256 == 0:
                subject.check_deadline()
            found = self.command.search(hay, pos)
            if found is None:
                return None
            end_of_scope = size
            for char, at in next_end.items():
                if at < found.end():
                    at = hay.find(char, found.end())
                    next_end[char] = at = size if at < 0 else at
                end_of_scope = min(end_of_scope, at)
            tail = self.tail.match(hay, found.end(), size if self.cross else end_of_scope)
            if tail:
                return found.start(), tail.end()
            pos = end_of_scope + 1
        return None


Branch = Regex | FirstThen


@dataclass(frozen=True)
class Rule:
    id: str
    reason: str
    branches: tuple[Branch, ...]
    whole: bool = False  # match the whole text instead of each segment
    kinds: frozenset[str] = frozenset({CODE})

    def find(self, subject: _Subject) -> tuple[int, int] | None:
        """The leftmost-found hit of any branch (``(start, end)`` in the subject)."""
        hits = [hit for branch in self.branches if (hit := branch.find(subject)) is not None]
        return min(hits) if hits else None


@dataclass(frozen=True)
class Finding:
    step_name: str
    rule: str
    reason: str
    match: str

    def to_json(self) -> dict[str, str]:
        return {"stepName": self.step_name, "rule": self.rule, "reason": self.reason, "match": self.match}


# ---- pattern pieces ----------------------------------------------------------------------------

_H = r"[^\S\n]"  # whitespace within a line: segment rules never cross a newline (= a separator)
_WORD_END = r"(?!\S)"  # before whitespace or the end of the segment
_START_CHARS = r"[^\s\"'(]"  # a word starts after none of these: the start, whitespace, quote, (


def _at_start(*words: str) -> str:
    """Any of ``words`` where a word starts (the segment start, after whitespace, a quote or a
    parenthesis). The check follows the first character, so the search starts with a literal."""
    return (
        "(?:"
        + "|".join(re.escape(w[0]) + f"(?<!{_START_CHARS}{re.escape(w[0])})" + w[1:] for w in words)
        + ")"
    )


def _at_boundary(*words: str) -> str:
    r"""Any of ``words`` (each starting with a word character) after a ``\b``; literal first."""
    return "(?:" + "|".join(re.escape(w[0]) + rf"(?<!\w{re.escape(w[0])})" + w[1:] for w in words) + ")"


def _later(*words: str) -> str:
    """Lookaheads: each of ``words`` starts some later word of the line (matched at a word start
    in time linear in that word)."""
    return "".join(r"(?=[^\n]*?(?<!\S)(?:" + w + "))" for w in words)


def _re(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(pattern, flags)


def _rule(
    id: str, reason: str, *branches: Branch, whole: bool = False, kinds: Iterable[str] = (CODE,)
) -> Rule:
    return Rule(id, reason, tuple(branches), whole, frozenset(kinds))


# A command word may follow these (sudo rm, exec reboot, ... then halt), from the segment start.
_PREFIX = (
    r"(?m:^)" + _H + r"*+(?:(?:sudo|doas|exec|nohup|then|do|else|command|time|\{|\()"
    r"(?:" + _H + r"++-\S++)*+" + _H + r"++)*"
)
_END = r"[\"']?(?=\s|$|[)\"'])"
_UNIX_SYSTEM_DIRS = r"(?:bin|boot|dev|etc|home|lib|lib32|lib64|opt|proc|root|sbin|srv|sys|usr|var)"
_UNIX_DANGER_PATH = (
    r"[\"']?(?:/|/\*|~|~/|~/\*|\$HOME/?\*?|\$\{HOME\}/?\*?|/" + _UNIX_SYSTEM_DIRS + r"/?\*?)" + _END
)
# lower case: the Windows rules run on the lower-cased text
_WIN_DANGER_PATH = (
    r"[\"']?(?:[a-z]:[\\/]?\*?|[a-z]:[\\/](?:windows|users|program files(?: \(x86\))?|programdata)"
    r"[\\/]?\*?|\$env:(?:systemroot|systemdrive|windir|userprofile|programfiles)[\\/]?\*?)" + _END
)


def _short_flag(letters: str) -> str:
    """A word ``-xyz`` of ASCII letters, one of them in ``letters`` (``-rf``, ``-fR``)."""
    return r"-(?=[a-zA-Z]*?[" + letters + r"])[a-zA-Z]*+" + _WORD_END


BUILTIN_RULES: tuple[Rule, ...] = (
    # -- destructive filesystem ---------------------------------------------------------------
    _rule(
        "fs.rm-recursive-root",
        "recursively deletes the root, a system directory or the home directory",
        FirstThen(
            _re(_at_start("rm", "/bin/rm", "/usrrm", "/usr/bin/rm") + _H),
            _re(_later(r"(?:" + _short_flag("rR") + r"|--recursive" + _WORD_END + ")", _UNIX_DANGER_PATH)),
        ),
    ),
    _rule("fs.no-preserve-root", "disables rm's protection of /", Regex(_re(r"--no-preserve-root\b"))),
    _rule(
        "fs.recursive-permissions-root",
        "recursively changes owner or permissions of / or a system directory",
        FirstThen(
            _re(_at_start("chmod", "chown", "chgrp") + _H),
            _re(
                _later(
                    r"(?:" + _short_flag("R") + r"|--recursive" + _WORD_END + ")",
                    r"[\"']?(?:/|/\*|/" + _UNIX_SYSTEM_DIRS + r"/?\*?)" + _END,
                )
            ),
        ),
    ),
    _rule(
        "fs.find-delete-root",
        "deletes files found from /",
        FirstThen(
            _re(_at_start("find") + _H + r"++[\"']?/[\"']?" + _H),
            _re(r"(?=[^\n]*?(?:-delete\b|-exec" + _H + r"++rm\b))"),
        ),
    ),
    _rule(
        "fs.truncate-system-file",
        "overwrites a system account or boot file",
        Regex(_re(r">(?<!>>)" + _H + r"*+[\"']?/etc/(?:passwd|shadow|group|gshadow|sudoers|fstab)\b")),
    ),
    # -- disks ----------------------------------------------------------------------------------
    _rule(
        "disk.mkfs",
        "creates a filesystem (erases the device)",
        Regex(_re(_at_start("mk") + r"(?:fs(?:\.\w++)?|e2fs|swap)" + _WORD_END)),
    ),
    _rule(
        "disk.dd-device",
        "dd writes to a device",
        FirstThen(
            _re(_at_boundary("dd") + r"\b"),
            _re(r"(?=[^\n]*?\bof=[\"']?/dev/(?!null\b|zero\b|stdout\b|stderr\b|tty\b)\w)"),
        ),
    ),
    _rule(
        "disk.redirect-device",
        "redirects output onto a disk device",
        Regex(
            _re(
                r">"
                + _H
                + r"*+[\"']?/dev/(?:sd[a-z]|hd[a-z]|vd[a-z]|xvd[a-z]|nvme\d|mmcblk\d|disk\d|dm-\d|mapper/)"
            )
        ),
    ),
    _rule(
        "disk.wipe",
        "wipes or repartitions a disk",
        Regex(_re(_at_start("wipefs", "blkdiscard") + _WORD_END)),
        FirstThen(_re(_at_start("sgdisk") + _H), _re(_later(r"(?:--zap-all|-Z|--clear|-o)" + _WORD_END))),
        FirstThen(_re(_at_start("shred") + _H), _re(_later(r"/dev/"))),
        FirstThen(_re(_at_start("parted") + _H), _re(_later(r"(?:mklabel|rm)" + _WORD_END))),
        FirstThen(_re(_at_boundary("hdparm") + r"\b"), _re(r"(?=[^\n]*?--security-erase)")),
    ),
    # -- power ----------------------------------------------------------------------------------
    _rule(
        "power.shutdown",
        "shuts down or reboots the machine",
        Regex(
            _re(
                _PREFIX
                + r"(?:(?:/usr)?(?:/s?bin/)?(?:shutdown|reboot|halt|poweroff)(?:\.exe)?|(?:tel)?init"
                + _H
                + r"++[06])"
                + _WORD_END
            )
        ),
        FirstThen(
            _re(_at_boundary("systemctl") + _H), _re(_later(r"(?:reboot|poweroff|halt|kexec)" + _WORD_END))
        ),
        Regex(_re(r"/proc/sysrq-trigger")),
    ),
    _rule(
        "power.stop-computer",
        "shuts down or restarts Windows",
        Regex(_re(_at_boundary("stop-computer", "restart-computer") + r"\b"), fold=True),
    ),
    # -- fork bomb ------------------------------------------------------------------------------
    _rule(
        "process.fork-bomb",
        "a fork bomb exhausts the process table",
        # The name is a whole word (a search from inside a long word was O(n²)).
        Regex(_re(r"(?<![\w:])([A-Za-z_:][\w:]*+)\s*+\(\s*+\)\s*+\{\s*+\1\s*+\|\s*+\1\s*+&?\s*+\}")),
        whole=True,
    ),
    # -- credentials ----------------------------------------------------------------------------
    _rule(
        "cred.shadow",
        "reads or writes the password hash database",
        Regex(_re(r"/etc/(?:g?shadow|master\.passwd|security/opasswd)\b")),
        kinds=(CODE, READ_PATH, WRITE_PATH),
    ),
    _rule(
        "cred.ssh-private-key",
        "reads an SSH private key",
        Regex(_re(r"\.ssh/(?:id_[\w-]+|identity)\b(?!\.pub)|/etc/ssh/ssh_host_\w+_key\b(?!\.pub)")),
        kinds=(CODE, READ_PATH),
    ),
    _rule(
        "cred.credential-file",
        "reads a stored cloud or git credential file",
        Regex(_re(r"\.aws/credentials\b|\.git-credentials\b|\.docker/config\.json\b")),
        kinds=(CODE, READ_PATH),
    ),
    _rule(
        "cred.secret-over-network",
        "sends environment secrets or credential files over the network",
        Regex(
            _re(
                _at_boundary("env", "printenv", r"export\s++-p")
                + r"\s*+\|\s*+(?:curl|wget|nc|ncat|netcat|socat)\b"
            )
        ),
        FirstThen(
            _re(_at_boundary("curl", "wget", "nc", "ncat") + r"\b"),
            # $NAME where NAME (a run of [A-Z_]) contains one of the words
            _re(
                r"[^\n]*?\$\{?(?=[A-Z_]*?(?:SECRET|TOKEN|PASSWORD|PASSWD|API_KEY|PRIVATE_KEY))[A-Z_]*+(?!\w)"
            ),
        ),
        FirstThen(
            _re(_at_boundary("curl", "wget") + r"\b"),
            _re(
                r"[^\n]*?(?:-d|--data(?:-binary|-raw|-urlencode)?|-F|--form|-T|--upload-file|--post-file)"
                r"[=\s]++[\"']?(?:\w++=)?@?(?:/etc/|~/\.|\$HOME/\.|/root/)"
            ),
            cross=True,
        ),
        whole=True,
    ),
    _rule(
        "net.pipe-to-shell",
        "runs code downloaded from the network",
        FirstThen(
            _re(_at_boundary("curl", "wget", "fetch") + r"\b"),
            _re(
                r"[^\n|]*+\|\s*+(?:sudo\s++(?:-[^\s|]++\s++)*+)?(?:(?:ba|z|k|da|fi)?sh|python3?|perl|ruby)\b"
            ),
            scope_end="\n|",
            cross=True,
        ),
        Regex(_re(_at_boundary("bash", "sh") + r"\s++<\(\s*+(?:curl|wget)\b")),
        FirstThen(
            _re(_at_boundary("iwr", "irm", "invoke-webrequest", "invoke-restmethod") + r"\b"),
            _re(r"[^\n|]*+\|\s*+(?:iex|invoke-expression)\b"),
            fold=True,
            scope_end="\n|",
            cross=True,
        ),
        FirstThen(
            _re(_at_boundary("iex", "invoke-expression") + r"\b"),
            _re(r"[^\n]*?(?:downloadstring|invoke-webrequest|invoke-restmethod|\biwr\b|\birm\b)"),
            fold=True,
        ),
        whole=True,
    ),
    _rule(
        "cred.windows-dump",
        "dumps Windows credentials (SAM, LSASS, NTDS)",
        Regex(
            _re(
                _at_boundary("mimikatz", "sekurlsa", "lsadump")
                + r"\b|reg(?:\.exe)?"
                + _H
                + r"++save"
                + _H
                + r"++[\"']?hk(?:lm|ey_local_machine)\\(?:sam|security|system)\b|"
                + _at_boundary(r"ntds\.dit")
                + r"\b"
            ),
            fold=True,
        ),
        FirstThen(_re(r"procdump"), _re(r"(?=[^\n]*?lsass)"), fold=True),
        FirstThen(_re(r"comsvcs(?:\.dll)?"), _re(r"(?=[^\n]*?minidump)"), fold=True),
    ),
    # -- Windows filesystem and disks -----------------------------------------------------------
    _rule(
        "win.remove-recursive-root",
        "recursively deletes a drive root or a Windows system directory",
        FirstThen(
            _re(_at_start("remove-item", "ri", "rm", "rmdir", "rd", "del", "erase") + _H),
            # the path may be the value of -Path/-LiteralPath: that is a later word too
            _re(_later(r"(?:-r(?:ecurse)?|/s)(?:" + _WORD_END + "|:)", _WIN_DANGER_PATH)),
            fold=True,
        ),
    ),
    _rule(
        "win.format-volume",
        "formats or clears a disk or volume",
        Regex(
            _re(
                _at_boundary(
                    "format-volume", "clear-disk", "initialize-disk", "remove-partition", "reset-physicaldisk"
                )
                + r"\b|"
                + _at_start("format")
                + r"(?:\.com)?"
                + _H
                + r"++[a-z]:|"
                + _at_boundary("diskpart")
                + r"\b|"
                + _at_boundary("cipher")
                + r"(?:\.exe)?"
                + _H
                + r"++/w\b"
            ),
            fold=True,
        ),
    ),
    # -- file transfers ----------------------------------------------------------------------------
    _rule(
        "transfer.system-path",
        "uploads over a system account, boot, device or authorized_keys file",
        Regex(
            _re(
                r"^(?:/etc/(?:passwd|group|sudoers(?:\.d/.*)?|pam\.d/.*)|/boot/.*|/dev/.*|"
                r"(?:/root|/home/[^/]+)/\.ssh/authorized_keys2?|[A-Za-z]:[\\/]Windows[\\/]System32(?:[\\/].*)?)$",
                re.IGNORECASE,
            )
        ),
        kinds=(WRITE_PATH,),
    ),
)

RULE_IDS = tuple(r.id for r in BUILTIN_RULES)

_CONTINUATION = re.compile(r"\\\r?\n")
# Command separators (; && || | & newline $( ` and the closing parenthesis) become newlines,
# keeping the length: ``$(`` first, then every single-character separator.
_SEPARATOR_CHARS = str.maketrans(dict.fromkeys(";|&`)", "\n"))


def _segments_as_lines(text: str) -> str:
    return text.replace("$(", "\n\n").translate(_SEPARATOR_CHARS)


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
                branches=(Regex(re.compile(pattern)),),
                whole=True,
                kinds=frozenset({CODE}),
            )
        )
    return tuple(rules)


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MATCH_MAX else text[: MATCH_MAX - 1] + "…"


def _segment_at(lines: str, at: int) -> str:
    start = lines.rfind("\n", 0, at) + 1
    end = lines.find("\n", at)
    return lines[start : end if end >= 0 else len(lines)]


def scan_text(
    text: str, rules: Iterable[Rule], kind: str = CODE, *, deadline: float | None = None
) -> list[tuple[Rule, str]]:
    """Rules that match ``text`` (one hit per rule) with the matching segment or match.

    ``deadline`` (a ``time.monotonic()`` value) is checked as the scan goes: past it,
    :class:`ScanLimitError`.
    """
    if not text:
        return []
    joined = _CONTINUATION.sub(" ", text)
    whole = _Subject(joined, deadline)
    lines = _Subject(_segments_as_lines(joined), deadline) if kind == CODE else whole
    hits: list[tuple[Rule, str]] = []
    for rule in rules:
        if kind not in rule.kinds:
            continue
        whole.check_deadline()
        segments = not rule.whole and kind == CODE
        subject = lines if segments else whole
        found = rule.find(subject)
        if found is None:
            continue
        start, end = found
        hit = _segment_at(subject.text, start) if segments else (joined[start:end] or joined)
        hits.append((rule, _clip(hit)))
    return hits


def scan_step(
    step_name: str,
    texts: Iterable[tuple[str, str]],
    rules: tuple[Rule, ...],
    *,
    deadline: float | None = None,
) -> list[Finding]:
    """Findings for one step from its ``(kind, text)`` pieces; one finding per rule per step."""
    seen: set[str] = set()
    findings: list[Finding] = []
    for kind, text in texts:
        for rule, match in scan_text(text, rules, kind, deadline=deadline):
            if rule.id in seen:
                continue
            seen.add(rule.id)
            findings.append(Finding(step_name=step_name, rule=rule.id, reason=rule.reason, match=match))
    return findings
