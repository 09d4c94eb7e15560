"""Every bad input is one line: a table of bad project files, values files, Chart.yaml, Dockerfiles, flags,
kubeconfigs, propeller configs of every flavor and environment variables, each run through the real CLI (main()).

For each row: the documented exit code (2 bad input, 6 Dockerfile), exactly one stderr line starting with
`error:`, no traceback, nothing on stdout, the file or field named, and nothing written anywhere in the
workspace (project, home, cache: the tree is compared before and after). Cluster commands point at a cluster
that does not answer (KUBECONFIG: a server on a closed port; DOCKER_HOST: a socket that does not exist), so a
row passes only if the input was checked before the first connection.

Rows are generated per class (every project field with each wrong type, every file with each broken encoding,
every option with each bad value...); each row is a distinct input. The heavy clients (Docker SDK, kubernetes,
grpc, flyteidl) must not be imported by `SUB --help` or by a bad-input exit: checked in subprocesses below.
"""
from __future__ import annotations

import codecs
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from flyte_agents.cli.main import COMMANDS, main

BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))
HEAVY = ("docker", "kubernetes", "grpc", "flyteidl", "pyhelm3")
DEAD_SERVER = "https://127.0.0.1:9"  # discard port: nothing listens, so any connection attempt fails
SVC = "id=a,endpoint=k8s://a.flyte:8000,task-types=t"  # a good --service spec


def project_doc() -> dict:
    return {
        "apiVersion": "flyte-agents.dev/v1alpha1", "kind": "Project", "namespace": "flyte", "chart": "chart",
        "registry": "registry.example.com/team",
        "images": {"agent": {"context": "agent", "repository": "team/agent"}},
        "services": {
            "demo-prod": {"environment": "prod", "image": "agent", "values": ["values/base.yaml"],
                          "sandboxValues": ["values/sandbox.yaml"], "taskTypes": ["demo_task"], "default": True},
            "demo-dev": {"environment": "dev", "image": "agent", "values": ["values/base.yaml"],
                         "taskTypes": ["demo_task"], "route": False},
        },
        "sandbox": {"builtin": "keep"},
    }


def kubeconfig_doc(server: str = DEAD_SERVER) -> dict:
    return {"apiVersion": "v1", "kind": "Config", "current-context": "dead",
            "clusters": [{"name": "dead", "cluster": {"server": server}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "dead", "context": {"cluster": "dead", "user": "u"}},
                         {"name": "flyte-sandbox", "context": {"cluster": "dead", "user": "u"}}]}


def make_workspace(root: Path) -> None:
    (root / "chart").mkdir()
    (root / "chart" / "Chart.yaml").write_text("apiVersion: v2\nname: flyte-agent\nversion: 0.1.0\n")
    (root / "values").mkdir()
    (root / "values" / "base.yaml").write_text("replicas: 1\ngrpc: {port: 8000}\n")
    (root / "values" / "sandbox.yaml").write_text("resources: {}\n")
    (root / "agent").mkdir()
    (root / "agent" / "Dockerfile").write_text("FROM python:3.11-slim\nARG FLYTEKIT_VERSION=1.16.1\n")
    (root / "agent" / "requirements.txt").write_text("flytekit\n")
    (root / "flyte-agents.yaml").write_text(yaml.safe_dump(project_doc(), sort_keys=False))
    (root / "home").mkdir()
    (root / "kubeconfig").write_text(yaml.safe_dump(kubeconfig_doc()))
    (root / "services.yaml").write_text("services:\n  - {id: a, endpoint: 'k8s://a.flyte:8000', taskTypes: [t]}\n")
    (root / "propeller.yaml").write_text("tasks: {task-plugins: {enabled-plugins: [container, connector-service]}}\n")


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else (-1, 0)
            for p in root.rglob("*")}


@dataclass(frozen=True)
class Row:
    id: str
    argv: tuple[str, ...]
    named: tuple[str, ...]  # substrings the error line must contain (the file or field, what is wrong)
    files: dict[str, bytes] = field(default_factory=dict)  # workspace files to write (path -> bytes)
    env: dict[str, str] = field(default_factory=dict)
    code: int = 2
    setup: Callable[[Path], None] | None = None

    def param(self) -> Any:
        return pytest.param(self, id=self.id)


ROWS: list[Row] = []


def row(id_: str, argv: list[str] | tuple[str, ...], *named: str, **kw: Any) -> None:
    ROWS.append(Row(id_, tuple(argv), named, **kw))


def text(value: str) -> bytes:
    return value.encode()


def project_with(path: str, value: Any) -> bytes:
    """The good project with the field at dotted `path` set to `value` (Ellipsis: removed)."""
    doc = project_doc()
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return yaml.safe_dump(doc, sort_keys=False).encode()


