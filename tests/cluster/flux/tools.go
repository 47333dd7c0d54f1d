//go:build tools

// Package tools pins the Flux v2.9.1 controllers the GitOps test runs out of cluster against the
// real control plane: source-controller v1.9.1, kustomize-controller v1.9.1 and helm-controller
// v1.6.1, the three that Flux release ships together. One module for the three, so that one
// `go build` compiles their shared dependencies (Kubernetes, controller-runtime, Helm) once.
package tools

import (
	_ "github.com/fluxcd/helm-controller"
	_ "github.com/fluxcd/kustomize-controller"
	_ "github.com/fluxcd/source-controller"
)
