"""File names from the user's folder made safe to show, to put in a CSV cell and to use as a zip entry."""

from __future__ import annotations

import unicodedata

# Unicode categories that can move the cursor, forge a line or reorder text in a terminal or page:
# controls (ESC, newline), format characters (bidi overrides), line/paragraph separators, surrogates.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet treats a cell starting so as a formula
ZIP_UNSAFE = '\\:*?"<>|'  # characters Windows tools read as separators or refuse in a file name


def shown(name: str) -> str:
    """``name`` with every invisible or line-breaking character escaped, for a terminal or a page.

    A byte that is not valid UTF-8 (held by Python as a lone surrogate) is shown as ``\\xNN``;
    control and format characters as ``\\xNN``, ``\\uNNNN``. Printable text is unchanged.
    """
    if name.isprintable():
        return name
    out = []
    for char in name:
        code = ord(char)
        if unicodedata.category(char) not in HIDDEN_CATEGORIES:
            out.append(char)
        elif 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for an undecodable byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}")
    return "".join(out)


def is_valid_utf8(name: str) -> bool:
    """False when a name read from the disk held bytes that are not UTF-8."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def inert_cell(text: str) -> str:
    """A CSV cell a spreadsheet shows as text: a leading formula character gets a ``'`` before it."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def inert_path(path: str) -> str:
    """A relative path for a CSV cell that no spreadsheet runs and every program still opens.

    ``=1+1.png`` becomes ``./=1+1.png``: the same file, but the cell no longer starts with ``=``.
    """
    return f"./{path}" if path.startswith(FORMULA_STARTS) else path


def zip_entry(path: str) -> str:
    """A relative path as a zip entry name: ``/``-separated, no backslash or other character that a
    Windows tool would read as a folder or refuse, no empty, ``.`` or ``..`` part."""
    parts = []
    for part in path.split("/"):
        clean = "".join("_" if char in ZIP_UNSAFE or not char.isprintable() else char for char in part)
        clean = clean.rstrip(" .") or "_"  # Windows drops trailing dots and spaces
        parts.append("_" if clean in (".", "..") else clean)
    return "/".join(parts)