CLUSTER_COMMANDS = (["deploy", "--dry-run"], ["status"], ["verify"], ["undeploy", "--dry-run"])

# ------------------------------------------------------------------------------------------------ project fields

WRONG_TYPES: dict[str, Any] = {"int": 42, "float": 2.5, "bool": True, "list": ["x"], "map": {"k": "v"}}
FIELDS: dict[str, tuple[str, ...]] = {
    # field -> which wrong types apply (a string field takes neither numbers, booleans, lists nor maps)
    "namespace": ("int", "float", "bool", "list", "map"),
    "chart": ("int", "float", "bool", "list", "map"),
    "registry": ("int", "float", "bool", "list", "map"),
    "images": ("int", "float", "bool", "list"),
    "services": ("int", "float", "bool", "list"),
    "sandbox": ("int", "float", "bool", "list"),
    "sandbox.builtin": ("int", "float", "bool", "list", "map"),
    "images.agent": ("int", "float", "bool", "list"),
    "images.agent.context": ("int", "float", "bool", "list", "map"),
    "images.agent.repository": ("int", "float", "bool", "list", "map"),
    "images.agent.dockerfile": ("int", "float", "bool", "list", "map"),
    "images.agent.buildArgs": ("int", "float", "bool", "list"),
    "images.agent.target": ("int", "float", "bool", "list", "map"),
    "images.agent.platform": ("int", "float", "bool", "list", "map"),
    "services.demo-prod": ("int", "float", "bool", "list"),
    "services.demo-prod.environment": ("int", "float", "bool", "list", "map"),
    "services.demo-prod.image": ("int", "float", "bool", "list", "map"),
    "services.demo-prod.values": ("int", "float", "bool", "map"),
    "services.demo-prod.sandboxValues": ("int", "float", "bool", "map"),
    "services.demo-prod.taskTypes": ("int", "float", "bool", "map"),
    "services.demo-prod.route": ("int", "float", "list", "map"),
    "services.demo-prod.default": ("int", "float", "list", "map"),
    "services.demo-prod.sync": ("int", "float", "list", "map"),
    "services.demo-prod.timeout": ("bool", "list", "map"),
}
for _field, _kinds in FIELDS.items():
    for _kind in _kinds:
        _argv = ["-p", "flyte-agents.yaml"]
        _cmd = CLUSTER_COMMANDS[len(ROWS) % len(CLUSTER_COMMANDS)]
        row(f"project-{_field}={_kind}", [*_cmd, *_argv], "flyte-agents.yaml", _field.split(".")[-1],
            files={"flyte-agents.yaml": project_with(_field, WRONG_TYPES[_kind])})

BAD_VALUES: dict[str, list[Any]] = {
    "apiVersion": ["v1", "flyte-agents.dev/v2"],
    "kind": ["Deployment", "project"],
    "namespace": ["Flyte", "flyte_agents", "-flyte", "a" * 64, ""],
    "chart": ["no-such-chart", "values", "values/base.yaml"],
    "registry": ["HTTP://registry.example.com", "Registry.Example.com/Team", "registry.example.com/Team",
                 "reg istry"],
    "images.agent.context": ["no-such-dir", "values/base.yaml", ""],
    "images.agent.repository": ["Team/Agent", "team//agent", "team/agent:tag", ""],
    "images.agent.dockerfile": ["no-such-Dockerfile", "agent", ""],
    "images.agent.buildArgs": [{"A": True}, {"A": None}, {"A": ["x"]}],
    "sandbox.builtin": ["maybe", "KEEP"],
    "services.demo-prod.environment": ["Prod", "prod env", ""],
    "services.demo-prod.image": ["other", ""],
    "services.demo-prod.values": [["values/none.yaml"], ["values"], [42], "values/base.yaml"],
    "services.demo-prod.sandboxValues": [["values/none.yaml"], ["chart"]],
    "services.demo-prod.taskTypes": [[""], [42], ["a b"], [["nested"]]],
    "services.demo-prod.route": ["yes", "true"],
    "services.demo-prod.timeout": ["10", "ten seconds", "-5s", "1d"],
}
for _field, _values in BAD_VALUES.items():
    for _i, _value in enumerate(_values):
        _cmd = CLUSTER_COMMANDS[len(ROWS) % len(CLUSTER_COMMANDS)]
        row(f"project-{_field}-bad{_i}", [*_cmd], "flyte-agents.yaml", files={
            "flyte-agents.yaml": project_with(_field, _value)})

for _field in ("apiVersion", "kind", "images", "services", "images.agent.context", "images.agent.repository",
               "services.demo-prod.environment", "services.demo-prod.image"):
    row(f"project-missing-{_field}", ["deploy", "--dry-run"], "flyte-agents.yaml", _field.split(".")[-1],
        files={"flyte-agents.yaml": project_with(_field, ...)})

