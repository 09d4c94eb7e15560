"""Run one flytekit task through the stand-in's real flytepropeller, without flyteadmin.

The task becomes a one-node workflow (its inputs are the workflow's inputs, its outputs the workflow's outputs),
serialised by flytekit (get_serializable) into a WorkflowClosure; propeller's own compiler, `kubectl-flyte create`,
turns it and the inputs into a FlyteWorkflow object; the helper waits for the workflow's phase and reads its
outputs from propeller's local blob store (hack/propeller_pod.py). Test and demo infrastructure only.
"""
from __future__ import annotations

import subprocess
import tempfile
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import propeller_pod

GROUP, VERSION, PLURAL = "flyte.lyft.com", "v1alpha1", "flyteworkflows"
# propeller's WorkflowPhase (pkg/apis/flyteworkflow/v1alpha1/iface.go)
PHASES = ["READY", "RUNNING", "SUCCEEDING", "SUCCEEDED", "FAILING", "FAILED", "ABORTED", "HANDLING_FAILURE_NODE"]
TERMINAL = {"SUCCEEDED", "FAILED", "ABORTED"}


@dataclass(frozen=True)
class Execution:
    name: str
    phase: str  # a PHASES name, or "TIMED_OUT" when the workflow reached no terminal phase in time
    message: str  # propeller's message for the workflow (and the node's, when it failed)
    outputs: dict  # workflow output name -> Python value (SUCCEEDED only)
    seconds: float  # from `kubectl-flyte create` to the terminal phase


def closure_and_inputs(task, inputs: dict):
    """(WorkflowClosure, LiteralMap) protos of a one-node workflow around `task`."""
    from flyteidl.core import workflow_closure_pb2
    from flytekit import FlyteContextManager
    from flytekit.configuration import ImageConfig, SerializationSettings
    from flytekit.core.type_engine import TypeEngine
    from flytekit.core.workflow import ImperativeWorkflow
    from flytekit.tools.translator import get_serializable

    workflow = ImperativeWorkflow(name=f"{task.name}.wf")
    types = task.python_interface.inputs
    for name in types:
        workflow.add_workflow_input(name, types[name])
    node = workflow.add_entity(task, **{name: workflow.inputs[name] for name in types})
    for name, python_type in task.python_interface.outputs.items():
        workflow.add_workflow_output(name, node.outputs[name], python_type=python_type)
    entities = OrderedDict()
    spec = get_serializable(entities, SerializationSettings(ImageConfig.auto_default_image()), workflow)
    tasks = [e.template.to_flyte_idl() for e in entities.values() if hasattr(e, "template") and
             e.template.__class__.__name__ == "TaskTemplate"]
    closure = workflow_closure_pb2.WorkflowClosure(workflow=spec.template.to_flyte_idl(), tasks=tasks)
    literals = TypeEngine.dict_to_literal_map(FlyteContextManager.current_context(), inputs, types)
    return closure, literals.to_flyte_idl()


