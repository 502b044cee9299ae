package onnxruntime_go

// This file was added to the library by the infer project: the device
// listing and explicit selection of execution providers that ONNX Runtime
// 1.22 introduced, so that a plugin execution provider library (registered
// with RegisterExecutionProviderLibrary) can be used by a session.

/*
#include "onnxruntime_wrapper.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// EpDevice is an execution provider paired with a hardware device it can
// run on, as GetEpDevices lists them.
type EpDevice struct {
	d *C.OrtEpDevice
	// EpName names the execution provider, such as "CPUExecutionProvider"
	// or "CUDAExecutionProvider".
	EpName string
	// Type is the hardware device's kind: "cpu", "gpu" or "npu".
	Type string
	// EpMetadata and DeviceMetadata are what the provider and ONNX Runtime
	// say of the pairing and of the hardware device.
	EpMetadata, DeviceMetadata map[string]string
}

// GetEpDevices lists the execution provider devices of the environment:
// those of the built-in providers and of every registered provider library.
func GetEpDevices() ([]EpDevice, error) {
	if !IsInitialized() {
		return nil, NotInitializedError
	}
	var list **C.OrtEpDevice
	var n C.size_t
	if status := C.GetEpDevicesWrapper(ortEnv, (***C.OrtEpDevice)(unsafe.Pointer(&list)), &n); status != nil {
		return nil, statusToError(status)
	}
	if n == 0 {
		return nil, nil
	}
	devices := unsafe.Slice(list, int(n))
	out := make([]EpDevice, len(devices))
	for i, d := range devices {
		kind := "unknown"
		switch C.EpDeviceHardwareType(d) {
		case C.OrtHardwareDeviceType_CPU:
			kind = "cpu"
		case C.OrtHardwareDeviceType_GPU:
			kind = "gpu"
		case C.OrtHardwareDeviceType_NPU:
			kind = "npu"
		}
		out[i] = EpDevice{d: d, EpName: C.GoString(C.EpDeviceEpName(d)), Type: kind,
			EpMetadata: epMetadata(d, 0), DeviceMetadata: epMetadata(d, 1)}
	}
	return out, nil
}

func epMetadata(d *C.OrtEpDevice, which C.int) map[string]string {
	var keys, values **C.char
	var n C.size_t
	C.EpDeviceMetadata(d, which, (***C.char)(unsafe.Pointer(&keys)), (***C.char)(unsafe.Pointer(&values)), &n)
	m := make(map[string]string, int(n))
	if n == 0 {
		return m
	}
	ks, vs := unsafe.Slice(keys, int(n)), unsafe.Slice(values, int(n))
	for i := range ks {
		m[C.GoString(ks[i])] = C.GoString(vs[i])
	}
	return m
}

// AppendExecutionProviderV2 adds the execution provider of devices (all of
// one provider) to the session options, with provider options.
func (o *SessionOptions) AppendExecutionProviderV2(devices []EpDevice, options map[string]string) error {
	if len(devices) == 0 {
		return fmt.Errorf("no execution provider device given")
	}
	ptrs := C.malloc(C.size_t(len(devices)) * C.size_t(unsafe.Sizeof(uintptr(0))))
	defer C.free(ptrs)
	list := unsafe.Slice((**C.OrtEpDevice)(ptrs), len(devices))
	for i, d := range devices {
		list[i] = d.d
	}
	keys, values := mapToCStrings(options)
	defer freeCStrings(keys)
	defer freeCStrings(values)
	var kp, vp **C.char
	if len(keys) > 0 {
		kp, vp = &keys[0], &values[0]
	}
	status := C.AppendExecutionProviderV2(o.o, ortEnv, (**C.OrtEpDevice)(ptrs), C.size_t(len(devices)), kp, vp, C.size_t(len(keys)))
	if status != nil {
		return statusToError(status)
	}
	return nil
}
