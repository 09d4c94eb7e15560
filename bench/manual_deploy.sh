#!/usr/bin/env bash
# The documented manual redeploy of agent services into the Flyte sandbox, as a shell script: the baseline that
# bench/deploy_bench.py times `flyte-agents deploy --sandbox` against. Every step always runs: a script does not
# know what changed, so a redeploy with nothing changed costs as much as one with a change.
#
#   manual_deploy.sh CONTEXT IMAGE ROUTING_FILE DEPLOYMENT...
#
#   CONTEXT       the agent image's build context (agent_image/, with extra/ca-bundle.crt behind a TLS proxy)
#   IMAGE         localhost:30000/REPOSITORY:TAG
#   ROUTING_FILE  propeller's agent routing (YAML), written to key zz-flyte-agents.yaml of the sandbox's
#                 ConfigMap flyte-sandbox-extra-config
#   DEPLOYMENT    the agent Deployments in namespace flyte, each with a container named agent
#
# Environment: FA_KUBECTL (kubectl), KUBECONFIG, DOCKER_HOST from .dev/env.sh; BUILD_NETWORK (default host).
set -euo pipefail
context=$1 image=$2 routing=$3
shift 3
kubectl=(${FA_KUBECTL:-kubectl} --context flyte-sandbox -n flyte)

# DOCKER_BUILDKIT=0: the legacy builder, the one flyte-agents' builds go through (the Docker SDK), so both sides
# share one layer cache.
DOCKER_BUILDKIT=0 docker build -q --network "${BUILD_NETWORK:-host}" -t "$image" "$context" >/dev/null
docker push -q "$image" >/dev/null
for deployment in "$@"; do
    "${kubectl[@]}" set image "deployment/$deployment" "agent=$image" >/dev/null
done
for deployment in "$@"; do
    "${kubectl[@]}" rollout status "deployment/$deployment" --timeout=300s >/dev/null
done
patch=$(python3 -c 'import json, sys; print(json.dumps({"data": {"zz-flyte-agents.yaml": open(sys.argv[1]).read()}}))' \
    "$routing")
"${kubectl[@]}" patch configmap flyte-sandbox-extra-config --type merge -p "$patch" >/dev/null
"${kubectl[@]}" rollout restart deployment/flyte-sandbox >/dev/null
"${kubectl[@]}" rollout status deployment/flyte-sandbox --timeout=300s >/dev/null
