// Package deploy holds what runs Crescendo outside a developer's machine: the
// container image, a compose file, Kubernetes manifests with lag-based
// autoscaling, and a Grafana dashboard. It has no code; its tests check the
// files against the code (settings, ports, routes, subcommands, metrics).
package deploy