for _where, _key in (("", "extra"), ("images.agent", "buildargs"), ("services.demo-prod", "valuez"),
                     ("sandbox", "mode")):
    _doc = project_doc()
    _node = _doc
    for _k in filter(None, _where.split(".")):
        _node = _node[_k]
    _node[_key] = 1
    row(f"project-unknown-field-{_where or 'top'}.{_key}", ["status"], "flyte-agents.yaml", f"unknown field",
        _key, files={"flyte-agents.yaml": yaml.safe_dump(_doc).encode()})

# semantic errors across fields
_both_routed = project_doc()
_both_routed["services"]["demo-dev"]["route"] = True
row("project-task-type-routed-twice", ["deploy"], "flyte-agents.yaml", "demo_task",
    files={"flyte-agents.yaml": yaml.safe_dump(_both_routed).encode()})
_two_defaults = project_doc()
_two_defaults["services"]["demo-dev"].update(route=True, default=True, taskTypes=["other"])
row("project-two-defaults", ["deploy"], "flyte-agents.yaml", "default",
    files={"flyte-agents.yaml": yaml.safe_dump(_two_defaults).encode()})
_default_unrouted = project_doc()
_default_unrouted["services"]["demo-dev"]["default"] = True
row("project-default-not-routed", ["status"], "flyte-agents.yaml", "demo-dev",
    files={"flyte-agents.yaml": yaml.safe_dump(_default_unrouted).encode()})
row("project-no-services", ["verify"], "flyte-agents.yaml", "services",
    files={"flyte-agents.yaml": project_with("services", {})})
row("project-bad-service-id", ["status"], "flyte-agents.yaml", "Demo_Prod",
    files={"flyte-agents.yaml": project_with("services.Demo_Prod", {"environment": "prod", "image": "agent"})})

# ------------------------------------------------------------------------------------------------ file encodings

ENCODINGS: dict[str, Callable[[str], bytes]] = {
    "latin1": lambda t: (t + "# café\n").encode("latin-1"),
    "utf16-le-bom": lambda t: codecs.BOM_UTF16_LE + t.encode("utf-16-le"),
    "utf16-be-bom": lambda t: codecs.BOM_UTF16_BE + t.encode("utf-16-be"),
    "utf16-no-bom": lambda t: t.encode("utf-16-le"),
    "utf32-bom": lambda t: codecs.BOM_UTF32_LE + t.encode("utf-32-le"),
    "binary": lambda t: b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)),
    "cp1252-quote": lambda t: t.encode() + b"# \x93quoted\x94\n",
}
ENCODING_WORDS = {"latin1": "not UTF-8", "utf16-le-bom": "UTF-16", "utf16-be-bom": "UTF-16",
                  "utf16-no-bom": "NUL bytes", "utf32-bom": "UTF-16 (or UTF-32)", "binary": "NUL bytes",
                  "cp1252-quote": "not UTF-8"}
YAML_BREAKS: dict[str, str] = {
    "syntax-unclosed": "a: [unclosed\n",
    "syntax-indent": "a:\n  b: 1\n c: 2\n",
    "syntax-tab": "a:\n\tb: 1\n",
    "syntax-quote": "a: 'unterminated\n",
    "duplicate-key": "a: 1\nb: 2\na: 3\n",
    "alias-bomb": BOMB,
    "self-alias": "a: &a [1, *a]\n",
    "undefined-alias": "a: *nowhere\n",
    "python-tag": "a: !!python/object/apply:os.system ['true']\n",
    "deep-nesting": "a: " + "[" * 400 + "]" * 400 + "\n",
}
YAML_WORDS = {"duplicate-key": "duplicate key 'a'", "alias-bomb": "aliases expand", "self-alias": "contains it",
              "deep-nesting": "nested more than 100 levels"}

YAML_FILES = {  # file -> (command, what the error calls it)
    "flyte-agents.yaml": (["deploy", "--dry-run"], "project file"),
    "values/base.yaml": (["status"], "values file"),
    "values/sandbox.yaml": (["verify"], "values file"),
    "chart/Chart.yaml": (["undeploy"], "chart file"),
    "kubeconfig": (["config", "apply", "--service", SVC,
                    "--kubeconfig", "kubeconfig"], "kubeconfig"),
    "services.yaml": (["config", "render", "--from", "propeller.yaml", "--flyte-version", "1.16",
                       "--services", "services.yaml"], "--services"),
    "propeller.yaml": (["config", "lint", "--from", "propeller.yaml", "--flyte-version", "1.16"], "propeller.yaml"),
}
for _file, (_argv, _what) in YAML_FILES.items():
    _good = "a: flyte\n"
    for _enc, _encode in ENCODINGS.items():
        row(f"encoding-{_file}-{_enc}", _argv, _file, ENCODING_WORDS[_enc], files={_file: _encode(_good)})
    for _break, _content in YAML_BREAKS.items():
        row(f"yaml-{_file}-{_break}", _argv, _file, YAML_WORDS.get(_break, "not valid YAML"),
            files={_file: text(_content)})

