"""Content digests, tags and .dockerignore semantics (flyte_agents.image_tags). No Docker needed.

Expected .dockerignore results follow the Docker documentation and moby/patternmatcher's rules; the integration
test tests/integration/test_build_dockerignore.py checks the same walk against the real `docker build`.
"""
from __future__ import annotations

import io
import os
import socket
import subprocess
import tarfile
from pathlib import Path

import pytest

from flyte_agents.errors import UserError
from flyte_agents.imageref import normalize_ref, split_registry, validate_registry, validate_repository
from flyte_agents.workflows import image_tags as t

# ------------------------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize("text, expected", [
    ("", []),
    ("# comment\n\n   \n*.pyc\n", ["*.pyc"]),
    (" # not a comment: only column 0 starts one", ["# not a comment: only column 0 starts one"]),
    ("  docs/  \n", ["docs"]),                       # trimmed and cleaned
    ("/docs\n", ["docs"]),                           # leading slash means the context root
    ("./a//b/../c\n", ["a/c"]),
    ("!  keep.txt\n", ["!keep.txt"]),                # spaces after '!' are dropped
    ("!/keep\n", ["!keep"]),
    ("\ufeff*.log\n", ["*.log"]),                    # UTF-8 BOM on the first line
    ("a\r\nb\r\n", ["a", "b"]),                      # CRLF files
    ("!\n", ["!"]),                                  # kept here, rejected when compiled
    ("/\n", ["/"]),
])
def test_parse_dockerignore(text, expected):
    assert t.parse_dockerignore(text) == expected


@pytest.mark.parametrize("path, expected", [
    ("//a", "/a"), ("a/../../b", "../b"), ("", "."), ("a/./b/", "a/b"), ("/..", "/"),
])
def test_go_clean(path, expected):
    assert t.go_clean(path) == expected


# ------------------------------------------------------------------------------------------------ matching

MATCH_CASES = [
    # patterns, path, excluded?
    (["*"], "a", True),
    (["*"], "a/b", True),                            # the parent 'a' matches
    (["*.go"], "main.go", True),
    (["*.go"], "pkg/main.go", False),                # '*' does not cross '/'
    (["**/*.go"], "main.go", True),
    (["**/*.go"], "a/b/main.go", True),
    (["docs"], "docs", True),
    (["docs"], "docs/a/b.md", True),
    (["docs"], "src/docs", False),                   # anchored at the context root, unlike .gitignore
    (["*/docs"], "src/docs", True),
    (["*/docs"], "a/src/docs", False),
    (["**/docs"], "docs", True),
    (["**/docs"], "a/b/docs/x", True),
    (["**/docs"], "adocs", False),
    (["**"], "anything/at/all", True),
    (["a**"], "abc/d", True),                        # trailing '**' is a prefix match
    (["a**"], "b", False),
    (["a/**"], "a/b", True),
    (["a/**"], "ab", False),
    (["a/**/b"], "a/b", True),                       # '**' also matches no directory
    (["a/**/b"], "a/x/y/b", True),
    (["a/**/b"], "a/xb", False),
    (["a/*"], "a/b/c", True),
    (["*/*.txt"], "b.txt", False),
    (["*/*.txt"], "a/b.txt", True),
    (["*/*.txt"], "a/b/c.txt", False),
    (["?.txt"], "a.txt", True),
    (["?.txt"], "ab.txt", False),
    (["?"], "/", False),
    (["[ab].txt"], "b.txt", True),
    (["[ab].txt"], "c.txt", False),
    (["[^a].txt"], "b.txt", True),
    (["[^a].txt"], "a.txt", False),
    (["[a-c]x"], "bx", True),
    (["\\*.txt"], "*.txt", True),                    # escaped star is literal
    (["\\*.txt"], "a.txt", False),
    (["a.b"], "axb", False),                         # '.' is literal
    (["a.*"], "a.b", True),
    (["a.*"], "axb", False),
    (["a+b"], "a+b", True),
    (["a+b*"], "a+bc", True),
    (["a+b*"], "aab", False),
    (["(x)|{y}$"], "(x)|{y}$", True),
    (["foo/../bar"], "bar", True),
    (["*.md", "!README.md"], "a.md", True),
    (["*.md", "!README.md"], "README.md", False),
    (["*.md", "!README.md", "README*"], "README.md", True),   # the last matching pattern wins
    (["dir", "!dir/keep"], "dir/x", True),
    (["dir", "!dir/keep"], "dir/keep", False),
    (["dir", "!dir/keep"], "dir/keep/sub", False),
    (["!x"], "x", False),
    (["/"], "a", False),
    (["."], "a", False),                             # '.' is ignored, as Docker documents
]


