#!/usr/bin/env bash
# `make demo`: deploy this repository's agent services (flyte-agents.yaml) into the sandbox stand-in, end to end, and
# run one task of the demo agent's type through the real flytepropeller.
# kwok runs no containers, so hack/agent_pods.py does what a kubelet would while the demo runs: propeller for the
# flyte-sandbox pod, a flytekit server for the built-in agent pod, each agent pod's image as a container on its pod IP.
set -euo pipefail
cd "$(dirname "$0")/.."
. .dev/env.sh
export FA_HELM="${FA_HELM:-$FA_HELM4}"
ca_bundle=()
[ -s /etc/ssl/certs/ca-certificates.crt ] && ca_bundle=(--ca-bundle /etc/ssl/certs/ca-certificates.crt)

.venv/bin/python hack/agent_pods.py run > "${FA_STATE_DIR:-/tmp}/agent_pods.log" 2>&1 &
runner=$!
trap 'kill "$runner" 2>/dev/null; wait "$runner" 2>/dev/null || true' EXIT

.venv/bin/flyte-agents deploy --sandbox --network host "${ca_bundle[@]}"
.venv/bin/flyte-agents verify --sandbox
.venv/bin/flyte-agents status --sandbox
echo "--- one flyte_agents_demo task through flytepropeller (log: ${FA_STATE_DIR:-/tmp}/agent_pods.log)"
.venv/bin/python hack/executions.py --context flyte-sandbox
