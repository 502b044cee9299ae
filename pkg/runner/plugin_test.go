package runner

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	ort "github.com/infer-serving/infer/third_party/onnxruntime_go"
)

// The runtime lists its execution provider devices, the CPU's among them;
// a session made through AppendExecutionProviderV2 with that device
// computes what a plain session does, and gets the provider's options.
func TestExecutionProviderDevices(t *testing.T) {
	devices, err := ort.GetEpDevices()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(devices, func(d ort.EpDevice) bool { return d.EpName == "CPUExecutionProvider" })
	if i < 0 || devices[i].Type != "cpu" {
		t.Fatalf("devices %+v: want CPUExecutionProvider on a cpu device", devices)
	}
	data, err := os.ReadFile(filepath.Join(bundled, "mlp", "1", ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	run := func(devices []ort.EpDevice) []float32 {
		opts, err := ort.NewSessionOptions()
		if err != nil {
			t.Fatal(err)
		}
		defer opts.Destroy()
		if devices != nil {
			if err := opts.AppendExecutionProviderV2(devices, map[string]string{}); err != nil {
				t.Fatal(err)
			}
		}
		s, err := ort.NewDynamicAdvancedSessionWithONNXData(data, []string{"image"}, []string{"probabilities"}, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Destroy()
		x := make([]float32, 2*784)
		for i := range x {
			x[i] = float32(i%97) / 97
		}
		in, err := ort.NewTensor(ort.NewShape(2, 784), x)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Destroy()
		out, err := ort.NewEmptyTensor[float32](ort.NewShape(2, 10))
		if err != nil {
			t.Fatal(err)
		}
		defer out.Destroy()
		if err := s.Run([]ort.Value{in}, []ort.Value{out}); err != nil {
			t.Fatal(err)
		}
		return slices.Clone(out.GetData())
	}
	if got, want := run(devices[i:i+1]), run(nil); !slices.Equal(got, want) {
		t.Fatalf("through the CPU's device %v, plainly %v", got, want)
	}
	// The provider's options reach the session: the runtime keeps them as
	// its config entries.
	opts, err := ort.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer opts.Destroy()
	if err := opts.AppendExecutionProviderV2(devices[i:i+1], map[string]string{"probe": "42"}); err != nil {
		t.Fatal(err)
	}
	if v, err := opts.GetSessionConfigEntry("ep.cpuexecutionprovider.probe"); err != nil || v != "42" {
		t.Fatalf("provider option probe: %q %v, want 42", v, err)
	}
	if err := (&ort.SessionOptions{}).AppendExecutionProviderV2(nil, nil); err == nil {
		t.Fatal("no device: want an error")
	}
}

// GPU devices of the CUDA provider are ordered by the device_id it gives
// them; other providers' devices and the CPU are left out.
func TestCUDADeviceOrder(t *testing.T) {
	gpu := func(id string) ort.EpDevice {
		return ort.EpDevice{EpName: "CUDAExecutionProvider", Type: "gpu", EpMetadata: map[string]string{"device_id": id}}
	}
	all := []ort.EpDevice{{EpName: "CPUExecutionProvider", Type: "cpu"}, gpu("1"), {EpName: "CUDAExecutionProvider", Type: "cpu"}, gpu("0")}
	got := cudaDevices(all)
	if len(got) != 2 || got[0].EpMetadata["device_id"] != "0" || got[1].EpMetadata["device_id"] != "1" {
		t.Fatalf("ordered %+v", got)
	}
	// Without usable ids the listed order stands.
	got = cudaDevices([]ort.EpDevice{gpu("7"), gpu("7")})
	if len(got) != 2 {
		t.Fatalf("kept %+v", got)
	}
}
