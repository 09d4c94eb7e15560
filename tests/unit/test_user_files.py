"""The one reader of user files (userfiles) and the strict YAML loader under it (yamlio): each way a file can be
unusable is one UserError naming the file; duplicate keys and alias bombs are refused with their line."""
from __future__ import annotations

import codecs
import subprocess
import sys

from pathlib import Path

import pytest
import yaml

from flyte_agents import userfiles, yamlio
from flyte_agents.adapters import kubeconfig
from flyte_agents.errors import DockerfileError, UserError

BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))


@pytest.mark.parametrize("data, expected", [
    (codecs.BOM_UTF16_LE + "a: 1\n".encode("utf-16-le"), "is UTF-16 (or UTF-32) text: save it as UTF-8"),
    (codecs.BOM_UTF16_BE + "a: 1\n".encode("utf-16-be"), "is UTF-16 (or UTF-32) text: save it as UTF-8"),
    ("a: 1\n".encode("utf-16-le"), "has NUL bytes (UTF-16 text without a byte-order mark"),
    ("a: 1\nb: caf\xe9\n".encode("latin-1"), "is not UTF-8 (byte 0xe9 at line 2): save it as UTF-8"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "has NUL bytes"),
])
def test_text_that_is_not_utf8_is_named_with_the_file(tmp_path, data, expected):
    path = tmp_path / "values.yaml"
    path.write_bytes(data)
    with pytest.raises(UserError) as err:
        userfiles.read_text(path, "values file")
    assert str(err.value).startswith(f"values file {path} ") and expected in str(err.value)


def test_a_utf8_byte_order_mark_is_dropped(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_bytes(codecs.BOM_UTF8 + b"a: 1\n")
    assert userfiles.load_yaml(path, "project file") == {"a": 1}


def test_missing_directory_and_too_big_files_say_so(tmp_path, monkeypatch):
    with pytest.raises(UserError, match=f"^values file {tmp_path}/nope.yaml does not exist"):
        userfiles.read_text(tmp_path / "nope.yaml", "values file")
    with pytest.raises(UserError, match=f"^values file {tmp_path} is a directory"):
        userfiles.read_text(tmp_path, "values file")
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * 2000)
    monkeypatch.setattr(userfiles, "MAX_BYTES", 1000)
    with pytest.raises(UserError, match="is 0.0 MiB, more than the 0 MiB"):
        userfiles.read_text(big, "values file")


def test_the_caller_chooses_the_error_class(tmp_path):
    path = tmp_path / "Dockerfile"
    path.write_bytes(b"FROM x\nRUN echo \xff\n")
    with pytest.raises(DockerfileError, match="Dockerfile .* is not UTF-8 .byte 0xff at line 2"):
        userfiles.read_text(path, "Dockerfile", DockerfileError)


