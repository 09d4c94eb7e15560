"""What Docker would send as the build context, its content digest, and the image tag made from it.

No Docker and no network here: this module reads the context directory (and asks git about it) and nothing else,
so the "skip unchanged builds" decision can be explained and unit-tested.

`.dockerignore` follows the Docker CLI exactly (moby/patternmatcher + ignorefile, the CLI's context walk, and
the daemon removing a self-excluded `.dockerignore`/Dockerfile), because a tag computed from a different file set
than the one the daemon sees is the "wrong cache hit" users complain about most.

The tag is a digest of every input that decides what ends up in the image: the files the builder can see (path,
kind, executable bit, bytes or link target), the Dockerfile's bytes, build args, target stage and platform.
File modes are sent normalised to 0644/0755 (what git records), so two checkouts with different umasks agree.
The base image is identified only by its reference (Dockerfile/build args): pin it by digest to have a new base
image produce a new tag.
Files staged into the context only for the build's benefit (the extra CA bundle) are sent but not digested.
Never `latest`: a tag is 16 hex digits, optionally prefixed by the git short SHA and `-dirty`.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import re
import stat
import subprocess
import tarfile
import urllib.parse
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO, Iterable

from .. import userfiles
from ..errors import UserError

DOCKERIGNORE = ".dockerignore"
DIGEST_SCHEME = "flyte-agents/image-digest/v1"  # bump when the digest inputs change, so old tags never collide
TAG_DIGEST_CHARS = 16

# ------------------------------------------------------------------------------------------------ .dockerignore


def parse_dockerignore(text: str) -> list[str]:
    """The patterns of a .dockerignore, normalised as the Docker CLI's ignorefile.ReadAll does."""
    patterns = []
    for number, line in enumerate(text.splitlines()):
        if number == 0:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):  # only a '#' in the first column starts a comment
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


def go_clean(path: str) -> str:
    """Go's filepath.Clean on a slash path (posixpath.normpath keeps a leading '//', Go does not)."""
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


class BadPattern(ValueError):
    """A .dockerignore pattern Docker rejects."""


# Characters Go's regexp treats specially but filepath.Match does not (patternmatcher's shouldEscape).
_REGEX_ESCAPED = set(".+()|{}$")


@dataclass(frozen=True)
class Pattern:
    """One compiled .dockerignore pattern, matching like moby/patternmatcher's Pattern.match."""

    text: str  # cleaned, without the leading '!'
    exclusion: bool
    kind: str  # "exact", "prefix", "suffix" or "regexp"
    regex: re.Pattern | None = None

    @classmethod
    def compile(cls, raw: str) -> "Pattern":
        text = go_clean(raw.strip())
        exclusion = text.startswith("!")
        if exclusion:
            if len(text) == 1:
                raise BadPattern('illegal exclusion pattern: "!"')
            text = text[1:]
        check_glob_syntax(text)
        kind, source = _translate(text)
        try:
            regex = re.compile(source) if kind == "regexp" else None
        except re.error as err:
            raise BadPattern(f"{text!r}: {err}") from None
        return cls(text, exclusion, kind, regex)

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        return self.regex.match(path) is not None


def _translate(text: str) -> tuple[str, str]:
    """patternmatcher's compile(): the match kind and, for "regexp", the regular expression."""
    source, kind, i, n = "^", "exact", 0, len(text)
    first = True
    while i < n:
        ch = text[i]
        i += 1
        if ch == "*" and i < n and text[i] == "*":
            i += 1
            if i < n and text[i] == "/":  # '**/' is treated as '**'
                i += 1
            if i == n:  # trailing '**' matches everything below, like .gitignore
                if kind == "exact":
                    kind = "prefix"
                else:
                    source, kind = source + ".*", "regexp"
            else:
                source, kind = source + "(.*/)?", "regexp"
            if first:
                kind = "suffix"
        elif ch == "*":
            source, kind = source + "[^/]*", "regexp"
        elif ch == "?":
            source, kind = source + "[^/]", "regexp"
        elif ch in _REGEX_ESCAPED:
            source += "\\" + ch
        elif ch == "\\" and i < n:  # check_glob_syntax already rejected a trailing backslash
            source, kind = source + "\\" + text[i], "regexp"
            i += 1
        elif ch in "[]":
            source, kind = source + ch, "regexp"
        else:
            source += ch
        first = False
    return kind, source + "$"