class Propeller:
    """Executions on the propeller of a kube context (the stand-in's flyte-sandbox pod, run by hack/agent_pods.py)."""

    def __init__(self, api_client, kubectl_flyte: str, kubeconfig: str, context: str,
                 namespace: str = propeller_pod.EXECUTION_NAMESPACE) -> None:
        from kubernetes import client

        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.kubectl_flyte, self.kubeconfig, self.context = kubectl_flyte, kubeconfig, context
        self.namespace = namespace

    def ensure_namespace(self) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.core.create_namespace({"metadata": {"name": self.namespace}})
        except ApiException as err:
            if err.status != 409:
                raise

    def run(self, task, inputs: dict | None = None, timeout: float = 180) -> Execution:
        closure, literals = closure_and_inputs(task, inputs or {})
        name = f"fa{uuid.uuid4().hex[:12]}"  # an execution id: a DNS label, like flyteadmin's
        self.ensure_namespace()
        with tempfile.TemporaryDirectory() as tmp:
            closure_file, inputs_file = Path(tmp) / "closure.pb", Path(tmp) / "inputs.pb"
            closure_file.write_bytes(closure.SerializeToString())
            inputs_file.write_bytes(literals.SerializeToString())
            t0 = time.monotonic()
            proc = subprocess.run([self.kubectl_flyte, "create", "--kubeconfig", self.kubeconfig, "--context",
                                   self.context, "-n", self.namespace, "-p", str(closure_file), "-i",
                                   str(inputs_file), "--execution-id", name], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"kubectl-flyte create failed: {proc.stderr.strip() or proc.stdout.strip()}")
        try:
            workflow = self._wait(name, timeout)
            seconds = time.monotonic() - t0
            return self._result(name, workflow, seconds, task)
        finally:
            self.delete(name)

    def _wait(self, name: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            workflow = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
            if phase_of(workflow) in TERMINAL or time.monotonic() > deadline:
                return workflow
            time.sleep(0.5)

    def _result(self, name: str, workflow: dict, seconds: float, task) -> Execution:
        status = workflow.get("status") or {}
        phase = phase_of(workflow)
        if phase not in TERMINAL:
            phase = "TIMED_OUT"
        messages = [status.get("message", "")] + [f"{node}: {s['message']}" for node, s in
                                                 (status.get("nodeStatus") or {}).items() if s.get("message")]
        outputs = {}
        if phase == "SUCCEEDED" and status.get("outputRef"):
            outputs = read_outputs(status["outputRef"], task.python_interface.outputs)
        return Execution(name, phase, "; ".join(m for m in messages if m), outputs, seconds)

    def delete(self, name: str) -> None:
        """Delete the FlyteWorkflow; propeller clears its finalizer once done, or we do if it never will."""
        from kubernetes.client.exceptions import ApiException

        try:
            self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name,
                                                       {"metadata": {"finalizers": None}})
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
        except ApiException as err:
            if err.status != 404:
                raise


def phase_of(workflow: dict) -> str:
    return PHASES[int((workflow.get("status") or {}).get("phase", 0))]


def read_outputs(reference: str, types: dict) -> dict:
    """A LiteralMap at a DataReference of propeller's local store, as Python values of the given types."""
    from flyteidl.core import literals_pb2
    from flytekit import FlyteContextManager
    from flytekit.core.type_engine import TypeEngine
    from flytekit.models.literals import LiteralMap

    scheme, _, path = reference.partition("://")
    assert scheme == "file", f"not in propeller's local store: {reference}"
    proto = literals_pb2.LiteralMap()
    proto.ParseFromString((propeller_pod.STORAGE / path).read_bytes())
    ctx = FlyteContextManager.current_context()
    return TypeEngine.literal_map_to_kwargs(ctx, LiteralMap.from_flyte_idl(proto), types)


def main() -> int:
    """`make demo`'s last step: one task of the demo agent's type through propeller; phase, output, who ran it."""
    import argparse
    import os
    import sys

    from kubernetes import client, config

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--context", default="flyte-sandbox")
    parser.add_argument("--namespace", default="flyte", help="where the agent services run")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "agent_image" / "flyte_agents_demo"))
    import flyte_agents_demo

    api = config.new_client_from_config(context=args.context)
    propeller = Propeller(api, os.environ["FA_KUBECTL_FLYTE"], os.environ["KUBECONFIG"], args.context)
    execution = propeller.run(flyte_agents_demo.DemoTask(name="demo.greet"))
    print(f"execution {execution.name} ({flyte_agents_demo.TASK_TYPE}): {execution.phase} in "
          f"{execution.seconds:.1f}s{': ' + execution.message if execution.phase != 'SUCCEEDED' else ''}")
    if execution.phase != "SUCCEEDED":
        return 1
    greeting = execution.outputs["greeting"]
    print(f"output greeting: {greeting}")
    server = greeting.split(" from ", 1)[1].split(" ", 1)[0]  # the agent's hostname: its pod's name
    pod = client.CoreV1Api(api).read_namespaced_pod(server, args.namespace)
    service = (pod.metadata.labels or {}).get("app.kubernetes.io/instance", "?")
    print(f"ran on: service {service} (pod {args.namespace}/{server})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
