package main

import (
	"fmt"
	"os"
	"time"

	"github.com/infer-serving/infer/pkg/yamlfile"
)

// serveConfig is infer serve's YAML configuration file: the flags'
// settings, under their names with underscores.
type serveConfig struct {
	ModelRepository    *string        `yaml:"model_repository"`
	Host               *string        `yaml:"host"`
	HTTPPort           *int           `yaml:"http_port"`
	GRPCPort           *int           `yaml:"grpc_port"`
	MetricsPort        *int           `yaml:"metrics_port"`
	MetricsCompat      *string        `yaml:"metrics_compat"`
	MaxBodyBytes       *int64         `yaml:"max_body_bytes"`
	ReadHeaderTimeout  *time.Duration `yaml:"read_header_timeout"`
	ReadTimeout        *time.Duration `yaml:"read_timeout"`
	IdleTimeout        *time.Duration `yaml:"idle_timeout"`
	MaxConnections     *int           `yaml:"max_connections"`
	DefaultTimeout     *time.Duration `yaml:"default_timeout"`
	DrainDelay         *time.Duration `yaml:"drain_delay"`
	GracePeriod        *time.Duration `yaml:"grace_period"`
	AdminTokenFile     *string        `yaml:"admin_token_file"`
	AdminHost          *string        `yaml:"admin_host"`
	AdminPort          *int           `yaml:"admin_port"`
	AdminTrust         *bool          `yaml:"admin_trust_loopback"`
	StateDir           *string        `yaml:"state_dir"`
	Device             *string        `yaml:"device"`
	Isolation          *string        `yaml:"isolation"`
	ModelLoadTimeout   *time.Duration `yaml:"model_load_timeout"`
	StrictModelControl *bool          `yaml:"strict_model_control"`
	ModelControlMode   *string        `yaml:"model_control_mode"`
	KeepAlive          *time.Duration `yaml:"keep_alive"`
	MemoryBudget       *string        `yaml:"memory_budget"`
	RepositoryPollSecs *int           `yaml:"repository_poll_secs"`
	LoadModel          []string       `yaml:"load_model"`
}

// applyConfig sets o from a configuration file, except the settings whose
// flag was given (changed reports that): the command line wins.
func (o *serveOptions) applyConfig(path string, changed func(flag string) bool) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	data, err := yamlfile.ReadAll(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("--config %s: %w", path, err)
	}
	var c serveConfig
	if err := yamlfile.Decode(data, &c); err != nil {
		return fmt.Errorf("--config %s: %w", path, err)
	}
	set := func(flag string, from bool, apply func()) {
		if from && !changed(flag) {
			apply()
		}
	}
	set("model-repository", c.ModelRepository != nil, func() { o.path = *c.ModelRepository })
	set("host", c.Host != nil, func() { o.host = *c.Host })
	set("http-port", c.HTTPPort != nil, func() { o.httpPort = *c.HTTPPort })
	set("grpc-port", c.GRPCPort != nil, func() { o.grpcPort = *c.GRPCPort })
	set("metrics-port", c.MetricsPort != nil, func() { o.metricsPort = *c.MetricsPort })
	set("metrics-compat", c.MetricsCompat != nil, func() { o.metricsCompat = *c.MetricsCompat })
	set("max-body-bytes", c.MaxBodyBytes != nil, func() { o.maxBodyBytes = *c.MaxBodyBytes })
	set("read-header-timeout", c.ReadHeaderTimeout != nil, func() { o.readHeaderTimeout = *c.ReadHeaderTimeout })
	set("read-timeout", c.ReadTimeout != nil, func() { o.readTimeout = *c.ReadTimeout })
	set("idle-timeout", c.IdleTimeout != nil, func() { o.idleTimeout = *c.IdleTimeout })
	set("max-connections", c.MaxConnections != nil, func() { o.maxConnections = *c.MaxConnections })
	set("default-timeout", c.DefaultTimeout != nil, func() { o.defaultTimeout = *c.DefaultTimeout })
	set("drain-delay", c.DrainDelay != nil, func() { o.drainDelay = *c.DrainDelay })
	set("grace-period", c.GracePeriod != nil, func() { o.gracePeriod = *c.GracePeriod })
	set("admin-token-file", c.AdminTokenFile != nil, func() { o.adminTokenFile = *c.AdminTokenFile })
	set("admin-host", c.AdminHost != nil, func() { o.adminHost = *c.AdminHost })
	set("admin-port", c.AdminPort != nil, func() { o.adminPort = *c.AdminPort })
	set("admin-trust-loopback", c.AdminTrust != nil, func() { o.adminTrust = *c.AdminTrust })
	set("state-dir", c.StateDir != nil, func() { o.stateDir = *c.StateDir })
	set("device", c.Device != nil, func() { o.device = *c.Device })
	set("isolation", c.Isolation != nil, func() { o.isolation = *c.Isolation })
	set("model-load-timeout", c.ModelLoadTimeout != nil, func() { o.modelLoadTimeout = *c.ModelLoadTimeout })
	set("strict-model-control", c.StrictModelControl != nil, func() { o.strictModelControl = *c.StrictModelControl })
	set("model-control-mode", c.ModelControlMode != nil, func() { o.modelControlMode = *c.ModelControlMode })
	set("keep-alive", c.KeepAlive != nil, func() { o.keepAlive = *c.KeepAlive })
	set("memory-budget", c.MemoryBudget != nil, func() { o.memoryBudget = *c.MemoryBudget })
	set("repository-poll-secs", c.RepositoryPollSecs != nil, func() { o.pollSecs = *c.RepositoryPollSecs })
	set("load-model", c.LoadModel != nil, func() { o.loadModels = c.LoadModel })
	return nil
}