@pytest.mark.parametrize("patterns, path, expected", MATCH_CASES)
def test_ignore_matcher(patterns, path, expected):
    assert t.IgnoreMatcher(patterns).excluded(path) is expected


@pytest.mark.parametrize("pattern", ["[", "a[", "[]", "[a-]", "[-a]", "[a", "a\\", "!", "[\\", "[z-a]"])
def test_bad_patterns_are_rejected(pattern):
    with pytest.raises(t.BadPattern):
        t.IgnoreMatcher([pattern])


def test_reinclusion_below_an_excluded_directory_needs_a_pattern_starting_with_it():
    matcher = t.IgnoreMatcher(["dir", "!dir/keep", "!**/deep"])
    assert matcher.may_reinclude_below("dir")
    assert not matcher.may_reinclude_below("other")
    assert not t.IgnoreMatcher(["dir", "!**/keep"]).may_reinclude_below("dir")


# ------------------------------------------------------------------------------------------------ context walk


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("/"):
            path.mkdir(exist_ok=True)
        else:
            path.write_text(text)
    return root


def scan(root: Path, dockerfile: str = "Dockerfile") -> t.BuildContext:
    return t.scan_context(root, root / dockerfile)


def test_scan_sends_what_docker_sends(tmp_path):
    make_tree(tmp_path, {
        "Dockerfile": "FROM scratch\n", ".dockerignore": "*.log\nbuild\nsecret/*\n!secret/public.pem\n",
        "app.py": "", "app.log": "", "build/out.bin": "", "secret/key": "", "secret/public.pem": "",
        "pkg/mod.py": "", "pkg/x.log": "", "empty/": "",
    })
    ctx = scan(tmp_path)
    assert ctx.paths() == [".dockerignore", "Dockerfile", "app.py", "empty", "pkg", "pkg/mod.py", "pkg/x.log",
                           "secret", "secret/public.pem"]


def test_excluded_directory_is_entered_only_for_a_pattern_naming_it(tmp_path):
    make_tree(tmp_path, {"Dockerfile": "", ".dockerignore": "dir\n!dir/keep.txt\n", "dir/keep.txt": "",
                         "dir/drop.txt": ""})
    assert scan(tmp_path).paths() == [".dockerignore", "Dockerfile", "dir/keep.txt"]  # no entry for 'dir' itself
    # Docker's walk prunes 'dir' when no '!' pattern starts with it, although '!**/keep.txt' would match inside.
    (tmp_path / ".dockerignore").write_text("dir\n!**/keep.txt\n")
    assert scan(tmp_path).paths() == [".dockerignore", "Dockerfile"]


def test_dockerfile_and_dockerignore_are_always_sent_but_not_digested_when_excluded(tmp_path):
    make_tree(tmp_path, {"Dockerfile": "", ".dockerignore": "*\n!app.py\n", "app.py": "", "other": ""})
    ctx = scan(tmp_path)
    assert ctx.paths() == [".dockerignore", "Dockerfile", "app.py"]
    assert {e.path: e.hashed for e in ctx.entries} == {".dockerignore": False, "Dockerfile": False, "app.py": True}


def test_dockerfile_in_a_subdirectory_is_kept_when_its_directory_is_excluded(tmp_path):
    make_tree(tmp_path, {"docker/Dockerfile": "", ".dockerignore": "docker\n", "app.py": ""})
    ctx = scan(tmp_path, "docker/Dockerfile")
    assert "docker/Dockerfile" in ctx.paths()


