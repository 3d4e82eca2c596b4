"""File names made safe to show, to put in a CSV cell, and to use as a zip entry or a folder name on any file system."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

# Unicode categories that can move the cursor, forge a line or reorder text in a terminal or page:
# controls (ESC, newline), format characters (bidi overrides), line/paragraph separators, surrogates.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet treats a cell starting so as a formula
ZIP_UNSAFE = '\\:*?"<>|'  # characters Windows tools read as separators or refuse in a file name
# names Windows keeps for devices, in any case and with any extension (con.txt is the console too)
WINDOWS_DEVICES = frozenset(
    {"con", "prn", "aux", "nul", *(f"{port}{i}" for port in ("com", "lpt") for i in (*"0123456789", "¹", "²", "³"))}
)
NAME_MAX_BYTES = 255  # the longest file or folder name ext4, XFS, Btrfs, APFS and tmpfs take, in bytes


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
        parts.append("_" if clean in (".", "..") else not_a_device(clean))
    return "/".join(parts)


def not_a_device(name: str) -> str:
    """``name``, with ``_`` after its stem when Windows would take it for a device: ``CON`` -> ``CON_``,
    ``con.txt`` -> ``con_.txt``, ``com1`` -> ``com1_``; any other name unchanged."""
    stem, dot, rest = name.partition(".")
    if stem.rstrip(" ").casefold() in WINDOWS_DEVICES:
        return f"{stem}_{dot}{rest}"
    return name


def name_too_long(name: str, what: str = "A group name", todo: str = "Choose a shorter name.") -> str | None:
    """Why ``name`` cannot become one file or folder name (over NAME_MAX_BYTES bytes in UTF-8), in words,
    ending with ``todo``; None when it fits.

    An export makes a folder of each group's name, so a name is refused when it is given, not when
    the export fails half-way: 80 emoji are 80 characters but 320 bytes.
    """
    size = len(name.encode("utf-8", "surrogatepass"))
    if size <= NAME_MAX_BYTES:
        return None
    return (
        f"{what} becomes a folder name when exported, and a folder name may be at most {NAME_MAX_BYTES} bytes; "
        f"this one is {size} bytes ({len(name)} characters: an emoji takes 4 bytes, an accented letter 2). {todo}"
    )


def folder_names(names: Sequence[str], taken: Iterable[str] = ()) -> list[str]:
    """A folder name for each name: one safe path part (no ``/``, ``\\`` or other character a Windows tool
    refuses, no leading dot, no trailing dot or space, no Windows device name: ``CON`` is ``CON_``),
    distinct without regard to case and from ``taken``; names made alike get ``~2``, ``~3``, within
    NAME_MAX_BYTES bytes."""
    used = {name.casefold() for name in taken}
    folders = []
    for name in names:
        clean = not_a_device(zip_entry(name.replace("/", "_")).lstrip(". ").rstrip(". ") or "group")
        candidate, n = clean, 1
        while candidate.casefold() in used:
            n += 1
            candidate = f"{cut_to_bytes(clean, NAME_MAX_BYTES - len(f'~{n}'))}~{n}"  # a name at the limit fits
        used.add(candidate.casefold())
        folders.append(candidate)
    return folders


def cut_to_bytes(name: str, most: int) -> str:
    """``name`` cut to at most ``most`` bytes of UTF-8, never inside a character."""
    return name.encode("utf-8", "surrogatepass")[:most].decode("utf-8", "ignore")


def unique_name(name: str, used: set[str]) -> str:
    """``name``, or ``stem~2.suffix``, ``stem~3.suffix``... when it is in ``used``; the result is added to it."""
    stem, dot, suffix = name.rpartition(".")
    if not dot or "/" in suffix:
        stem, suffix = name, ""
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}~{n}.{suffix}" if suffix else f"{stem}~{n}"
    used.add(candidate)
    return candidate
