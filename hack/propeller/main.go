// flytepropeller with only the plugins the Flyte sandbox enables (container/sidecar via pod, k8s-array, echo).
// The stock cmd/controller links every plugin, and the spark one needs a module version the proxy refuses. The
// agent and connector plugins come with the task handler. Built by hack/build-propeller.sh.
package main

import (
	"github.com/flyteorg/flyte/flytepropeller/cmd/controller/cmd"
	_ "github.com/flyteorg/flyte/flyteplugins/go/tasks/plugins/array/k8s"
	_ "github.com/flyteorg/flyte/flyteplugins/go/tasks/plugins/k8s/pod"
	_ "github.com/flyteorg/flyte/flyteplugins/go/tasks/plugins/testing"
)

func main() {
	cmd.Execute()
}