def check_glob_syntax(pattern: str) -> None:
    """Raise BadPattern where Go's filepath.Match would return ErrBadPattern (Docker validates patterns so)."""
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise BadPattern(f"{pattern!r}: trailing backslash")
            i += 2
        elif ch == "[":
            i = _check_class(pattern, i + 1)
        else:
            i += 1


def _check_class(pattern: str, i: int) -> int:
    """Validate a character class whose '[' was just consumed; return the index after its ']'."""
    n = len(pattern)
    if i < n and pattern[i] == "^":
        i += 1
    ranges = 0
    while True:
        if i < n and pattern[i] == "]" and ranges:
            return i + 1
        i = _class_char(pattern, i)
        if pattern[i] == "-":
            i = _class_char(pattern, i + 1)
        ranges += 1


def _class_char(pattern: str, i: int) -> int:
    """Go's getEsc: one (possibly escaped) class character that must be followed by more pattern."""
    n = len(pattern)
    if i >= n or pattern[i] in "-]":
        raise BadPattern(f"{pattern!r}: malformed character class")
    if pattern[i] == "\\":
        i += 1
        if i >= n:
            raise BadPattern(f"{pattern!r}: malformed character class")
    if i + 1 >= n:
        raise BadPattern(f"{pattern!r}: unterminated character class")
    return i + 1


class IgnoreMatcher:
    """A .dockerignore's patterns; the last matching pattern decides, and a pattern matching a parent counts."""

    def __init__(self, patterns: Iterable[str]):
        self.patterns = [Pattern.compile(p) for p in patterns if p.strip()]
        self.exclusions = any(p.exclusion for p in self.patterns)

    def excluded(self, path: str) -> bool:
        """moby/patternmatcher MatchesOrParentMatches for a slash path relative to the context."""
        parents = path.split("/")[:-1]
        prefixes = ["/".join(parents[: i + 1]) for i in range(len(parents))]
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:  # nothing this pattern could change
                continue
            if pattern.match(path) or any(pattern.match(prefix) for prefix in prefixes):
                matched = not pattern.exclusion
        return matched

    def may_reinclude_below(self, directory: str) -> bool:
        """Whether the CLI's walk descends into an excluded directory: only for a '!' pattern starting with it."""
        return any(p.exclusion and (p.text + "/").startswith(directory + "/") for p in self.patterns)


# ------------------------------------------------------------------------------------------------ the context


@dataclass(frozen=True)
class ContextEntry:
    """One tar member of the context sent to the daemon."""

    path: str  # slash path inside the context
    kind: str  # "file", "dir" or "symlink"
    mode: int  # permission bits
    digest: str = ""  # sha256 of a file's bytes; a symlink's target
    source: Path | None = None  # where a file's bytes are read from
    data: bytes | None = None  # bytes generated in memory instead of `source`
    hashed: bool = True  # part of the content digest (False: sent, but cannot change the image)


