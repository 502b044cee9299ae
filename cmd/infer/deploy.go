package main

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/infer-serving/infer"
	"github.com/infer-serving/infer/pkg/deploy/k8s"
	"github.com/infer-serving/infer/pkg/runner"
)

func newDeployCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deploy",
		Short: "Deployment output for clusters: Kubernetes manifests for a model's versions",
	}
	cmd.AddCommand(newDeployRenderCmd(g))
	return cmd
}

func newDeployRenderCmd(g *globalOptions) *cobra.Command {
	o := k8s.Defaults("", "")
	var repository, weights, out string
	var modelFiles []string
	cmd := &cobra.Command{
		Use:   "render",
		Short: "Write Kubernetes manifests serving a model's versions behind weighted routes",
		Long: `Write the manifests that serve a model's versions on Kubernetes, built from
the typed API objects: per version a Deployment and a Service; Gateway API
routes that split the model's unversioned requests (/v2/models/<model>, the
OpenAI-compatible /v1, and gRPC through a GRPCRoute) by --weights and send
versioned ones to their version.

Each version's pods mount, from the PersistentVolumeClaim --models-claim,
the files beside the model's versions (config.yaml, a tokenizer's
vocab.txt: read from --repository, or named by --model-files) and their
version's folder, laid out as in the repository. A startup probe on
readiness gives a slow model time to load and warm; a pre-stop wait lets
endpoints drop a terminating pod before infer drains, and the termination
grace period covers the wait, the drain delay and the grace period. Pods run
as non-root under the restricted Pod Security Standard. With --repository,
each version is loaded as infer serve loads it (in model hosts) and its
pods request, and are limited to, the server's own 96 MiB plus 1.5 times
the version's measured memory, printed on standard error; --memory sets
the figure instead.

--autoscaler keda scales each version with a KEDA ScaledObject on waiting
work (queued requests plus sequences waiting in a text generator) and on the
oldest queued request's age, read from --prometheus; --replicas 0 then scales
an idle version to zero, woken by --demand-query. --autoscaler hpa is the
HorizontalPodAutoscaler alternative (Pods metrics through a custom-metrics
adapter). --spot tolerates and prefers spot nodes, spreads pods over nodes,
and adds a PodDisruptionBudget.

The admin API listens on each pod's loopback (port 8003), which no Service
exposes: reach it with kubectl port-forward, or give --admin-token-secret to
require a token from a Secret on every admin call.

The versions default to those in --repository (default: the bundled models),
the newest taking all traffic and the others kept with none.`,
		Example: `  infer deploy render --model mlp --image registry.example.com/infer:1.0 --weights 1=95,2=5 > mlp.yaml
  infer deploy render --model tiny-gpt --image registry.example.com/infer:1.0 --autoscaler keda --max-replicas 8 --spot`,
		Annotations: map[string]string{quietLogs: "warn"}, // the versions it loads to measure are no news
		Args:        cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if weights != "" {
				if o.Versions, err = parseWeights(weights); err == nil {
					warnMissingVersions(cmd.ErrOrStderr(), repository, o.Model, o.Versions)
				}
			} else {
				o.Versions, err = repositoryVersions(repository, o.Model)
			}
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("model-files") {
				o.ModelFiles = modelFiles
			} else if o.ModelFiles, err = repositoryModelFiles(repository, o.Model); err != nil {
				return err
			}
			if repository != "" && !cmd.Flags().Changed("memory") {
				if o.VersionMemory, err = measureVersions(g, repository, o.Model, o.Versions, cmd.ErrOrStderr()); err != nil {
					return err
				}
			}
			if o.Autoscaler == "none" {
				o.Autoscaler = k8s.NoAutoscaler
			} else if o.Autoscaler == "" && o.MaxReplicas > 0 {
				o.Autoscaler = k8s.HPA
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
	f.StringVar(&repository, "repository", "", "the model repository the versions and the model's files are read from (default: the bundled models)")
	f.StringSliceVar(&modelFiles, "model-files", nil, "the files beside the model's version folders that every pod mounts, e.g. config.yaml,vocab.txt (default: those in --repository)")
	f.StringVar(&o.Namespace, "namespace", "", "the namespace of every object (default: none set)")
	f.StringVar(&o.AdminTokenSecret, "admin-token-secret", "", "a Secret whose \"token\" key the servers require on admin calls, which then reach the public ports too (default: none; the admin API stays on each pod's loopback, reached with kubectl port-forward)")
	f.StringVar(&o.Gateway, "gateway", o.Gateway, "the Gateway API Gateway the routes attach to")
	f.StringVar(&o.Hostname, "hostname", "", "the routes' hostname; /v1 and gRPC name the model in the body, so models sharing a Gateway need one each (default: any)")
	f.StringVar(&o.ModelsClaim, "models-claim", o.ModelsClaim, "the PersistentVolumeClaim holding the model repository")
	f.Int32Var(&o.Replicas, "replicas", o.Replicas, "pods per version; with an autoscaler its minimum (0 with keda: scale to zero when idle)")
	f.StringVar(&o.Autoscaler, "autoscaler", "", "none, keda (a ScaledObject on waiting work and queue age) or hpa (a HorizontalPodAutoscaler on Pods metrics) (default: hpa with --max-replicas, else none)")
	f.Int32Var(&o.MaxReplicas, "max-replicas", 0, "the autoscaler's maximum pods per version")
	f.StringVar(&o.WaitingTarget, "waiting-target", o.WaitingTarget, "waiting work per pod the autoscaler holds: queued requests plus sequences waiting in a text generator")
	f.StringVar(&o.WaitingTarget, "queue-target", o.WaitingTarget, "the former name of --waiting-target")
	_ = f.MarkDeprecated("queue-target", "use --waiting-target")
	f.DurationVar(&o.QueueAgeTarget, "queue-age-target", o.QueueAgeTarget, "keda: add pods while the oldest queued request has waited longer than this")
	f.StringVar(&o.Activation, "activation", o.Activation, "keda with --replicas 0: the demand above which a version scaled to zero gets a pod")
	f.StringVar(&o.DemandQuery, "demand-query", "", "keda with --replicas 0: a PromQL query of requests arriving for the model outside its pods (the Gateway's request rate for the route)")
	f.StringVar(&o.Prometheus, "prometheus", o.Prometheus, "keda: the Prometheus that scrapes the pods")
	f.BoolVar(&o.Spot, "spot", false, "run on spot nodes: tolerate and prefer them, spread pods over nodes, add a PodDisruptionBudget")
	f.DurationVar(&o.PreStop, "pre-stop", o.PreStop, "how long a terminating pod keeps serving before infer drains, so endpoints drop it first")
	f.DurationVar(&o.DrainDelay, "drain-delay", o.DrainDelay, "infer serve's --drain-delay in the pods")
	f.DurationVar(&o.GracePeriod, "grace-period", o.GracePeriod, "infer serve's --grace-period in the pods; the termination grace period covers it")
	f.StringVar(&o.CPU, "cpu", o.CPU, "CPU each pod requests (no limit: throttling only adds latency)")
	f.StringVar(&o.Memory, "memory", o.Memory, "memory each pod requests, and its limit (default with --repository: measured per version)")
	f.StringVar(&out, "out", "", "write to this file instead of standard output")
	addRuntimeFlag(cmd, g)
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

// warnMissingVersions says which weighted versions have no folder in the
// repository (the bundled models without --repository), when it holds the
// model at all: each version's Deployment mounts NAME/VERSION, which the
// volume must then hold, or its pods never become ready.
func warnMissingVersions(w io.Writer, repository, model string, versions []k8s.Version) {
	held, err := repositoryVersions(repository, model)
	if err != nil {
		return // the model is not here: the manifests are for a volume elsewhere
	}
	_, where := modelRepository(repository)
	for _, v := range versions {
		if !slices.ContainsFunc(held, func(h k8s.Version) bool { return h.Number == v.Number }) {
			fmt.Fprintf(w, "warning: version %d of %q has no folder in %s: its Deployment mounts %s/%d, which the model volume must hold\n", v.Number, model, where, model, v.Number)
		}
	}
}

// repositoryModelFiles lists the files beside model's version folders
// (config.yaml, vocab.txt).
func repositoryModelFiles(repository, model string) ([]string, error) {
	fsys, where := modelRepository(repository)
	entries, err := fs.ReadDir(fsys, model)
	if err != nil {
		return nil, fmt.Errorf("model %q in %s: %w (give --repository holding %s/, or --model-files naming the files beside its versions, e.g. config.yaml,vocab.txt)", model, where, err, model)
	}
	var files []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			files = append(files, e.Name())
		}
	}
	return files, nil
}

func modelRepository(repository string) (fs.FS, string) {
	if repository != "" {
		return os.DirFS(repository), repository
	}
	return infer.BundledModels(), infer.BundledModelsName
}

// repositoryVersions lists model's version folders, the newest weighted
// 100 and the others 0.
func repositoryVersions(repository, model string) ([]k8s.Version, error) {
	fsys, where := modelRepository(repository)
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

// measureVersions loads model's versions from repository as infer serve
// does (each in model hosts unless its config.yaml says otherwise), reads
// each one's measured memory from the repository index, and returns the
// memory its pods request and are limited to (k8s.MemoryFor), by version
// number. It says what it measured on w.
func measureVersions(g *globalOptions, repository, model string, versions []k8s.Version, w io.Writer) (map[int64]string, error) {
	if _, err := runner.InitRuntime(g.onnxRuntimeLib); err != nil {
		return nil, fmt.Errorf("measuring %s's memory: %w (or give --memory)", model, err)
	}
	repo, err := runner.OpenFS(oneModel{os.DirFS(repository), model}, repository, runner.LoadOptions{Isolation: runner.IsolationProcess})
	if repo == nil {
		return nil, fmt.Errorf("measuring %s's memory: %w (or give --memory)", model, err)
	}
	defer repo.Close()
	index := map[int64]runner.VersionStatus{}
	for _, s := range repo.Index() {
		index[s.Version] = s
	}
	sizes := map[int64]string{}
	for _, v := range versions {
		s, ok := index[v.Number]
		switch {
		case !ok:
			return nil, fmt.Errorf("model %q version %d: not in %s, so its memory cannot be measured; give --memory", model, v.Number, repository)
		case s.State != runner.StateReady:
			return nil, fmt.Errorf("model %q version %d did not load, so its memory cannot be measured: %s; fix it or give --memory", model, v.Number, s.Reason)
		}
		sizes[v.Number] = k8s.MemoryFor(s.Bytes)
		fmt.Fprintf(w, "%s version %d: measured %s (%s isolation); memory request and limit %s + %g × %s = %s\n",
			model, v.Number, runner.FormatBytes(s.Bytes), s.Isolation, runner.FormatBytes(k8s.ServerBaseline), k8s.MemoryHeadroom, runner.FormatBytes(s.Bytes), sizes[v.Number])
	}
	return sizes, nil
}

// oneModel is a repository folder with only one model's folder listed,
// so that measuring it loads nothing else.
type oneModel struct {
	fs.FS
	model string
}

// ReadDir implements fs.ReadDirFS.
func (m oneModel) ReadDir(name string) ([]fs.DirEntry, error) {
	entries, err := fs.ReadDir(m.FS, name)
	if name != "." {
		return entries, err
	}
	return slices.DeleteFunc(entries, func(e fs.DirEntry) bool { return e.Name() != m.model }), err
}
