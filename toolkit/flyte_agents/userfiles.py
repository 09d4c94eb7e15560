"""The one reader of the user's files (project file, values files, Chart.yaml, Dockerfiles, kubeconfigs, offline
propeller configs, services files): every way a file can be unusable is one UserError naming the file and the fix.

* missing, a directory, unreadable: said as such (not "does not exist" for a directory);
* larger than MAX_BYTES: refused before it is read (no user file of ours is anywhere near it);
* not UTF-8: a byte-order mark or NUL bytes mean UTF-16 (or a binary file), else the first bad byte and its line;
  a UTF-8 byte-order mark is accepted and dropped, as kubectl and helm do;
* YAML: yamlio's strict loader (duplicate keys and alias bombs refused), its errors with the line.
"""
from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

from . import yamlio
from .errors import UserError

MAX_BYTES = 4 << 20
_UTF16_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def read_bytes(path: str | Path, what: str, error: type[UserError] = UserError) -> bytes:
    """The file's bytes; `what` names it in errors ("values file", "--from", ...)."""
    file = Path(path).expanduser()
    label = f"{what} {path}"
    try:
        if file.is_dir():
            raise error(f"{label} is a directory: pass the file itself")
        size = file.stat().st_size
        if size > MAX_BYTES:
            raise error(f"{label} is {size / (1 << 20):.1f} MiB, more than the {MAX_BYTES >> 20} MiB a file of "
                        "ours may be: check that this is the file you meant")
        with open(file, "rb") as f:
            return f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise error(f"{label} does not exist: check the path") from None
    except OSError as err:
        raise error(f"{label} cannot be read ({err.strerror or type(err).__name__}): check its permissions") \
            from None


def read_text(path: str | Path, what: str, error: type[UserError] = UserError) -> str:
    return decode(read_bytes(path, what, error), f"{what} {path}", error)


def decode(data: bytes, label: str, error: type[UserError] = UserError) -> str:
    if data.startswith(_UTF16_BOMS):
        raise error(f"{label} is UTF-16 (or UTF-32) text: save it as UTF-8")
    if b"\x00" in data:
        raise error(f"{label} has NUL bytes (UTF-16 text without a byte-order mark, or not a text file): save it "
                    "as UTF-8 text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise error(f"{label} is not UTF-8 (byte 0x{data[err.start]:02x} at line {line}): save it as UTF-8") \
            from None


def load_yaml(path: str | Path, what: str, error: type[UserError] = UserError) -> Any:
    """One YAML document (None when the file is empty)."""
    text = read_text(path, what, error)
    try:
        return yamlio.load(text)
    except yamlio.Error as err:
        raise error(yaml_problem(f"{what} {path}", err)) from None


def yaml_problem(label: str, err: yamlio.Error) -> str:
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"{label} is not valid YAML{yamlio.at_line(err)}: {problem}: fix it"