for _enc, _encode in ENCODINGS.items():
    _code = 6
    row(f"encoding-Dockerfile-{_enc}", ["deploy", "--dry-run"], "Dockerfile", ENCODING_WORDS[_enc], code=_code,
        files={"agent/Dockerfile": _encode("FROM python:3.11\n")})
    row(f"encoding-build-Dockerfile-{_enc}", ["build", "agent"], "Dockerfile", ENCODING_WORDS[_enc], code=_code,
        files={"agent/Dockerfile": _encode("FROM python:3.11\n")})
    row(f"encoding-requirements-{_enc}", ["build", "--offline", "--dry-run", "agent"], "requirements",
        ENCODING_WORDS[_enc], files={"agent/requirements.txt": _encode("flytekit\n")})
    row(f"encoding-dockerignore-{_enc}", ["build", "--dry-run", "agent"], ".dockerignore", ENCODING_WORDS[_enc],
        files={"agent/.dockerignore": _encode("*.pyc\n")})

# values files and Chart.yaml that parse but are not what they must be
for _file, _content, _word in (
        ("values/base.yaml", "- a\n- b\n", "not a mapping"), ("values/base.yaml", "just a string\n", "not a mapping"),
        ("values/sandbox.yaml", "42\n", "not a mapping"), ("chart/Chart.yaml", "name: x\n", "name and version"),
        ("chart/Chart.yaml", "[1]\n", "name and version"), ("chart/Chart.yaml", "", "name and version"),
        ("chart/Chart.yaml", "name: 1\nversion: 2\n", "name and version")):
    row(f"content-{_file}-{_content.strip()[:12] or 'empty'}", ["deploy", "--dry-run"], _file, _word,
        files={_file: text(_content)})

# a directory where a file belongs, a file where a directory belongs, missing files


