package runner

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	ort "github.com/infer-serving/infer/third_party/onnxruntime_go"
)

// CUDAProviderLibrary is the file name of ONNX Runtime's CUDA execution
// provider library, looked for beside the runtime library.
const CUDAProviderLibrary = "libonnxruntime_providers_cuda.so"

// cudaPlugin holds the CUDA execution provider registered as a plugin
// library: the route for runtime builds without the CUDA provider
// interface compiled in, whose CUDA provider library exports the plugin
// entry points (CreateEpFactories) instead. It is registered once, on the
// first session that asks for a GPU that the classic route cannot give.
var cudaPlugin struct {
	once    sync.Once
	devices []ort.EpDevice // the CUDA provider's GPU devices, in order
	err     error
}

// cudaPluginDevices registers the CUDA provider library beside the loaded
// runtime and returns its GPU devices.
func cudaPluginDevices() ([]ort.EpDevice, error) {
	cudaPlugin.once.Do(func() {
		rt := LoadedRuntime()
		if rt == nil {
			cudaPlugin.err = errors.New("ONNX Runtime is not loaded")
			return
		}
		lib := filepath.Join(filepath.Dir(rt.Path), CUDAProviderLibrary)
		if _, err := os.Stat(lib); err != nil {
			cudaPlugin.err = fmt.Errorf("no %s beside %s", CUDAProviderLibrary, rt.Path)
			return
		}
		if err := ort.RegisterExecutionProviderLibrary("CUDA", lib); err != nil {
			cudaPlugin.err = fmt.Errorf("register %s: %w", lib, err)
			return
		}
		all, err := ort.GetEpDevices()
		if err != nil {
			cudaPlugin.err = fmt.Errorf("list execution provider devices: %w", err)
			return
		}
		cudaPlugin.devices = cudaDevices(all)
		var listed []string
		for _, d := range all {
			listed = append(listed, d.EpName+"/"+d.Type)
		}
		slog.Info("CUDA execution provider registered as a plugin library", "library", lib,
			"gpus", len(cudaPlugin.devices), "devices", listed)
	})
	return cudaPlugin.devices, cudaPlugin.err
}

// cudaDevices picks the CUDA provider's GPU devices from all, ordered by
// the device_id the provider gives each (else as listed).
func cudaDevices(all []ort.EpDevice) []ort.EpDevice {
	var gpus []ort.EpDevice
	for _, d := range all {
		if d.EpName == "CUDAExecutionProvider" && d.Type == "gpu" {
			gpus = append(gpus, d)
		}
	}
	ordered := make([]ort.EpDevice, len(gpus))
	for i, d := range gpus {
		id, err := strconv.Atoi(d.EpMetadata["device_id"])
		if err != nil || id < 0 || id >= len(gpus) || ordered[id].EpName != "" {
			return gpus // no usable ids: keep the listed order
		}
		ordered[id] = gpus[i]
	}
	return ordered
}

// appendCUDAPlugin adds GPU dev through the CUDA provider registered as a
// plugin library.
func appendCUDAPlugin(opts *ort.SessionOptions, dev Device, options map[string]string) error {
	gpus, err := cudaPluginDevices()
	if err != nil {
		return err
	}
	if dev.ID >= len(gpus) {
		return fmt.Errorf("the CUDA provider library sees %d GPUs", len(gpus))
	}
	return opts.AppendExecutionProviderV2(gpus[dev.ID:dev.ID+1], options)
}