def test_symlinks_are_sent_as_links_and_sockets_are_skipped(tmp_path):
    make_tree(tmp_path, {"Dockerfile": "", "target.txt": "x", "realdir/f": ""})
    (tmp_path / "link").symlink_to("target.txt")
    (tmp_path / "dirlink").symlink_to("realdir")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "sock"))
        ctx = scan(tmp_path)
    entries = {e.path: e for e in ctx.entries}
    assert entries["link"].kind == "symlink" and entries["link"].digest == "target.txt"
    assert entries["dirlink"].kind == "symlink"
    assert "dirlink/f" not in entries and "sock" not in entries


def test_a_bad_dockerignore_pattern_is_a_user_error_naming_the_file(tmp_path):
    make_tree(tmp_path, {"Dockerfile": "", ".dockerignore": "ok\n[broken\n"})
    with pytest.raises(UserError, match=r"\.dockerignore: invalid pattern"):
        scan(tmp_path)


def test_missing_context_or_dockerfile_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="build context .*nope does not exist"):
        t.scan_context(tmp_path / "nope", tmp_path / "Dockerfile")
    with pytest.raises(UserError, match="Dockerfile .* does not exist"):
        t.scan_context(tmp_path, tmp_path / "Dockerfile")


def test_dockerfile_outside_the_context_is_digested_but_not_sent_by_the_scan(tmp_path):
    context = make_tree(tmp_path / "ctx", {"app.py": ""})
    dockerfile = tmp_path / "elsewhere.Dockerfile"
    dockerfile.write_text("FROM scratch\n")
    assert t.scan_context(context, dockerfile).paths() == ["app.py"]


def test_a_dockerfile_copy_can_see_is_part_of_the_context_digest(tmp_path):
    inside = make_tree(tmp_path / "ctx", {"Dockerfile": "FROM scratch\nCOPY . /\n", "app.py": ""})
    outside = tmp_path / "Dockerfile"
    outside.write_text("FROM scratch\nCOPY . /\n")
    data = outside.read_bytes()

    def digest(dockerfile):
        return t.content_digest(t.scan_context(inside, dockerfile), data, {})

    visible = digest(inside / "Dockerfile")
    (inside / "Dockerfile").unlink()
    moved_out = digest(outside)
    assert moved_out != visible  # `COPY .` no longer copies a Dockerfile into the image
    (inside / "Dockerfile").write_bytes(data)
    (inside / ".dockerignore").write_text(".dockerignore\nDockerfile\n")
    assert digest(inside / "Dockerfile") == moved_out  # excluded, the daemon drops it: as if it lived elsewhere


def test_the_dockerfile_to_build_travels_under_a_hidden_name_the_daemon_removes(tmp_path):
    context = make_tree(tmp_path / "ctx", {"Dockerfile": "FROM scratch\n", "app.py": "", ".dockerignore": "*.log\n"})
    ctx = scan(context).with_dockerfile(b"FROM scratch\nLABEL a=b\n")
    assert ctx.dockerfile.startswith(".dockerfile.") and ctx.dockerfile in ctx.paths()
    assert "Dockerfile" in ctx.paths()  # the user's own Dockerfile is still sent as it is, for COPY .
    ignore = next(e for e in ctx.entries if e.path == ".dockerignore")
    assert ignore.data.decode().splitlines() == ["*.log", "", ctx.dockerfile]
    hidden = next(e for e in ctx.entries if e.path == ctx.dockerfile)
    assert hidden.data == b"FROM scratch\nLABEL a=b\n" and hidden.hashed is False
    # Same bytes, same hidden name: repeated builds send identical contexts.
    assert scan(context).with_dockerfile(b"FROM scratch\nLABEL a=b\n").dockerfile == ctx.dockerfile