@dataclass(frozen=True)
class BuildContext:
    root: Path
    entries: tuple[ContextEntry, ...] = field(default=())
    dockerfile: str | None = None  # the Dockerfile's name inside the sent context, once with_dockerfile placed it

    def with_file(self, path: str, source: Path, hashed: bool = True, mode: int = 0o644) -> "BuildContext":
        """A copy with `source` placed at `path` (replacing whatever the context had there)."""
        entry = ContextEntry(path, "file", mode, file_sha256(source), source=source, hashed=hashed)
        kept = tuple(e for e in self.entries if e.path != path)
        return replace(self, entries=_with_parents(kept + (entry,), path))

    def with_dockerfile(self, data: bytes) -> "BuildContext":
        """A copy carrying the Dockerfile to build under a hidden name that its .dockerignore removes again.

        The daemon reads the Dockerfile, then deletes what .dockerignore names before any COPY runs (the Docker
        CLI sends a Dockerfile from stdin or from outside the context the same way). So the user's files, their
        own Dockerfile included, reach COPY exactly as `docker build` sends them: same layers, same cache.
        """
        name = f".dockerfile.{_sha256(data)[:20]}"
        old = next((e for e in self.entries if e.path == DOCKERIGNORE), None)
        ignore = (_entry_bytes(old) if old else DOCKERIGNORE.encode()) + f"\n{name}\n".encode()
        generated = ContextEntry(DOCKERIGNORE, "file", 0o644, _sha256(ignore), data=ignore,
                                 hashed=old.hashed if old else False)
        hidden = ContextEntry(name, "file", 0o644, _sha256(data), data=data, hashed=False)
        kept = tuple(e for e in self.entries if e.path != DOCKERIGNORE)
        return replace(self, entries=kept + (generated, hidden), dockerfile=name)

    def paths(self) -> list[str]:
        return sorted(e.path for e in self.entries)


def _entry_bytes(entry: ContextEntry) -> bytes:
    return entry.data if entry.data is not None else entry.source.read_bytes()


def _with_parents(entries: tuple[ContextEntry, ...], path: str) -> tuple[ContextEntry, ...]:
    """Add directory entries for a staged file's parents so the tar extracts with sane permissions."""
    present = {e.path for e in entries}
    parents = []
    parts = path.split("/")[:-1]
    for i in range(len(parts)):
        parent = "/".join(parts[: i + 1])
        if parent not in present:
            # Not digested: the staged files' own paths already say these directories exist.
            parents.append(ContextEntry(parent, "dir", 0o755, hashed=False))
    return tuple(parents) + entries


def check_context(context: Path) -> None:
    if not context.is_dir():
        what = "is a file, not a directory" if context.exists() else "does not exist"
        raise UserError(f"build context {context} {what}: pass the directory with the Dockerfile")


def read_dockerignore(root: Path) -> str:
    """The context's .dockerignore ('' when it has none)."""
    path = root / DOCKERIGNORE
    return userfiles.read_text(path, DOCKERIGNORE) if path.exists() else ""


def scan_context(root: Path, dockerfile: Path) -> BuildContext:
    """The entries `docker build -f DOCKERFILE ROOT` would send, flagged with whether they can change the image."""
    root = root.resolve()
    check_context(root)
    dockerfile = dockerfile.resolve()
    if not dockerfile.is_file():
        raise UserError(f"Dockerfile {dockerfile} does not exist: pass --file or add a Dockerfile to {root}")
    ignore_path = root / DOCKERIGNORE
    patterns = parse_dockerignore(read_dockerignore(root))
    try:
        original = IgnoreMatcher(patterns)
    except BadPattern as err:
        raise UserError(f"{ignore_path}: invalid pattern {err}: fix or remove that line") from None

    inside = dockerfile.is_relative_to(root)
    relative = dockerfile.relative_to(root).as_posix() if inside else None
    # The CLI always sends .dockerignore and the Dockerfile (TrimBuildFilesFromExcludes) ...
    keep = [p for p in (DOCKERIGNORE, relative) if p and original.excluded(p)]
    sent = IgnoreMatcher(patterns + ["!" + p for p in keep])
    entries = [_hashed_unless_daemon_drops(e, original, relative) for e in walk_context(root, sent)]
    return BuildContext(root, tuple(entries))


def _hashed_unless_daemon_drops(entry: ContextEntry, original: IgnoreMatcher, dockerfile: str | None) -> ContextEntry:
    # ... and the daemon then deletes an excluded .dockerignore/Dockerfile before any COPY can see it.
    if entry.path in (DOCKERIGNORE, dockerfile) and original.excluded(entry.path):
        return replace(entry, hashed=False)
    return entry


