"""Payloads as the console shows them: pretty JSON, UTF-8 text or a hex dump (pure).

Everything here returns plain text; templates escape it. JSON is pretty-printed in Python,
never by marking anything safe.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass

JSON = "json"
TEXT = "text"
HEX = "hex"
MODES = (JSON, TEXT, HEX)
MODE_LABELS = {JSON: "JSON", TEXT: "Text", HEX: "Hex"}
JSON_CONTENT_TYPES = ("application/json",)
_ALLOWED_CONTROLS = frozenset("\t\n\r")


def as_text(payload: bytes) -> str | None:
    """The payload as UTF-8 text, or None when it is not valid UTF-8."""
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return None


def pretty_json(payload: bytes) -> str | None:
    """Indented JSON, or None when the payload is not a JSON document."""
    text = as_text(payload)
    if text is None or not text.strip():
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return None
    return json.dumps(document, indent=2, ensure_ascii=False)


def is_readable(text: str) -> bool:
    """Text without control characters (other than tab and line ends) reads as text."""
    return not any(
        (ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0) and char not in _ALLOWED_CONTROLS
        for char in text
    )


def hex_dump(payload: bytes, width: int = 16) -> str:
    """Offset, hex bytes and the printable ASCII of each `width` bytes, one line each."""
    lines = []
    for offset in range(0, len(payload), width):
        chunk = payload[offset : offset + width]
        hex_part = " ".join(f"{byte:02x}" for byte in chunk)
        ascii_part = "".join(chr(byte) if 0x20 <= byte < 0x7F else "." for byte in chunk)
        lines.append(f"{offset:08x}  {hex_part:<{width * 3 - 1}}  {ascii_part}")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class PayloadView:
    """The payload shown one way (`mode`), with the ways it can be shown."""

    mode: str
    auto_mode: str
    available: tuple[str, ...]
    content: str
    size: int

    @property
    def choices(self) -> list[tuple[str, str, bool]]:
        """(mode, label, available) for the switcher."""
        return [(mode, MODE_LABELS[mode], mode in self.available) for mode in MODES]


def view_payload(payload: bytes, requested: str | None = None) -> PayloadView:
    """Choose JSON, text or hex automatically; `requested` overrides when it applies."""
    pretty = pretty_json(payload)
    text = as_text(payload)
    available = tuple(
        mode
        for mode, ok in ((JSON, pretty is not None), (TEXT, text is not None), (HEX, True))
        if ok
    )
    if pretty is not None:
        auto = JSON
    elif text is not None and is_readable(text):
        auto = TEXT
    else:
        auto = HEX
    mode = requested if requested in available else auto
    content = {JSON: pretty, TEXT: text}.get(mode) or hex_dump(payload)
    return PayloadView(
        mode=mode, auto_mode=auto, available=available, content=content, size=len(payload)
    )


def display_text(payload: bytes) -> str:
    """What a diff compares: the text itself, or the hex dump of a binary payload."""
    text = as_text(payload)
    return text if text is not None else hex_dump(payload)


def looks_like_json(text: str, content_type: str) -> bool:
    return content_type.strip().lower() in JSON_CONTENT_TYPES or text.lstrip()[:1] in ("{", "[")


@dataclass(frozen=True, slots=True)
class DiffLine:
    kind: str  # "add", "remove", "hunk", "context", "file"
    text: str


def unified_diff(stored: str, mine: str) -> list[DiffLine]:
    """The stored payload against the user's version, line by line."""
    lines = []
    for line in difflib.unified_diff(
        stored.splitlines(), mine.splitlines(), "stored now", "your version", lineterm="", n=3
    ):
        if line.startswith(("---", "+++")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "remove"
        else:
            kind = "context"
        lines.append(DiffLine(kind, line))
    return lines