def _mkdir(rel: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        target = root / rel
        if target.is_file():
            target.unlink()
        target.mkdir(parents=True, exist_ok=True)
    return setup


def _remove(rel: str) -> Callable[[Path], None]:
    return lambda root: (root / rel).unlink()


for _rel, _argv, _word in (
        ("flyte-agents.yaml", ["deploy", "--dry-run"], "is a directory"),
        ("values/base.yaml", ["status"], "is a directory"),
        ("agent/Dockerfile", ["deploy"], "is a directory"),
        ("kubeconfig", ["config", "remove", "--kubeconfig", "kubeconfig"], "is a directory"),
        ("services.yaml", ["config", "render", "--from", "propeller.yaml", "--services", "services.yaml"],
         "is a directory"),
        ("propeller.yaml", ["config", "diff", "--from", "propeller.yaml", "--service", SVC],
         "is a directory"),
        ("chart/Chart.yaml", ["verify"], "is a directory")):
    row(f"directory-as-file-{_rel}", _argv, _rel.split("/")[-1], _word, setup=_mkdir(_rel),
        code=6 if _rel.endswith("Dockerfile") else 2)
for _rel, _argv, _word in (
        ("flyte-agents.yaml", ["deploy"], "does not exist"),
        ("values/base.yaml", ["undeploy"], "does not exist"),
        ("values/sandbox.yaml", ["deploy", "--sandbox"], "does not exist"),
        ("chart/Chart.yaml", ["status"], "no Chart.yaml"),
        ("agent/Dockerfile", ["deploy"], "no Dockerfile"),
        ("agent/Dockerfile", ["build", "agent"], "does not exist"),
        ("agent/requirements.txt", ["build", "--offline", "agent"], "requirements.txt"),
        ("kubeconfig", ["status"], "does not exist"),
        ("kubeconfig", ["config", "apply", "--service", SVC],
         "does not exist")):
    row(f"missing-{_rel}-{_argv[0]}", _argv, _rel.split("/")[-1], _word, setup=_remove(_rel))


def _too_big(rel: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        with open(root / rel, "ab") as f:
            f.write(b"#" * (4 << 20))
    return setup


for _rel, _argv in (("flyte-agents.yaml", ["deploy"]), ("values/base.yaml", ["status"]),
                    ("kubeconfig", ["verify"]), ("propeller.yaml", ["config", "lint", "--from", "propeller.yaml"])):
    row(f"too-big-{_rel}", _argv, _rel.split("/")[-1], "MiB", setup=_too_big(_rel))

# ------------------------------------------------------------------------------------------------ flags

FLAG_VALUES: dict[str, list[str]] = {
    "--timeout": ["5x", "5", "-1m", "", "1d", "5 m", "m5"],
    "--namespace": ["Bad_NS", "-flyte", "flyte-", "a" * 64, "UPPER", "a.b", ""],
    "--propeller-namespace": ["Bad_NS", "flyte_system", "x" * 70, "ns/x"],
    "--verify-timeout": ["-1", "0", "abc", "inf", "nan", "-0.5"],
    "--flyte-version": ["1.16xyz", "2.0", "1.12", "abc", "1", "1.16.8.9", "v"],
    "--output": ["xml", "yaml", ""],
    "--flavor": ["k3s", "flyte binary", "binary"],
    "--registry": ["HTTP://registry.example.com", "Bad Registry", "registry.example.com/Team", "a:b:c"],
}
FLAG_COMMANDS = {"--timeout": (["deploy"], ["undeploy"]), "--verify-timeout": (["deploy"], ["verify"])}
for _flag, _values in FLAG_VALUES.items():
    for _i, _value in enumerate(_values):
        for _cmd in FLAG_COMMANDS.get(_flag, (CLUSTER_COMMANDS[_i % len(CLUSTER_COMMANDS)],)):
            row(f"flag-{_cmd[0]}-{_flag}={_value or 'empty'}", [*_cmd, _flag, _value], _flag.lstrip("-").split("-")[0]
                if _flag != "--namespace" else "namespace")

for _id, _argv, _word in (
        ("sandbox-and-context", ["deploy", "--sandbox", "--context", "x"], "--sandbox and --context"),
        ("builtin-without-sandbox", ["deploy", "--builtin", "replace"], "--builtin"),
        ("builtin-unknown", ["deploy", "--sandbox", "--builtin", "drop"], "--builtin"),
        ("sandbox-other-namespace", ["status", "--sandbox", "-n", "other"], "--namespace other"),
        ("service-unknown", ["status", "--service", "nope"], "nope"),
        ("env-unknown", ["verify", "--env", "staging"], "--env 'staging'"),
        ("env-service-mismatch", ["deploy", "--env", "prod", "--service", "demo-dev"], "demo-dev is of environment dev"),
        ("context-unknown", ["status", "--context", "nope"], "kube context 'nope'"),
        ("kubeconfig-flag-missing", ["status", "--kubeconfig", "nowhere"], "nowhere"),
        ("helm-binary-missing", ["deploy", "--helm", "/no/such/helm"], "/no/such/helm"),
        ("unknown-option", ["deploy", "--frobnicate"], "--frobnicate"),
        ("unknown-command", ["frobnicate"], "frobnicate"),
        ("missing-option-value", ["deploy", "--timeout"], "--timeout"),
        ("ca-bundle-missing", ["build", "--ca-bundle", "none.pem", "agent"], "none.pem"),
        ("ca-bundle-directory", ["build", "--ca-bundle", "values", "agent"], "is a directory"),
        ("conformance-endpoint-no-port", ["conformance", "--endpoint", "localhost"], "HOST:PORT"),
        ("conformance-endpoint-bad-port", ["conformance", "--endpoint", "localhost:99999"], "HOST:PORT"),
        ("conformance-endpoint-text-port", ["conformance", "--endpoint", "localhost:grpc"], "HOST:PORT"),
        ("conformance-wait-zero", ["conformance", "--endpoint", "localhost:8000", "--wait", "0"], "--wait"),
        ("conformance-wait-text", ["conformance", "--endpoint", "localhost:8000", "--wait", "soon"], "--wait"),
        ("conformance-both", ["conformance", "--endpoint", "localhost:8000", "--service", "demo-prod"], "--endpoint"),
        ("conformance-neither", ["conformance"], "--endpoint"),
        ("conformance-two-services", ["conformance", "--service", "a", "--service", "b"], "one service"),
        ("conformance-task-missing", ["conformance", "--endpoint", "localhost:8000", "--task", "none.pb"],
         "none.pb"),
        ("conformance-task-directory", ["conformance", "--endpoint", "localhost:8000", "--task", "values"],
         "is a directory"),
        ("conformance-task-not-protobuf", ["conformance", "--endpoint", "localhost:8000", "--task",
                                           "values/base.yaml"], "base.yaml"),
        ("conformance-junit-dir-missing", ["conformance", "--endpoint", "localhost:8000", "--junit", "no/dir/j.xml"],
         "no/dir"),
        ("verify-endpoint-bad", ["verify", "--endpoint", "nohost"], "HOST:PORT"),
        ("config-apply-namespace", ["config", "apply", "-n", "Bad_NS", "--service", SVC],
         "Bad_NS"),
        ("config-apply-timeout", ["config", "apply", "--timeout", "-3", "--service", SVC],
         "--timeout"),
        ("config-remove-namespace", ["config", "remove", "-n", "a_b"], "a_b"),
        ("config-apply-version", ["config", "apply", "--flyte-version", "1.16xyz", "--service",
                                  SVC], "1.16xyz"),
        ("config-render-version", ["config", "render", "--from", "propeller.yaml", "--flyte-version", "3.1",
                                   "--service", SVC], "3.1"),
        ("config-render-no-from", ["config", "render", "--service", SVC], "--from"),
        ("config-render-no-service", ["config", "render", "--from", "propeller.yaml", "--flyte-version", "1.16"],
         "no services"),
        ("config-render-output", ["config", "render", "--from", "propeller.yaml", "-o", "toml", "--service",
                                  SVC], "--output 'toml'"),
        ("config-lint-output", ["config", "lint", "--from", "propeller.yaml", "-o", "xml"], "--output 'xml'"),
        ("config-apply-context", ["config", "apply", "--kubeconfig", "kubeconfig", "--context", "nope", "--service",
                                  SVC], "nope"),
        ("config-flavor", ["config", "render", "--from", "propeller.yaml", "--flavor", "k3s", "--service",
                           SVC], "k3s"),
):
    row(f"option-{_id}", _argv, _word)

SERVICE_SPECS = {
    "no-endpoint": "id=a,task-types=t", "no-id": "endpoint=k8s://a.f:80", "not-key-value": "id=a,endpoint",
    "unknown-key": "id=a,endpoint=k8s://a.f:80,port=1", "bad-bool": "id=a,endpoint=k8s://a.f:80,sync=maybe",
    "bad-endpoint": "id=a,endpoint=http//a", "bad-id": "id=A_B,endpoint=k8s://a.f:80",
    "bad-timeout": "id=a,endpoint=k8s://a.f:80,timeout=soon", "empty": ",",
}
for _id, _spec in SERVICE_SPECS.items():
    row(f"service-spec-{_id}", ["config", "render", "--from", "propeller.yaml", "--flyte-version", "1.16",
                                "--service", _spec], "--service" if _id in ("not-key-value", "no-endpoint",
                                                                            "no-id", "unknown-key", "empty")
        else "a")
SERVICES_FILES = {
    "not-a-list": "services: {id: a}\n", "item-not-map": "services: [a]\n",
    "unknown-field": "services:\n  - {id: a, endpoint: 'k8s://a.f:80', port: 1}\n",
    "no-endpoint": "services:\n  - {id: a}\n", "types-map": "services:\n  - {id: a, endpoint: 'k8s://a.f:80', "
                                                             "taskTypes: {t: 1}}\n",
    "scalar": "just text\n", "duplicate-id": "services:\n  - {id: a, endpoint: 'k8s://a.f:80', taskTypes: [t]}\n"
                                              "  - {id: a, endpoint: 'k8s://b.f:80', taskTypes: [u]}\n",
}
for _id, _content in SERVICES_FILES.items():
    row(f"services-file-{_id}", ["config", "render", "--from", "propeller.yaml", "--flyte-version", "1.16",
                                 "--services", "services.yaml"], "a" if _id == "duplicate-id" else "services",
        files={"services.yaml": text(_content)})

# ------------------------------------------------------------------------------------------------ build flags

for _id, _argv, _word in (
        ("context-missing", ["build", "no-such-context"], "no-such-context"),
        ("context-is-file", ["build", "values/base.yaml"], "is a file, not a directory"),
        ("default-context-missing", ["build"], "agent_image"),
        ("file-missing", ["build", "-f", "none/Dockerfile", "agent"], "none/Dockerfile"),
        ("name-bad", ["build", "--name", "Bad_Name", "agent"], "--name 'Bad_Name'"),
        ("name-with-two-contexts", ["build", "--name", "x", "agent", "values"], "--name"),
        ("registry-bad", ["build", "--registry", "HTTP://x", "agent"], "--registry"),
        ("registry-empty-component", ["build", "--registry", "reg..example.com", "agent"], "--registry"),
        ("build-arg-bad", ["build", "--build-arg", "=x", "agent"], "--build-arg"),
        ("build-arg-unset", ["build", "--build-arg", "FA_SURELY_UNSET_VAR", "agent"], "FA_SURELY_UNSET_VAR"),
        ("output-bad", ["build", "-o", "xml", "agent"], "--output"),
        ("push-without-registry", ["build", "--push", "agent"], "--push needs a registry"),
        ("context-name-not-a-repository", ["build", "Bad_Dir"], "Bad_Dir"),
):
    row(f"build-{_id}", _argv, _word, setup=_mkdir("Bad_Dir") if _id == "context-name-not-a-repository" else None)

# ------------------------------------------------------------------------------------------------ kubeconfigs

KUBECONFIGS: dict[str, tuple[Any, str]] = {
    "not-a-mapping": ([1, 2], "is not a kubeconfig"),
    "contexts-map": ({"contexts": {"a": 1}}, "contexts must be a list"),
    "contexts-nameless": ({"contexts": [{"context": {}}]}, "contexts must be a list"),
    "no-contexts": ({"contexts": []}, "has no contexts"),
    "no-current": ({k: v for k, v in kubeconfig_doc().items() if k != "current-context"}, "no current-context"),
    "server-not-url": (kubeconfig_doc("htp//bad url"), "is not a URL"),
    "server-no-host": (kubeconfig_doc("https://"), "is not a URL"),
    "server-ftp": (kubeconfig_doc("ftp://example.com"), "is not a URL"),
}
for _id, (_doc, _word) in KUBECONFIGS.items():
    row(f"kubeconfig-{_id}-config", ["config", "apply", "--kubeconfig", "kubeconfig", "--service",
                                     SVC], "kubeconfig", _word,
        files={"kubeconfig": yaml.safe_dump(_doc).encode()})
    if not _id.startswith("server"):  # deploy reads the server when it connects; the kubeconfig file before
        row(f"kubeconfig-{_id}-status", ["status"], "kubeconfig", _word,
            files={"kubeconfig": yaml.safe_dump(_doc).encode()})

# ------------------------------------------------------------------------------------------------ environment

for _id, _env, _argv, _word in (
        ("KUBECONFIG-missing", {"KUBECONFIG": "nowhere"}, ["status"], "nowhere"),
        ("KUBECONFIG-all-missing", {"KUBECONFIG": "nowhere:neither"}, ["deploy"], "none of these files exists"),
        ("KUBECONFIG-directory", {"KUBECONFIG": "values"}, ["verify"], "is a directory"),
        ("KUBECONFIG-second-broken", {"KUBECONFIG": "kubeconfig:broken.yaml"}, ["status"], "broken.yaml: contexts"),
        ("KUBECONFIG-second-latin1", {"KUBECONFIG": "kubeconfig:latin1.yaml"}, ["deploy"], "latin1.yaml"),
        ("FA_HELM-missing", {"FA_HELM": "/no/such/helm"}, ["deploy"], "/no/such/helm"),
        ("FA_HELM-not-executable", {"FA_HELM": "values/base.yaml"}, ["status"], "values/base.yaml"),
        ("CA_BUNDLE-missing", {"FLYTE_AGENTS_CA_BUNDLE": "nope.pem"}, ["build", "agent"], "nope.pem"),
        ("HOME-sandbox-none", {"KUBECONFIG": ""}, ["deploy", "--sandbox"], "flyte-sandbox"),
):
    row(f"env-{_id}", _argv, _word, env=_env, files={"latin1.yaml": "a: é\n".encode("latin-1"),
                                                     "broken.yaml": b"contexts: {a: 1}\n"})

# dev reads the service's requirements (its local source) and a --config-file through the same reader.
def _local_source(requirements: bytes) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        (root / "agent" / "pkg" / "pkg").mkdir(parents=True)
        (root / "agent" / "pkg" / "pkg" / "__init__.py").write_bytes(b"")
        (root / "agent" / "requirements.txt").write_bytes(requirements)
    return setup


_DEV = ["dev", "--service", "demo-prod", "--python", sys.executable, "--config-file"]
row("dev-config-file-latin1", [*_DEV, "latin1.yaml"], "--config-file latin1.yaml", "not UTF-8",
    files={"latin1.yaml": "a: é\n".encode("latin-1")}, setup=_local_source(b"./pkg\n"))
row("dev-config-file-directory", [*_DEV, "agent"], "--config-file agent", "is a directory",
    setup=_local_source(b"./pkg\n"))
row("dev-requirements-latin1", [*_DEV, "c.yaml"], "requirements.txt", "not UTF-8", files={"c.yaml": b"{}\n"},
    setup=_local_source("./pkg # é\n".encode("latin-1")))

# ------------------------------------------------------------------------------------------------ propeller configs


def _flavors(sections: dict) -> dict[str, tuple[str, list[str]]]:
    """The same config sections as each accepted --from input: file name -> (content, extra args)."""
    inline = yaml.safe_dump(sections)
    return {
        "config-file": (inline, ["--flyte-version", "1.16"]),
        "configmap": (yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": {"name": "flyte-propeller-config", "namespace": "flyte"},
                                      "data": {"enabled_plugins.yaml": inline}}), ["--flyte-version", "1.16"]),
        "flyte-binary-values": (yaml.safe_dump({"configuration": {"inline": sections}}),
                                ["--flyte-version", "1.16", "--flavor", "flyte-binary"]),
        "flyte-core-values": (yaml.safe_dump({"configmap": {"enabled_plugins": sections}}),
                              ["--flyte-version", "1.16", "--flavor", "flyte-core"]),
    }


