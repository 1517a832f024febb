"""A step's output on its way out: capped at a byte limit, decoded as UTF-8 across chunks.

Shared by the SSH steps (pool/ssh_steps.py) and WinRM (winrm/)."""

from __future__ import annotations

import codecs

from opsconductor_ray.protocol import truncation_marker


class OutputCap:
    """At most `limit` bytes of a step's output (stdout and stderr together)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.truncated = False

    def take(self, chunk: bytes) -> tuple[bytes, bool]:
        """The part of `chunk` that fits, and whether the limit was crossed just now."""
        if self.truncated:
            return b"", False
        room = self.limit - self.used
        if len(chunk) <= room:
            self.used += len(chunk)
            return chunk, False
        self.used = self.limit
        self.truncated = True
        return chunk[:room], True

    def take_text(self, text: str) -> list[str]:
        kept, overflowed = self.take(text.encode())
        pieces = [kept.decode("utf-8", "ignore")] if kept else []
        if overflowed:
            pieces.append(truncation_marker(self.limit))
        return pieces


class Decoder:
    """UTF-8 across chunk boundaries; undecodable bytes become U+FFFD instead of failing."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def __call__(self, chunk: bytes, final: bool = False) -> str:
        return self._decoder.decode(chunk, final)
