package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/infer-serving/infer"
	"github.com/infer-serving/infer/pkg/deploy/k8s"
)

func newDeployCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deploy",
		Short: "Deployment output for clusters: Kubernetes manifests for a model's versions",
	}
	cmd.AddCommand(newDeployRenderCmd())
	return cmd
}

func newDeployRenderCmd() *cobra.Command {
	o := k8s.Options{}
	var repository, weights, out string
	cmd := &cobra.Command{
		Use:   "render",
		Short: "Write Kubernetes manifests serving a model's versions behind one weighted route",
		Long: `Write the manifests that serve a model's versions on Kubernetes, built from
the typed API objects: per version a Deployment (readiness and liveness on the
protocol's health endpoints, the version's folder of the model repository
mounted from a PersistentVolumeClaim) and a Service; a Gateway API HTTPRoute
that splits the model's unversioned requests by --weights and sends versioned
ones to their version; with --max-replicas, a HorizontalPodAutoscaler per
version on the queue length (infer_queue_requests, through a custom-metrics
adapter). The admin API listens on each pod's loopback (port 8003), which no
Service exposes: reach it with kubectl port-forward, or give
--admin-token-secret to require a token from a Secret on every admin call.

The versions default to those in --repository (default: the bundled models),
the newest taking all traffic and the others kept with none.`,
		Example: `  infer deploy render --model mlp --image registry.example.com/infer:1.0 --weights 1=95,2=5 > mlp.yaml
  infer deploy render --model mlp --image registry.example.com/infer:1.0 --repository ./models --max-replicas 8`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if weights != "" {
				o.Versions, err = parseWeights(weights)
			} else {
				o.Versions, err = repositoryVersions(repository, o.Model)
			}
			if err != nil {
				return err
			}
			var b bytes.Buffer
			if err := k8s.Write(&b, o); err != nil {
				return err
			}
			if out == "" {
				_, err := cmd.OutOrStdout().Write(b.Bytes())
				return err
			}
			if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Model, "model", "m", "", "the model to deploy (required)")
	f.StringVar(&o.Image, "image", "", "the container image holding infer and ONNX Runtime (required)")
	f.StringVar(&weights, "weights", "", "versions and their traffic weights, e.g. 1=95,2=5 (default: the repository's versions, the newest at 100)")
	f.StringVar(&repository, "repository", "", "the model repository the versions are read from (default: the bundled models)")
	f.StringVar(&o.Namespace, "namespace", "", "the namespace of every object (default: none set)")
	f.StringVar(&o.AdminTokenSecret, "admin-token-secret", "", "a Secret whose \"token\" key the servers require on admin calls, which then reach the public ports too (default: none; the admin API stays on each pod's loopback, reached with kubectl port-forward)")
	f.StringVar(&o.Gateway, "gateway", "infer", "the Gateway API Gateway the route attaches to")
	f.StringVar(&o.ModelsClaim, "models-claim", "infer-models", "the PersistentVolumeClaim holding the model repository")
	f.Int32Var(&o.Replicas, "replicas", 1, "pods per version")
	f.Int32Var(&o.MaxReplicas, "max-replicas", 0, "above --replicas: autoscale each version up to this many pods on queue length")
	f.StringVar(&o.QueueTarget, "queue-target", "4", "the autoscaler's target of queued requests per pod")
	f.StringVar(&o.CPU, "cpu", "1", "CPU each pod requests")
	f.StringVar(&o.Memory, "memory", "1Gi", "memory each pod requests")
	f.StringVar(&out, "out", "", "write to this file instead of standard output")
	_ = cmd.MarkFlagRequired("model")
	_ = cmd.MarkFlagRequired("image")
	return cmd
}

// parseWeights reads "1=95,2=5".
func parseWeights(s string) ([]k8s.Version, error) {
	var vs []k8s.Version
	for _, part := range strings.Split(s, ",") {
		v, w, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err1 := strconv.ParseInt(v, 10, 64)
		wt, err2 := strconv.ParseInt(w, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("--weights %q: want version=weight pairs, e.g. 1=95,2=5", s)
		}
		vs = append(vs, k8s.Version{Number: n, Weight: int32(wt)})
	}
	return vs, nil
}

// repositoryVersions lists model's version folders, the newest weighted
// 100 and the others 0.
func repositoryVersions(repository, model string) ([]k8s.Version, error) {
	fsys, where := infer.BundledModels(), infer.BundledModelsName
	if repository != "" {
		fsys, where = os.DirFS(repository), repository
	}
	entries, err := fs.ReadDir(fsys, model)
	if err != nil {
		return nil, fmt.Errorf("model %q in %s: %w (give --weights, or --repository holding %s/<version>/)", model, where, err, model)
	}
	var nums []int64
	for _, e := range entries {
		if n, err := strconv.ParseInt(e.Name(), 10, 64); err == nil && e.IsDir() && n > 0 {
			nums = append(nums, n)
		}
	}
	if len(nums) == 0 {
		return nil, fmt.Errorf("model %q in %s has no version folders", model, where)
	}
	slices.Sort(nums)
	vs := make([]k8s.Version, len(nums))
	for i, n := range nums {
		vs[i] = k8s.Version{Number: n}
	}
	vs[len(vs)-1].Weight = 100
	return vs, nil
}
