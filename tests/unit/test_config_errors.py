"""Malformed input to `flyte-agents config`: one line on stderr naming the problem, exit code 2, nothing changed.

Offline commands only (cluster ones are in tests/integration/test_propeller_config.py, which also checks that
the ConfigMaps stay unchanged).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from flyte_agents.cli.main import main
from flyte_agents.errors import UserError
from flyte_agents.flyte.config import ConfigFile, PropellerConfig
from flyte_agents.flyte.services import AgentService

DATA = Path(__file__).resolve().parent.parent / "data" / "propeller"
SANDBOX = str(DATA / "sandbox-1.16.yaml")
BINARY_VALUES = str(DATA / "flyte-binary-values-1.16.yaml")
GOOD = "id=my-agent,endpoint=k8s://my-agent.flyte:8000,task-types=my_task"

FILES = {
    "bad.yaml": "tasks: [unclosed\n",
    "empty.yaml": "",
    "deployment.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: flytepropeller}\n",
    "ca.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kube-root-ca.crt}\ndata: {ca.crt: x}\n",
    "yml-key.yaml": "kind: ConfigMap\nmetadata: {name: my-config}\ndata: {plugins.yml: 'a: 1'}\n",
    "list-file.yaml": "kind: ConfigMap\nmetadata: {name: flyte-propeller-config}\ndata:\n  core.yaml: '[1, 2]'\n",
    "bad-inner.yaml": "kind: ConfigMap\nmetadata: {name: flyte-propeller-config}\ndata:\n  core.yaml: 'a: [x'\n",
    "no-name.yaml": "kind: ConfigMap\ndata:\n  core.yaml: 'a: 1'\n",
    "helm-chart.yaml": "replicaCount: 3\nimage: {tag: x}\n",
    "map-plugins.yaml": "tasks: {task-plugins: {enabled-plugins: {container: true}}}\nplugins: {k8s: {co-pilot: "
                        "{image: 'cr.flyte.org/flyteorg/flytecopilot:v1.16.8'}}}\n",
    "no-version.yaml": "tasks: {task-plugins: {enabled-plugins: [container, connector-service]}}\n",
    "svc-unknown.yaml": "services:\n  - {id: a, endpoint: 'k8s://a.flyte:8000', taskTypes: [t], port: 8000}\n",
    "svc-bad.yaml": "services: [\n",
    "svc-notlist.yaml": "services: {id: a}\n",
    "svc-noendpoint.yaml": "services:\n  - {id: a, taskTypes: [t]}\n",
    "svc-types-str.yaml": "services:\n  - {id: a, endpoint: 'k8s://a.flyte:8000', taskTypes: {t: 1}}\n",
}

CASES = [
    # (case id, argv after `config`, substring of the one-line error)
    ("bad-yaml", ["render", "--from", "{bad.yaml}", "--service", GOOD], "not valid YAML at line"),
    ("missing-file", ["render", "--from", "{nope.yaml}", "--service", GOOD], "does not exist"),
    ("empty-file", ["render", "--from", "{empty.yaml}", "--service", GOOD], "is empty"),
    ("not-a-configmap", ["render", "--from", "{deployment.yaml}", "--service", GOOD], "Deployment is not a ConfigMap"),
    ("foreign-configmap", ["render", "--from", "{ca.yaml}", "--service", GOOD], "not propeller's config"),
    ("yml-key", ["render", "--from", "{yml-key.yaml}", "--service", GOOD], "'plugins.yml' is not a *.yaml"),
    ("file-is-a-list", ["render", "--from", "{list-file.yaml}", "--service", GOOD, "--flyte-version", "1.16"],
     "holds a list"),
    ("inner-bad-yaml", ["render", "--from", "{bad-inner.yaml}", "--service", GOOD, "--flyte-version", "1.16"],
     "core.yaml (ConfigMap flyte/flyte-propeller-config"),
    ("configmap-without-name", ["render", "--from", "{no-name.yaml}", "--service", GOOD], "without metadata.name"),
    ("unknown-document", ["render", "--from", "{helm-chart.yaml}", "--service", GOOD], "neither propeller config"),
    ("enabled-plugins-map", ["render", "--from", "{map-plugins.yaml}", "--service", GOOD],
     "tasks.task-plugins.enabled-plugins is a map, expected a list of plugin ids"),
    ("no-version-evidence", ["render", "--from", "{no-version.yaml}", "--service", GOOD],
     "do not say the Flyte version"),
    ("unknown-flavor", ["render", "--from", SANDBOX, "--service", GOOD, "--flavor", "k3s"], "--flavor 'k3s'"),
    ("flavor-contradicts-values", ["render", "--from", BINARY_VALUES, "--flyte-version", "1.16", "--service", GOOD,
                                   "--flavor", "flyte-core"], "contradicts"),
    ("values-without-version", ["render", "--from", BINARY_VALUES, "--service", GOOD], "pass --flyte-version"),
    ("mixed-inputs", ["render", "--from", BINARY_VALUES, "--from", SANDBOX, "--flyte-version", "1.16",
                      "--service", GOOD], "mixes Helm values"),
    ("values-for-sandbox", ["render", "--from", SANDBOX, "--service", GOOD, "-o", "values"], "no Helm values"),
    ("bad-version", ["render", "--from", SANDBOX, "--service", GOOD, "--flyte-version", "latest"],
     "not a Flyte version"),
    ("too-old-version", ["render", "--from", SANDBOX, "--service", GOOD, "--flyte-version", "1.12.3"],
     "not supported"),
    ("flyte-2", ["render", "--from", SANDBOX, "--service", GOOD, "--flyte-version", "2.0.0"], "Flyte 2"),
    ("unknown-output", ["render", "--from", SANDBOX, "--service", GOOD, "-o", "toml"], "--output 'toml'"),
    ("no-from", ["render", "--service", GOOD], "--from is required"),
    ("no-services", ["render", "--from", SANDBOX], "no services given"),
    ("task-type-with-spaces", ["diff", "--from", SANDBOX, "--service",
                               "id=a,endpoint=k8s://a.flyte:8000,task-types=my task"], "contains spaces"),
    ("uppercase-task-type", ["diff", "--from", SANDBOX, "--service", "id=a,endpoint=k8s://a.flyte:8000,task-types=MyT"],
     "uppercase"),
    ("endpoint-without-port", ["diff", "--from", SANDBOX, "--service", "id=a,endpoint=k8s://a.flyte,task-types=t"],
     "has no port"),
    ("endpoint-http", ["diff", "--from", SANDBOX, "--service", "id=a,endpoint=http://a.flyte:80,task-types=t"],
     "scheme http://"),
    ("endpoint-no-namespace", ["diff", "--from", SANDBOX, "--service", "id=a,endpoint=k8s://a:8000,task-types=t"],
     "names no namespace"),
    ("duplicate-ids", ["diff", "--from", SANDBOX, "--service", GOOD, "--service",
                       "id=my-agent,endpoint=k8s://b.flyte:8000,task-types=other"], "given twice"),
    ("shared-task-type", ["diff", "--from", SANDBOX, "--service", GOOD, "--service",
                          "id=b,endpoint=k8s://b.flyte:8000,task-types=my_task"], "route at random"),
    ("two-defaults", ["diff", "--from", SANDBOX, "--service", GOOD + ",default", "--service",
                      "id=b,endpoint=k8s://b.flyte:8000,task-types=t2,default"], "mark at most one"),
    ("uppercase-id", ["diff", "--from", SANDBOX, "--service", "id=MyAgent,endpoint=k8s://a.flyte:8000,task-types=t"],
     "use 'myagent'"),
    ("invalid-id", ["diff", "--from", SANDBOX, "--service", "id=my/agent,endpoint=k8s://a.flyte:8000,task-types=t"],
     "is invalid"),
    ("spec-not-key-value", ["diff", "--from", SANDBOX, "--service", "my-agent"], "is not key=value"),
    ("spec-missing-endpoint", ["diff", "--from", SANDBOX, "--service", "id=a,task-types=t"], "endpoint is missing"),
    ("no-task-types", ["diff", "--from", SANDBOX, "--service", "id=a,endpoint=k8s://a.flyte:8000"], "no task types"),
    ("bad-timeout", ["diff", "--from", SANDBOX, "--service", GOOD + ",timeout=10 seconds"], "not a Go duration"),
    ("bad-bool", ["diff", "--from", SANDBOX, "--service", GOOD + ",sync=maybe"], "not a boolean"),
    ("services-unknown-field", ["diff", "--from", SANDBOX, "--services", "{svc-unknown.yaml}"], "unknown field 'port'"),
    ("services-bad-yaml", ["diff", "--from", SANDBOX, "--services", "{svc-bad.yaml}"], "not valid YAML"),
    ("services-not-list", ["diff", "--from", SANDBOX, "--services", "{svc-notlist.yaml}"], "expected a list"),
    ("services-no-endpoint", ["diff", "--from", SANDBOX, "--services", "{svc-noendpoint.yaml}"],
     "endpoint is missing"),
    ("services-types-not-list", ["diff", "--from", SANDBOX, "--services", "{svc-types-str.yaml}"],
     "must be a list"),
    ("lint-bad-output", ["lint", "--from", SANDBOX, "-o", "yaml"], "--output 'yaml'"),
    ("lint-bad-fail-on", ["lint", "--from", SANDBOX, "--fail-on", "info"], "--fail-on 'info' is unknown"),
]


# Wrongly typed propeller config sections: (case id, file text, the key path and kinds the one line names)
WRONG_TYPES = [
    ("tasks-scalar", "tasks: container\n", "tasks is a string ('container'), expected a map"),
    ("task-plugins-scalar", "tasks: {task-plugins: 5}\n", "tasks.task-plugins is a number (5), expected a map"),
    ("task-plugins-list", "tasks: {task-plugins: [container]}\n", "tasks.task-plugins is a list, expected a map"),
    ("enabled-plugins-string", "tasks: {task-plugins: {enabled-plugins: container}}\n",
     "tasks.task-plugins.enabled-plugins is a string ('container'), expected a list of plugin ids"),
    ("enabled-plugins-item-map", "tasks: {task-plugins: {enabled-plugins: [{container: 1}]}}\n",
     "tasks.task-plugins.enabled-plugins[0] is a map, expected a plugin id"),
    ("default-for-task-types-strings", "tasks: {task-plugins: {default-for-task-types: [container]}}\n",
     "tasks.task-plugins.default-for-task-types[0] is a string ('container'), expected a single-key map"),
    ("default-for-task-types-scalar", "Tasks: {Task-Plugins: {Default-For-Task-Types: yes}}\n",
     "Tasks.Task-Plugins.Default-For-Task-Types is a boolean (true), expected a map of task type to plugin id"),
    ("plugins-list", "plugins: [connector-service]\n", "plugins is a list, expected a map of plugin sections"),
    ("plugin-section-list", "plugins: {connector-service: [{defaultConnector: {endpoint: 'a:1'}}]}\n",
     "plugins.connector-service is a list, expected a map of defaultConnector"),
    ("plugin-section-scalar", "plugins: {agent-service: enabled}\n",
     "plugins.agent-service is a string ('enabled'), expected a map of defaultAgent"),
    ("default-deployment-list", "plugins: {connector-service: {defaultConnector: ['k8s://a.b:1']}}\n",
     "plugins.connector-service.defaultConnector is a list, expected a map of endpoint"),
    ("deployments-strings", "plugins: {connector-service: {connectors: [a, b]}}\n",
     "plugins.connector-service.connectors[0] is a string ('a'), expected a single-key map"),
    ("deployments-scalar", "plugins: {connector-service: {connectors: a}}\n",
     "plugins.connector-service.connectors is a string ('a'), expected a map of deployment id to deployment"),
    ("deployment-scalar", "plugins: {connector-service: {connectors: {a: 'k8s://a.b:1'}}}\n",
     "plugins.connector-service.connectors.a is a string ('k8s://a.b:1'), expected a map of endpoint"),
    ("listed-deployment-scalar", "plugins: {connector-service: {connectors: [{a: 'k8s://a.b:1'}]}}\n",
     "plugins.connector-service.connectors[0].a is a string"),
    ("endpoint-map", "plugins: {connector-service: {defaultConnector: {endpoint: {host: a}}}}\n",
     "plugins.connector-service.defaultConnector.endpoint is a map, expected a gRPC target"),
    ("timeouts-scalar", "plugins: {connector-service: {defaultConnector: {timeouts: 10s}}}\n",
     "plugins.connector-service.defaultConnector.timeouts is a string ('10s'), expected a map of RPC name to duration"),
    ("pins-list-of-lists", "plugins: {agent-service: {agentForTaskTypes: [[t, a]]}}\n",
     "plugins.agent-service.agentForTaskTypes[0] is a list, expected a single-key map"),
    ("pin-value-map", "plugins: {agent-service: {agentForTaskTypes: {t: {id: a}}}}\n",
     "plugins.agent-service.agentForTaskTypes.t is a map, expected a deployment id"),
    ("supported-types-map", "plugins: {agent-service: {supportedTaskTypes: {t: 1}}}\n",
     "plugins.agent-service.supportedTaskTypes is a map, expected a list of task types"),
]
# plans whose result propeller would refuse or misroute: refused with the finding and its fix, nothing rendered
FILES["broken-pin.yaml"] = ("tasks: {task-plugins: {enabled-plugins: [container, connector-service]}}\n"
                            "plugins: {connector-service: {connectorForTaskTypes: {their_task: nope}}}\n")
FILES["no-container.yaml"] = "tasks: {task-plugins: {enabled-plugins: [sidecar, connector-service]}}\n"
for _command in ("render", "diff"):
    CASES.append((f"{_command}-refuses-missing-deployment",
                  [_command, "--from", "{broken-pin.yaml}", "--service", GOOD, "--flyte-version", "1.16"],
                  "the planned propeller config would be broken: [missing-deployment] plugins.connector-service."
                  "connectorForTaskTypes routes their_task to 'nope'"))
CASES.append(("render-refuses-no-container-plugin",
              ["render", "--from", "{no-container.yaml}", "--service", GOOD, "--flyte-version", "1.16", "-o", "json"],
              "[no-container-plugin]"))
# Wrongly typed Helm values and manifests --from reads: (case id, file text, extra argv, what the one line names)
WRONG_INPUTS = [
    ("binary-configuration-list", "configuration: [a]\n", ["-o", "values"],
     "configuration is a list, expected a map (inline, connectorService, …)"),
    ("binary-section-list", "configuration: {connectorService: [a]}\nflyteconnector: {enabled: true}\n", [],
     "configuration.connectorService is a list, expected a map of defaultConnector"),
    ("binary-tasks-list", "enabled_plugins: {tasks: [x]}\n", [], "enabled_plugins.tasks is a list, expected a map"),
    ("binary-inline-list", "configuration: {inline: [1]}\n", [], "configuration.inline is a list"),
    ("binary-toggle-scalar", "flyteconnector: 5\nconfiguration: {}\n", [],
     "flyteconnector is a number (5), expected a map (enabled: true|false)"),
    ("binary-extra-rules-scalar", "rbac: {extraRules: 5}\nconfiguration: {}\n", ["-o", "values"],
     "rbac.extraRules is a number (5), expected a list of RBAC rules"),
    ("core-configmap-list", "configmap: [a]\n", [], "configmap is a list, expected a map of propeller config files"),
    ("core-file-scalar", "configmap: {core: 5}\n", [], "configmap.core is a number (5), expected a map"),
    ("core-plugin-config-list", "flyteconnector: {enabled: true, plugin_config: [1]}\nconfigmap: {}\n", [],
     "flyteconnector.plugin_config is a list, expected a map of config sections"),
    ("configmap-metadata-list", "kind: ConfigMap\nmetadata: [a]\ndata: {a.yaml: 'x: 1'}\n", [],
     "metadata is a list, expected a map (name, namespace, …)"),
    ("configmap-name-list", "kind: ConfigMap\nmetadata: {name: [x]}\ndata: {a.yaml: 'x: 1'}\n", [],
     "metadata.name is a list, expected the ConfigMap's name"),
    ("configmap-data-list", "kind: ConfigMap\nmetadata: {name: flyte-propeller-config}\ndata: [a.yaml]\n", [],
     "data is a list, expected a map of file name to text"),
    ("list-items-map", "kind: List\nitems: {a: 1}\n", [], "items is a map, expected a list of objects"),
]
for _case, _text, _extra, _fragment in WRONG_INPUTS:
    FILES[f"{_case}.yaml"] = _text
    CASES.append((f"wrong-type-{_case}", ["render", "--from", f"{{{_case}.yaml}}", "--service", GOOD,
                                          "--flyte-version", "1.16", *_extra], f"{_case}.yaml: {_fragment}"))
for _case, _text, _fragment in WRONG_TYPES:
    FILES[f"{_case}.yaml"] = _text
    CASES.append((f"wrong-type-{_case}", ["render", "--from", f"{{{_case}.yaml}}", "--service", GOOD,
                                          "--flyte-version", "1.16"], f"{_case}.yaml): {_fragment}"))


def _digest(paths: list[Path]) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.exists()}


@pytest.mark.parametrize("argv, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_input_gives_one_line_and_exit_2(tmp_path, capsys, argv, fragment):
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    args = ["config"] + [str(tmp_path / a[1:-1]) if a.startswith("{") else a for a in argv]
    inputs = [tmp_path / n for n in FILES] + [Path(SANDBOX), Path(BINARY_VALUES)]
    before = _digest(inputs)
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert fragment in lines[0]
    assert "Traceback" not in err
    assert _digest(inputs) == before  # nothing was changed
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES)


def test_there_are_at_least_25_malformed_inputs():
    assert len(CASES) >= 25


@pytest.mark.parametrize("make, fragment", [
    (lambda: PropellerConfig((ConfigFile("a.yaml", ""), ConfigFile("a.yaml", "")),), "given twice"),
    (lambda: PropellerConfig((ConfigFile("a.yml", ""),)), "does not end in .yaml"),
    (lambda: AgentService("", "k8s://a.b:1", ("t",)).validate(), "id is empty"),
    (lambda: AgentService("a", "k8s://a.b:1", ("t", "t")).validate(), "lists a task type twice"),
    (lambda: AgentService("a", "k8s://a.b:1", ("",)).validate(), "empty"),
    (lambda: AgentService("a", "k8s://a.b:1", ("t",), timeout="soon").validate(), "not a Go duration"),
])
def test_pure_module_rejects_malformed_values(make, fragment):
    with pytest.raises(UserError, match=fragment) as info:
        make()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("source, fail_on, code", [
    (SANDBOX, None, 0),  # the 1.16 sandbox has warnings only (ignored per-RPC timeouts)
    (SANDBOX, "error", 0),
    (SANDBOX, "warning", 17),
    (SANDBOX, "never", 0),
    ("{no-container.yaml}", None, 17),
    ("{no-container.yaml}", "never", 0),
])
def test_lint_exit_code_follows_fail_on(tmp_path, capsys, source, fail_on, code):
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    source = str(tmp_path / source[1:-1]) if source.startswith("{") else source
    args = ["config", "lint", "--from", source, "--flyte-version", "1.16.8"]
    assert main(args + (["--fail-on", fail_on] if fail_on else [])) == code
    out, err = capsys.readouterr()
    assert "finding(s) for Flyte 1.16.8" in out  # the findings are printed whatever the exit code
    if code:
        assert len(err.splitlines()) == 1 and err.startswith("error: ") and f"--fail-on {fail_on or 'error'}" in err
    else:
        assert err == ""
