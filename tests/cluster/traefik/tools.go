//go:build tools

// Package tools pins Traefik v3, the ingress controller whose IP allowlist the allowlist test sends
// requests through (its kubernetesIngress and kubernetesCRD providers, run on loopback).
package tools

import _ "github.com/traefik/traefik/v3/cmd/traefik"