def walk_context(root: Path, matcher: IgnoreMatcher) -> list[ContextEntry]:
    """The Docker CLI's context walk (archive.TarWithOptions): excluded directories are pruned unless a '!'
    pattern names something below them, in which case they are entered but not sent themselves."""
    entries: list[ContextEntry] = []

    def visit(directory: Path, relative: str) -> None:
        try:
            children = sorted(os.scandir(directory), key=lambda d: d.name)
        except OSError as err:
            raise UserError(f"cannot read {directory} in the build context: {err.strerror}; fix its permissions")
        for child in children:
            path = f"{relative}/{child.name}" if relative else child.name
            is_dir = child.is_dir(follow_symlinks=False)
            if matcher.excluded(path):
                if is_dir and matcher.exclusions and matcher.may_reinclude_below(path):
                    visit(Path(child.path), path)
                continue
            entry = _entry(Path(child.path), path)
            if entry is not None:
                entries.append(entry)
            if is_dir:
                visit(Path(child.path), path)

    visit(root, "")
    return entries


def _entry(full: Path, path: str) -> ContextEntry | None:
    info = full.lstat()
    if stat.S_ISDIR(info.st_mode):
        return ContextEntry(path, "dir", 0o755)
    if stat.S_ISLNK(info.st_mode):
        return ContextEntry(path, "symlink", 0o777, os.readlink(full))
    if stat.S_ISREG(info.st_mode):
        # Modes are normalised the way git stores them, so a checkout's umask changes neither tag nor image.
        mode = 0o755 if info.st_mode & 0o111 else 0o644
        try:
            return ContextEntry(path, "file", mode, file_sha256(full), source=full)
        except OSError as err:
            raise UserError(f"cannot read {full} in the build context: {err.strerror}; fix its permissions "
                            f"or list it in .dockerignore") from None
    return None  # sockets, FIFOs, devices: nothing a Dockerfile can COPY


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_tar(context: BuildContext, out: BinaryIO) -> None:
    """Write the context as the uncompressed tar the build API expects (owner root, as the Docker CLI sends)."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in context.entries:
            info = tarfile.TarInfo(entry.path)
            info.mode, info.uid, info.gid = entry.mode, 0, 0
            if entry.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif entry.kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, entry.digest
                tar.addfile(info)
            elif entry.data is not None:
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
            else:
                with open(entry.source, "rb") as f:
                    info.size = os.fstat(f.fileno()).st_size
                    info.mtime = int(os.fstat(f.fileno()).st_mtime)
                    tar.addfile(info, f)


# ------------------------------------------------------------------------------------------------ labels

_ESCAPE_DIRECTIVE = re.compile(r"^#\s*escape\s*=\s*(\S)\s*$", re.IGNORECASE)
_FROM = re.compile(r"^FROM\s.*?(?:\s+AS\s+(\S+))?\s*$", re.IGNORECASE)


def add_labels(dockerfile: str, labels: dict[str, str], target: str | None = None) -> str:
    """The Dockerfile with one LABEL instruction closing the stage that becomes the image.

    One instruction because the legacy builder turns each entry of the build API's `labels` into its own step,
    and every step is a container commit that costs seconds on copy-based storage drivers.
    """
    escape = _escape_char(dockerfile)
    lines = dockerfile.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    pairs = " ".join(f'"{_quoted(k, escape)}"="{_quoted(v, escape)}"' for k, v in sorted(labels.items()))
    at = _stage_end(lines, escape, target)
    return "".join(lines[:at] + [f"LABEL {pairs}\n"] + lines[at:])


def _escape_char(dockerfile: str) -> str:
    for line in dockerfile.splitlines():
        match = _ESCAPE_DIRECTIVE.match(line.strip())
        if match:
            return match.group(1)
        if not line.strip().startswith("#"):
            break  # parser directives only precede everything else
    return "\\"


def _quoted(value: str, escape: str) -> str:
    return "".join(escape + ch if ch in ('"', "$", escape) else ch for ch in value)


def _stage_end(lines: list[str], escape: str, target: str | None) -> int:
    """Index of the line after the target stage (the FROM following it), or the end of the file."""
    in_target, continuing = False, False
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # comments and blank lines neither start nor end an instruction
        if not continuing:
            match = _FROM.match(stripped)
            if match and in_target:
                return index
            if match and target:
                in_target = (match.group(1) or "").lower() == target.lower()
        continuing = stripped.endswith(escape)
    return len(lines)


# ------------------------------------------------------------------------------------------------ digest and tag


def content_digest(context: BuildContext, dockerfile_bytes: bytes, build_args: dict[str, str],
                   target: str | None = None, platform: str | None = None) -> str:
    """sha256 over everything that decides the image: hashed context entries, Dockerfile, args, target, platform."""
    digest = hashlib.sha256(DIGEST_SCHEME.encode() + b"\0")
    for entry in sorted((e for e in context.entries if e.hashed), key=lambda e: e.path):
        digest.update(f"{entry.kind}\0{entry.path}\0{entry.mode:o}\0{entry.digest}\0".encode())
    params = {"dockerfile": _sha256(dockerfile_bytes), "build_args": dict(sorted(build_args.items())),
              "target": target or "", "platform": platform or ""}
    digest.update(json.dumps(params, sort_keys=True).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class GitState:
    sha: str  # full commit SHA of HEAD
    dirty: bool  # uncommitted or untracked changes under the build inputs


def compose_tag(digest: str, git: GitState | None = None) -> str:
    """`<digest16>`, or `<sha7>-<digest16>` / `<sha7>-dirty-<digest16>` with a git prefix."""
    short = digest[:TAG_DIGEST_CHARS]
    if git is None:
        return short
    return f"{git.sha[:7]}{'-dirty' if git.dirty else ''}-{short}"


def git_state(paths: list[Path]) -> GitState | None:
    """HEAD and dirtiness of the git checkout holding paths[0], looking only at `paths`; None outside git."""
    where = paths[0] if paths[0].is_dir() else paths[0].parent
    try:
        sha = _git(where, "rev-parse", "--verify", "HEAD")
        changes = _git(where, "status", "--porcelain", "--untracked-files=normal", "--",
                       *[str(p.resolve()) for p in paths])
    except (OSError, subprocess.CalledProcessError):
        return None
    return GitState(sha, bool(changes))


def git_origin(path: Path) -> str | None:
    """The `origin` remote's URL (for the OCI source label), without any credentials embedded in it."""
    try:
        url = _git(path if path.is_dir() else path.parent, "remote", "get-url", "origin")
    except (OSError, subprocess.CalledProcessError):
        return None
    parts = urllib.parse.urlsplit(url)
    if parts.scheme and (parts.username or parts.password):
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        url = urllib.parse.urlunsplit(parts._replace(netloc=host))
    return url or None


def _git(where: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(where), *args], check=True, capture_output=True, text=True,
                          timeout=30).stdout.strip()


def repository_name(directory: Path) -> str:
    """A repository name from a context directory's name (`Agent Image` -> `agent-image`)."""
    name = re.sub(r"[^a-z0-9._-]+", "-", directory.resolve().name.lower())
    name = re.sub(r"[._-]*([._-])[._-]*", r"\1", name).strip("._-")
    return name or "agent"


def dockerfile_arg_default(dockerfile_text: str, name: str) -> str | None:
    """The default of `ARG NAME=value` in a Dockerfile (for labels), or None."""
    match = re.search(rf"(?im)^\s*ARG\s+{re.escape(name)}=(\"[^\"]*\"|'[^']*'|\S+)", dockerfile_text)
    return match.group(1).strip("\"'") if match else None