def test_without_a_dockerignore_the_generated_one_removes_itself_too(tmp_path):
    context = make_tree(tmp_path / "ctx", {"Dockerfile": "FROM scratch\n", "app.py": ""})
    ctx = scan(context).with_dockerfile(b"FROM scratch\n")
    ignore = next(e for e in ctx.entries if e.path == ".dockerignore")
    assert t.parse_dockerignore(ignore.data.decode()) == [".dockerignore", ctx.dockerfile]
    assert ignore.hashed is False


# ------------------------------------------------------------------------------------------------ digest


BASE_TREE = {"Dockerfile": "FROM scratch\nCOPY . /app\n", ".dockerignore": ".dockerignore\nNOTES.md\n",
             "app.py": "print('hi')\n", "NOTES.md": "notes\n", "pkg/mod.py": "x = 1\n"}


def digest_of(root: Path, build_args: dict | None = None, target=None, platform=None, ctx=None) -> str:
    ctx = ctx or scan(root)
    return t.content_digest(ctx, (root / "Dockerfile").read_bytes(), build_args or {}, target, platform)


@pytest.fixture
def tree(tmp_path) -> Path:
    return make_tree(tmp_path / "ctx", BASE_TREE)


def test_digest_does_not_depend_on_where_the_context_lives_or_on_mtimes(tree, tmp_path):
    other = make_tree(tmp_path / "elsewhere", BASE_TREE)
    os.utime(other / "app.py", (1, 1))
    assert digest_of(tree) == digest_of(other)


@pytest.mark.parametrize("change", [
    lambda r: (r / "app.py").write_text("print('bye')\n"),
    lambda r: (r / "new.py").write_text(""),
    lambda r: (r / "empty").mkdir(),                             # COPY copies empty directories too
    lambda r: (r / "app.py").rename(r / "main.py"),
    lambda r: (r / "app.py").chmod(0o755),                       # the executable bit reaches the image
    lambda r: (r / "lnk").symlink_to("app.py"),
    lambda r: (r / "Dockerfile").write_text("FROM scratch\nCOPY . /srv\n"),
    lambda r: (r / ".dockerignore").write_text(".dockerignore\n"),   # NOTES.md now reaches the image
])
def test_a_change_the_image_can_see_changes_the_digest(tree, change):
    before = digest_of(tree)
    change(tree)
    assert digest_of(tree) != before


@pytest.mark.parametrize("change", [
    lambda r: (r / "NOTES.md").write_text("other notes\n"),     # excluded by .dockerignore
    lambda r: (r / ".dockerignore").write_text("# a comment\n.dockerignore\nNOTES.md\n"),  # self-excluded
    lambda r: (r / "app.py").chmod(0o664),                      # umask differences are normalised away
    lambda r: os.utime(r / "app.py", (5, 5)),
])
def test_a_change_the_image_cannot_see_keeps_the_digest(tree, change):
    before = digest_of(tree)
    change(tree)
    assert digest_of(tree) == before


def test_build_args_target_and_platform_are_digested_order_insensitively(tree):
    base = digest_of(tree, {"A": "1", "B": "2"})
    assert digest_of(tree, {"B": "2", "A": "1"}) == base
    assert digest_of(tree, {"A": "1", "B": "3"}) != base
    assert digest_of(tree, {"A": "1"}) != base
    assert digest_of(tree, {"A": "1", "B": "2"}, target="runtime") != base
    assert digest_of(tree, {"A": "1", "B": "2"}, platform="linux/arm64") != base


def test_a_staged_ca_bundle_is_sent_but_not_digested_while_a_wheel_is_both(tree, tmp_path):
    bundle = tmp_path / "ca.crt"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK")
    base = scan(tree)
    with_ca = base.with_file("extra/ca-bundle.crt", bundle, hashed=False)
    assert "extra/ca-bundle.crt" in with_ca.paths() and "extra" in with_ca.paths()
    assert digest_of(tree, ctx=with_ca) == digest_of(tree, ctx=base)
    with_wheel = base.with_file("extra/wheelhouse/" + wheel.name, wheel)
    assert digest_of(tree, ctx=with_wheel) != digest_of(tree, ctx=base)


