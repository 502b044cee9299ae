// Package deploy will hold model versions, traffic split, rollout
// strategies (canary, blue-green, shadow, A/B), their analysis, and the
// Kubernetes objects they render to. It is empty until that work lands.
package deploy
