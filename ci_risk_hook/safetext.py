"""Untrusted text made safe to print: file names, commit subjects, branch names, error messages.

A repository, an imported CSV or a model file can put anything into these
strings, including terminal escape sequences that clear the screen or move
the cursor to overwrite the verdict with a fake "low risk" line. Every such
string is passed through `clean` where it is printed for a person; JSON
output is left to json.dumps, which escapes control characters losslessly.

Stdlib only and import-free: this is on the path of every push.
"""

from __future__ import annotations

from typing import Any

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

# Not control characters, but they reorder or break what a terminal shows:
# line and paragraph separators, and the bidirectional overrides, embeddings,
# isolates and marks of "Trojan Source" (CVE-2021-42574).
_LAYOUT = frozenset("\u061c\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

# Cells a spreadsheet would run as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# C0 and C1 control characters, and lone surrogates (bytes that were not UTF-8, kept by surrogateescape).
_CONTROL_RANGES = ((0x00, 0x1F), (0x7F, 0x9F), (0xD800, 0xDFFF))


def _unsafe(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _CONTROL_RANGES) or char in _LAYOUT


def javascript_class() -> str:
    """The characters `clean` escapes, as a JavaScript regular expression class (for the `u` flag).

    The dashboard's page escapes what it shows with it, as `clean` would: a branch or author holding
    U+202E must not reorder the table it is shown in. With `u`, the surrogate range matches only a
    lone surrogate, never half of a pair.
    """
    ranges = [f"\\u{{{low:x}}}-\\u{{{high:x}}}" for low, high in _CONTROL_RANGES]
    return "[" + "".join(ranges + [f"\\u{{{ord(c):x}}}" for c in sorted(_LAYOUT)]) + "]"


def _escape(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, kept by surrogateescape: show the byte
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def clean(text: str) -> str:
    """`text` with control and layout characters shown as escapes (`\\x1b`, `\\n`, `\\u202e`): one inert line.

    Everything else, backslashes and non-ASCII letters included, is kept as it is.
    """
    if text.isprintable():  # the common case; everything _unsafe flags is non-printable
        return text
    return "".join(_escape(c) if _unsafe(c) else c for c in text)


def one_line(exc: BaseException) -> str:
    """An exception as one safe line: its first line (drivers append hints and details), else its type."""
    text = str(exc).strip()
    return clean(text.split("\n", 1)[0].rstrip("\r")) if text else type(exc).__name__


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: formula-like strings get a leading `'`; escapes as in `clean`."""
    if not isinstance(value, str):
        return value
    if value.startswith(_FORMULA_START):
        value = "'" + value
    return clean(value)


# Characters Markdown (GitHub's flavour) gives a meaning: escaped so a file name cannot add a heading,
# a link, a table cell or HTML to a job summary. `&` first, so the entities written here stay intact.
# `@` is followed by a zero-width space: GitHub finds mentions in the rendered text (where `\@` and `&#64;`
# are a plain `@` again), so only a character between `@` and the name stops `@org/team` pinging people.
_MARKDOWN = str.maketrans({c: "\\" + c for c in "\\`*_{}[]()#+-.!|~>"} | {"<": "&lt;", "&": "&amp;", "@": "@\u200b"})


def markdown(text: str) -> str:
    """Untrusted text as inert Markdown on one line: escapes as in `clean`, then Markdown's punctuation and `@`."""
    return clean(text).translate(_MARKDOWN)


def workflow_data(text: str) -> str:
    """The message of a GitHub workflow command (`::warning::MESSAGE`): %, CR and LF percent-encoded.

    As the runner's own toolkit does (escapeData); the message may hold `::`, since the runner splits
    the line at the first `::` after the command's properties, which cannot hold one (see below).
    """
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def workflow_property(text: str) -> str:
    """A property of a workflow command (`title=...`): also `:` and `,`, so it cannot end the properties."""
    return workflow_data(text).replace(":", "%3A").replace(",", "%2C")