def test_staging_replaces_a_file_of_the_same_path(tree, tmp_path):
    (tree / "extra").mkdir()
    (tree / "extra" / "ca-bundle.crt").write_text("old")
    bundle = tmp_path / "new.crt"
    bundle.write_text("new")
    ctx = scan(tree).with_file("extra/ca-bundle.crt", bundle, hashed=False)
    assert [e.source for e in ctx.entries if e.path == "extra/ca-bundle.crt"] == [bundle]


# ------------------------------------------------------------------------------------------------ tar


def test_write_tar_round_trips_entries_owned_by_root(tree, tmp_path):
    (tree / "run.sh").write_text("#!/bin/sh\n")
    (tree / "run.sh").chmod(0o700)
    (tree / "lnk").symlink_to("app.py")
    bundle = tmp_path / "ca.crt"
    bundle.write_text("CA")
    ctx = scan(tree).with_file("extra/ca-bundle.crt", bundle, hashed=False)
    out = io.BytesIO()
    t.write_tar(ctx, out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == ctx.paths()
        assert tar.extractfile("app.py").read() == b"print('hi')\n"
        assert tar.extractfile("extra/ca-bundle.crt").read() == b"CA"
    assert members["run.sh"].mode == 0o755 and members["app.py"].mode == 0o644
    assert members["lnk"].issym() and members["lnk"].linkname == "app.py"
    assert members["pkg"].isdir()
    assert {(m.uid, m.gid) for m in members.values()} == {(0, 0)}


# ------------------------------------------------------------------------------------------------ tags and git


def test_tags_are_digests_never_latest():
    digest = "0123456789abcdef" * 4
    assert t.compose_tag(digest) == "0123456789abcdef"
    assert t.compose_tag(digest, t.GitState("feedc0de" * 5, False)) == "feedc0d-0123456789abcdef"
    assert t.compose_tag(digest, t.GitState("feedc0de" * 5, True)) == "feedc0d-dirty-0123456789abcdef"


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def test_git_state_reports_head_and_dirtiness_of_the_build_inputs_only(tmp_path):
    context = make_tree(tmp_path / "image", {"Dockerfile": "FROM scratch\n", "app.py": ""})
    make_tree(tmp_path, {"unrelated.txt": ""})
    assert t.git_state([context]) is None                     # not a checkout yet
    git(tmp_path, "init", "-q")
    assert t.git_state([context]) is None                     # no commit yet
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "init")
    head = git(tmp_path, "rev-parse", "HEAD")
    assert t.git_state([context, context / "Dockerfile"]) == t.GitState(head, False)
    (tmp_path / "unrelated.txt").write_text("changed")
    assert t.git_state([context]).dirty is False              # outside the build inputs
    (context / "new.py").write_text("")
    assert t.git_state([context]).dirty is True               # untracked inside the context
    (context / "new.py").unlink()
    (context / "app.py").write_text("changed")
    assert t.git_state([context]).dirty is True


# ------------------------------------------------------------------------------------------------ references


@pytest.mark.parametrize("value, expected", [
    ("localhost:30000", "localhost:30000"), ("127.0.0.1:30000/", "127.0.0.1:30000"),
    ("registry.example.com/my-org", "registry.example.com/my-org"),
    ("registry.example.com:5000/a/b_c", "registry.example.com:5000/a/b_c"),
    ("[::1]:5000", "[::1]:5000"), ("myorg", "myorg"), ("Registry.Example.COM", "Registry.Example.COM"),
])
def test_valid_registries(value, expected):
    assert validate_registry(value) == expected


@pytest.mark.parametrize("value", ["Bad Registry!", "http://localhost:5000", "registry.example.com/MyOrg", "",
                                   "a..b:5000", "-x.io", "MyOrg", "localhost:port", "registry.example.com//org"])
def test_invalid_registries_name_the_option(value):
    with pytest.raises(UserError, match=r"^--registry .* is not a registry name"):
        validate_registry(value)