PROPELLER_BAD: dict[str, tuple[dict, str]] = {
    "tasks-scalar": ({"tasks": "container"}, "tasks"),
    "tasks-list": ({"tasks": ["container"]}, "tasks"),
    "task-plugins-scalar": ({"tasks": {"task-plugins": "x"}}, "task-plugins"),
    "task-plugins-list": ({"tasks": {"task-plugins": ["container"]}}, "task-plugins"),
    "enabled-plugins-map": ({"tasks": {"task-plugins": {"enabled-plugins": {"container": True}}}}, "enabled-plugins"),
    "enabled-plugins-scalar": ({"tasks": {"task-plugins": {"enabled-plugins": "container"}}}, "enabled-plugins"),
    "default-for-task-types-list": ({"tasks": {"task-plugins": {"default-for-task-types": ["container"]}}},
                                    "default-for-task-types"),
    "plugins-list": ({"plugins": ["connector-service"]}, "plugins"),
    "plugins-scalar": ({"plugins": "connector-service"}, "plugins"),
    "plugin-section-list": ({"plugins": {"connector-service": ["x"]}}, "connector-service"),
    "plugin-section-scalar": ({"plugins": {"connector-service": "x"}}, "connector-service"),
}
for _id, (_sections, _word) in PROPELLER_BAD.items():
    for _flavor, (_content, _extra) in _flavors(_sections).items():
        _cmd = ("render", "diff", "lint")[len(ROWS) % 3]
        _service = [] if _cmd == "lint" else ["--service", SVC]
        row(f"propeller-{_flavor}-{_id}", ["config", _cmd, "--from", "in.yaml", *_extra, *_service], "in.yaml",
            _word, files={"in.yaml": text(_content)})


