package k8s

import (
	"math"

	"k8s.io/apimachinery/pkg/api/resource"
)

// ServerBaseline is the memory a pod needs for infer serve's own process,
// beside its versions' model hosts, in bytes: 96 MiB. Source: infer serve's
// VmRSS on linux/amd64 (Go 1.26, ONNX Runtime 1.24 loaded, mlp in a model
// host) was 64 MiB idle and peaked at 73 MiB under 32 concurrent requests
// (infer bench); the rest is margin for larger request bodies.
const ServerBaseline = 96 << 20

// MemoryHeadroom multiplies a version's measured memory: what a model host
// holds after load and warm-up grows with the batches in flight (mlp's
// host went from 76 MiB idle to 80 MiB at 32 concurrent requests) and with
// longer inputs than warm-up's, which the factor of 1.5 covers.
const MemoryHeadroom = 1.5

// MemoryFor returns the memory request and limit of a pod serving a
// version measured at bytes (the resident memory of its model hosts once
// loaded and warm, as infer serve reports in the repository index):
// ServerBaseline + bytes × MemoryHeadroom, rounded up to a whole MiB, as a
// quantity such as "210Mi".
func MemoryFor(bytes int64) string {
	need := float64(ServerBaseline) + float64(max(bytes, 0))*MemoryHeadroom
	mib := int64(math.Ceil(need / (1 << 20)))
	return resource.NewQuantity(mib<<20, resource.BinarySI).String()
}

// memory is the memory version v's pods request and are limited to: its
// own when measured, else the options'.
func memory(o Options, v Version) resource.Quantity {
	if q, ok := o.VersionMemory[v.Number]; ok {
		return resource.MustParse(q)
	}
	return resource.MustParse(o.Memory)
}