def test_split_registry_follows_docker_hub_rules():
    assert split_registry("localhost:30000") == ("localhost:30000", "")
    assert split_registry("registry.example.com/org/sub") == ("registry.example.com", "org/sub")
    assert split_registry("localhost/ns") == ("localhost", "ns")
    assert split_registry("myorg/team") == ("docker.io", "myorg/team")


@pytest.mark.parametrize("value, ok", [("my-agent", True), ("127.0.0.1:30000/fa/agent", True),
                                       ("Agent", False), ("a//b", False), ("-a", False), ("x" * 256, False)])
def test_validate_repository(value, ok):
    if ok:
        assert validate_repository(value) == value
    else:
        with pytest.raises(UserError, match="--name"):
            validate_repository(value)


@pytest.mark.parametrize("directory, expected", [("agent_image", "agent_image"), ("My Agent!", "my-agent"),
                                                 ("__x__", "x"), ("!!!", "agent")])
def test_repository_name_from_directory(tmp_path, directory, expected):
    name = t.repository_name(tmp_path / directory)
    assert name == expected
    assert validate_repository(name)


def test_dockerfile_arg_default():
    text = 'FROM x\nARG FLYTEKIT_VERSION="1.16.1"\narg OTHER=2\nARG NODEFAULT\n'
    assert t.dockerfile_arg_default(text, "FLYTEKIT_VERSION") == "1.16.1"
    assert t.dockerfile_arg_default(text, "OTHER") == "2"
    assert t.dockerfile_arg_default(text, "NODEFAULT") is None
    assert t.dockerfile_arg_default(text, "MISSING") is None


@pytest.mark.parametrize("ref, expected", [
    ("my-agent:abc", "docker.io/library/my-agent:abc"), ("org/agent:1", "docker.io/org/agent:1"),
    ("localhost:30000/fa/agent:0123", "localhost:30000/fa/agent:0123"),
    ("registry.example.com/o/a:t", "registry.example.com/o/a:t"),
])
def test_normalize_ref_like_containerd(ref, expected):
    assert normalize_ref(ref) == expected


def test_git_origin_drops_embedded_credentials(tmp_path):
    git(tmp_path, "init", "-q")
    assert t.git_origin(tmp_path) is None
    git(tmp_path, "remote", "add", "origin", "https://user:s3cret@git.example.com:8443/org/repo.git")
    assert t.git_origin(tmp_path) == "https://git.example.com:8443/org/repo.git"
    git(tmp_path, "remote", "set-url", "origin", "git@git.example.com:org/repo.git")
    assert t.git_origin(tmp_path) == "git@git.example.com:org/repo.git"


# ------------------------------------------------------------------------------------------------ labels


def test_add_labels_closes_the_last_stage_with_one_label_instruction():
    out = t.add_labels("FROM a AS build\nRUN x\nFROM b\nCOPY --from=build /x /x", {"k2": "2", "k1": "1"})
    assert out.splitlines() == ["FROM a AS build", "RUN x", "FROM b", "COPY --from=build /x /x",
                                'LABEL "k1"="1" "k2"="2"']


def test_add_labels_closes_the_target_stage_even_across_continuations_and_comments():
    dockerfile = ("FROM a AS Build\nRUN echo \\\n  FROM not-a-stage\n# FROM comment\n\nFROM b AS final\nRUN y\n")
    lines = t.add_labels(dockerfile, {"k": "v"}, target="build").splitlines()
    assert lines.index('LABEL "k"="v"') == lines.index("FROM b AS final") - 1
    assert t.add_labels(dockerfile, {"k": "v"}, target="final").splitlines()[-1] == 'LABEL "k"="v"'


def test_add_labels_escapes_quotes_dollars_and_the_escape_character():
    assert t.add_labels('FROM a\n', {"k": 'a"b$c\\d'}).splitlines()[-1] == 'LABEL "k"="a\\"b\\$c\\\\d"'
    backtick = t.add_labels("# escape=`\nFROM a\n", {"k": 'a"b`'})
    assert backtick.splitlines()[-1] == 'LABEL "k"="a`"b``"'
