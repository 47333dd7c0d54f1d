//go:build tools

// Package tools pins Helm, the CLI the chart tests run (`helm lint`, `template`, `install`, `upgrade`,
// `uninstall`).
package tools

import _ "helm.sh/helm/v4/cmd/helm"