def test_yaml_errors_name_the_file_and_line(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("a: 1\nb: [unclosed\n")
    with pytest.raises(UserError, match=f"^project file {path} is not valid YAML at line 3: "):
        userfiles.load_yaml(path, "project file")


# ------------------------------------------------------------------------------------------------ strict YAML

def test_duplicate_keys_are_refused_with_both_lines():
    with pytest.raises(yamlio.Error) as err:
        yamlio.load("services:\n  demo:\n    image: a\n  other: {}\n  demo:\n    image: b\n")
    assert err.value.problem.startswith("duplicate key 'demo' (first at line 2)")
    assert yamlio.at_line(err.value) == " at line 5"


@pytest.mark.parametrize("text", ["a: {x: 1, x: 2}\n", "- {1: a, 1: b}\n", "a:\n  b: 1\n  'b': 2\n"])
def test_duplicates_at_any_depth_and_quoting_are_refused(text):
    with pytest.raises(yamlio.Error, match="duplicate key"):
        yamlio.load(text)


def test_merge_keys_may_still_be_overridden():
    assert yamlio.load("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  x: 3\n")["c"] == {"x": 3, "y": 2}


def test_an_alias_bomb_is_refused_at_once():
    assert len(BOMB) < 500
    with pytest.raises(yamlio.Error, match="aliases expand to more than 100,000 nodes"):
        yamlio.load(BOMB)
    with pytest.raises(yamlio.Error, match="aliases expand"):
        yamlio.load_all("a: 1\n---\n" + BOMB)


def test_a_self_referencing_alias_is_refused():
    with pytest.raises(yamlio.Error, match="refers to a node that contains it"):
        yamlio.load("a: &a [1, *a]\n")


def test_ordinary_aliases_are_kept():
    doc = "r: &r {cpu: 1, memory: 2Gi}\n" + "".join(f"s{i}: {{resources: *r}}\n" for i in range(2000))
    loaded = yamlio.load(doc)
    assert loaded["s1999"]["resources"] == {"cpu": 1, "memory": "2Gi"}


def test_a_bound_just_above_the_limit_is_refused_and_just_below_kept():
    leaf = "l: &l [" + ", ".join(["x"] * 99) + "]\n"  # 100 nodes
    below = leaf + "m: [" + ", ".join(["*l"] * (yamlio.MAX_ALIAS_NODES // 100 - 1)) + "]\n"
    above = leaf + "m: [" + ", ".join(["*l"] * (yamlio.MAX_ALIAS_NODES // 100 + 2)) + "]\n"
    assert len(yamlio.load(below)["m"]) == yamlio.MAX_ALIAS_NODES // 100 - 1
    with pytest.raises(yamlio.Error, match="aliases expand"):
        yamlio.load(above)


def test_the_cli_stays_small_on_an_alias_bomb(tmp_path):
    """A project file that is an alias bomb: one error line, and the process stays far below 200 MB."""
    (tmp_path / "flyte-agents.yaml").write_text(BOMB)
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over fork and exec, so the child would report the
    # peak of the pytest process that started it (over 200 MB once integration tests have run in it).
    code = ("import re\nfrom flyte_agents.cli.main import main\n"
            "rc = main(['deploy', '--sandbox', '--dry-run'])\n"
            "status = open('/proc/self/status').read()\n"
            "print(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1), rc)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    rss_kb, rc = map(int, proc.stdout.split())
    assert rc == 2 and proc.stderr.startswith("error: project file flyte-agents.yaml is not valid YAML at line 1")
    assert rss_kb < 200 * 1024, rss_kb


# ------------------------------------------------------------------------------------------------ kubeconfig

def _kubeconfig(path, contexts, current=None):
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": current,
                                    "contexts": [{"name": c, "context": {"cluster": c}} for c in contexts]}))
    return path


def test_kubeconfig_contexts_and_current(tmp_path):
    found = kubeconfig.load(str(_kubeconfig(tmp_path / "config", ["a", "b"], "b")))
    assert (found.contexts, found.current, found.context(None), found.context("a")) == (("a", "b"), "b", "b", "a")
    with pytest.raises(UserError, match="kube context 'c' is not in .*: use one of a, b"):
        found.context("c")


def test_several_kubeconfig_files_merge_like_kubectl(tmp_path, monkeypatch):
    """$KUBECONFIG lists files: missing ones are skipped, the first definition of a name and the first
    current-context win (kubectl's and helm's loading rules)."""
    one = _kubeconfig(tmp_path / "one", ["a", "shared"])
    two = _kubeconfig(tmp_path / "two", ["shared", "b"], "b")
    monkeypatch.setenv("KUBECONFIG", f"{one}:{tmp_path / 'absent'}:{two}")
    found = kubeconfig.load(None)
    assert found.paths == (one, two) and found.location == f"{one}:{two}"
    assert (found.contexts, found.current) == (("a", "shared", "b"), "b")


def test_kubeconfig_default_and_explicit_paths(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert kubeconfig.paths(None) == (Path("~/.kube/config").expanduser(),)
    assert kubeconfig.paths(str(tmp_path / "x")) == (tmp_path / "x",)


@pytest.mark.parametrize("text, expected", [
    ("[1, 2]", "is not a kubeconfig"),
    ("contexts: {a: 1}", "contexts must be a list of entries with a name"),
    ("contexts: [\n", "is not valid YAML at line 2"),
    ("contexts: [{name: a}]\ncontexts: []\n", "duplicate key 'contexts'"),
])
def test_unusable_kubeconfigs_are_one_user_error_naming_the_file(tmp_path, text, expected):
    path = tmp_path / "config"
    path.write_text(text)
    with pytest.raises(UserError, match=expected) as err:
        kubeconfig.load(str(path))
    assert str(path) in str(err.value)


def test_a_kubeconfig_without_contexts_loads_but_gives_no_context(tmp_path):
    # Loading it is no error: for --sandbox it is just not the sandbox's (the sandbox check says so, with the fix).
    path = tmp_path / "config"
    path.write_text("contexts: []")
    found = kubeconfig.load(str(path))
    assert found.contexts == ()
    with pytest.raises(UserError, match="has no contexts") as err:
        found.context(None)
    assert str(path) in str(err.value)


def test_missing_kubeconfigs_say_which(tmp_path, monkeypatch):
    with pytest.raises(UserError, match=f"kubeconfig {tmp_path}/absent .--kubeconfig. does not exist"):
        kubeconfig.load(str(tmp_path / "absent"))
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path}/x:{tmp_path}/y")
    with pytest.raises(UserError, match="none of these files exists"):
        kubeconfig.load(None)


def test_deep_nesting_is_refused_before_anything_recurses_on_it():
    """A few hundred levels made deepcopy, Helm's merge and the YAML dumper die with RecursionError."""
    assert yamlio.load("a: " + "[" * 98 + "]" * 98) is not None
    with pytest.raises(yamlio.Error, match="nested more than 100 levels deep"):
        yamlio.load("a: " + "[" * 150 + "]" * 150)


def test_deep_nesting_built_from_aliases_is_refused_too():
    chain = "a0: &a0 " + "[" * 60 + "x" + "]" * 60 + "\n" + "".join(
        f"a{i}: &a{i} " + "[" * 60 + f"*a{i - 1}" + "]" * 60 + "\n" for i in range(1, 5))
    with pytest.raises(yamlio.Error, match="nested more than 100 levels deep") as err:
        yamlio.load(chain)
    assert yamlio.at_line(err.value) == " at line 2"