@pytest.fixture()
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    make_workspace(root)
    monkeypatch.chdir(root)
    monkeypatch.setenv("HOME", str(root / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "home" / ".cache"))
    monkeypatch.setenv("KUBECONFIG", str(root / "kubeconfig"))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{root}/no-docker.sock")
    # A helm that must never run: the command has to stop at the bad input before it starts helm.
    helm = root / "home" / "helm"
    helm.write_text("#!/bin/sh\necho 'helm ran: the input was not checked first' >&2\nexit 99\n")
    helm.chmod(0o755)
    monkeypatch.setenv("FA_HELM", str(helm))
    monkeypatch.delenv("FLYTE_AGENTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("FLYTE_AGENTS_BUILD_NETWORK", raising=False)
    return root


def test_the_table_is_big_and_every_row_distinct():
    assert len(ROWS) >= 300, len(ROWS)
    assert len({r.id for r in ROWS}) == len(ROWS)
    inputs = [(r.argv, tuple(sorted(r.files.items())), tuple(sorted(r.env.items())), r.setup is not None, r.id)
              for r in ROWS]
    assert len({i[:3] for i in inputs if not i[3]}) == len([i for i in inputs if not i[3]])


@pytest.mark.parametrize("case", [r.param() for r in ROWS])
def test_bad_input_is_one_error_line_and_changes_nothing(case: Row, workspace: Path, capsys, monkeypatch):
    for rel, content in case.files.items():
        (workspace / rel).write_bytes(content)
    if case.setup:
        case.setup(workspace)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    before = snapshot(workspace)
    code = main(list(case.argv))
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and out == ""
    assert code == case.code, lines[0]
    for word in case.named:
        assert word in lines[0], f"{word!r} not named in: {lines[0]}"
    assert snapshot(workspace) == before, "the command wrote into the workspace"


# ------------------------------------------------------------------------------------------------ heavy imports

PROBE = """
import sys
from flyte_agents.cli.main import main
code = main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r})
print(json.dumps({{"code": code, "heavy": sorted({{m.split('.')[0] for m in heavy}})}}))
"""


def _imports(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> dict:
    code = "import json\n" + PROBE.format(heavy=set(HEAVY))
    proc = subprocess.run([sys.executable, "-c", code, *argv], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_subcommand_help_imports_no_client(command: str, tmp_path: Path):
    """`flyte-agents SUB --help` loads neither the Docker SDK nor kubernetes, grpc, flyteidl or pyhelm3."""
    found = _imports([command, "--help"], tmp_path)
    assert found == {"code": 0, "heavy": []}


@pytest.mark.parametrize("argv", [
    ["deploy", "--timeout", "5x"], ["deploy", "-p", "absent.yaml"], ["build", "no-such-context"],
    ["status", "-n", "Bad_NS"], ["conformance", "--endpoint", "x"], ["verify", "--flyte-version", "1.16xyz"],
    ["config", "render", "--from", "absent.yaml"], ["undeploy", "--timeout", "-1m"],
], ids=lambda a: "-".join(a[:2]))
def test_a_bad_input_exit_imports_no_client(argv: list[str], tmp_path: Path):
    found = _imports(argv, tmp_path)
    assert found == {"code": 2, "heavy": []}
