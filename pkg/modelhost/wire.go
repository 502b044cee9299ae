package modelhost

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Message kinds, the first byte of every message.
const (
	opLoad   byte = 'L' // parent → host: JSON spec; the model's bytes in the region
	opLoaded byte = 'l' // host → parent: JSON answer
	opRun    byte = 'R' // parent → host: a Run
	opResult byte = 'r' // host → parent: a Result
	// opLarge announces that the next message is longer than
	// smallMessage: the kind, then the length as a little-endian uint64.
	opLarge byte = 'B'
)

// Limits a decoder holds a message to, whichever side sent it.
const (
	maxTensors = 4096
	maxRank    = 64
	// maxMessage is the largest message either side sends or accepts, in
	// bytes: a Run of maxTensors tensors of rank 8 fits, and so does a
	// spec of any sane model.
	maxMessage = 1 << 20
	// smallMessage is each connection's receive buffer, in bytes: a Run
	// or Result of a few dozen tensors fits; a longer message (a large
	// spec) is announced first (opLarge) and read into a buffer of its
	// own. A buffer of maxMessage for every host would cost the server a
	// mebibyte of resident memory per loaded version.
	smallMessage = 16 << 10
	largeHeader  = 9 // opLarge and the length
)

// Tensor locates one tensor's bytes in the region: Length bytes from
// Offset, row-major, little-endian.
type Tensor struct {
	Shape          []int64
	Offset, Length int64
}

// Run asks a host to execute one batch. Inputs are in the graph's order.
type Run struct {
	// RegionSize is the region's size as the parent left it, in bytes.
	RegionSize int64
	Inputs     []Tensor
	// Outputs, when the parent knows them (one per graph output, in order),
	// places every output in the region: the runtime writes each straight
	// there. Empty, the host places them, after the inputs.
	Outputs []Tensor
}

// Result is a host's answer to a Run.
type Result struct {
	// RegionSize is the region's size as the host left it, in bytes: a
	// host grows the region when the outputs do not fit.
	RegionSize int64
	// Err, when set, is why the runtime refused the batch; the host lives.
	Err string
	// Input is the host's time to hand the inputs to the runtime, Infer
	// the runtime's Run.
	Input, Infer time.Duration
	Outputs      []Tensor
}

// AppendRun encodes r after dst.
func AppendRun(dst []byte, r *Run) []byte {
	dst = append(dst, opRun)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(r.RegionSize))
	dst = appendTensors(dst, r.Inputs)
	return appendTensors(dst, r.Outputs)
}

// DecodeRun decodes msg into r, reusing r's slices.
func DecodeRun(msg []byte, r *Run) error {
	d := decoder{b: msg}
	if d.byte() != opRun {
		return errors.New("not a run message")
	}
	r.RegionSize = d.int64()
	r.Inputs = d.tensors(r.Inputs, r.RegionSize)
	r.Outputs = d.tensors(r.Outputs, r.RegionSize)
	return d.done()
}

// AppendResult encodes r after dst.
func AppendResult(dst []byte, r *Result) []byte {
	dst = append(dst, opResult)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(r.RegionSize))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(r.Input))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(r.Infer))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(r.Err)))
	dst = append(dst, r.Err...)
	return appendTensors(dst, r.Outputs)
}

// DecodeResult decodes msg into r, reusing r's slices.
func DecodeResult(msg []byte, r *Result) error {
	d := decoder{b: msg}
	if d.byte() != opResult {
		return errors.New("not a result message")
	}
	r.RegionSize = d.int64()
	r.Input = time.Duration(d.int64())
	r.Infer = time.Duration(d.int64())
	r.Err = string(d.bytes(int(d.uint32())))
	r.Outputs = d.tensors(r.Outputs, r.RegionSize)
	return d.done()
}

func appendTensors(dst []byte, ts []Tensor) []byte {
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(ts)))
	for _, t := range ts {
		dst = append(dst, byte(len(t.Shape)))
		for _, d := range t.Shape {
			dst = binary.LittleEndian.AppendUint64(dst, uint64(d))
		}
		dst = binary.LittleEndian.AppendUint64(dst, uint64(t.Offset))
		dst = binary.LittleEndian.AppendUint64(dst, uint64(t.Length))
	}
	return dst
}

// decoder reads a message, remembering the first error: every read after
// it returns zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.fail("message truncated: %d bytes wanted, %d left", n, len(d.b))
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if b := d.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) uint16() uint16 {
	if b := d.bytes(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (d *decoder) uint32() uint32 {
	if b := d.bytes(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (d *decoder) int64() int64 {
	if b := d.bytes(8); b != nil {
		return int64(binary.LittleEndian.Uint64(b))
	}
	return 0
}

// tensors reads a tensor list into dst's storage, checking each against
// the region's size and its shape against its length's bounds.
func (d *decoder) tensors(dst []Tensor, region int64) []Tensor {
	n := int(d.uint16())
	if n > maxTensors {
		d.fail("%d tensors, at most %d", n, maxTensors)
		return dst[:0]
	}
	if cap(dst) < n {
		dst = make([]Tensor, n)
	}
	dst = dst[:n]
	for i := range dst {
		t := &dst[i]
		rank := int(d.byte())
		if rank > maxRank {
			d.fail("tensor %d: rank %d, at most %d", i, rank, maxRank)
			return dst[:0]
		}
		if cap(t.Shape) < rank {
			t.Shape = make([]int64, rank)
		}
		t.Shape = t.Shape[:rank]
		for j := range t.Shape {
			if t.Shape[j] = d.int64(); t.Shape[j] < 0 {
				d.fail("tensor %d: dimension %d is %d", i, j, t.Shape[j])
			}
		}
		t.Offset, t.Length = d.int64(), d.int64()
		if t.Offset < 0 || t.Length < 0 || t.Offset > region || t.Length > region-t.Offset {
			d.fail("tensor %d: bytes [%d, +%d) outside the %d-byte region", i, t.Offset, t.Length, region)
		}
	}
	if d.err != nil {
		return dst[:0]
	}
	return dst
}

func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d bytes after the message", len(d.b))
	}
	return d.err
}

// AppendLoad encodes a load request after dst: spec is the host's JSON
// spec; the model's bytes travel in the region.
func AppendLoad(dst, spec []byte) []byte { return append(append(dst, opLoad), spec...) }

// LoadSpec returns the JSON spec of a load request.
func LoadSpec(msg []byte) ([]byte, error) {
	if len(msg) == 0 || msg[0] != opLoad {
		return nil, errors.New("not a load message")
	}
	return msg[1:], nil
}

// AppendLoaded encodes a host's JSON answer to a load request after dst.
func AppendLoaded(dst, answer []byte) []byte { return append(append(dst, opLoaded), answer...) }

// LoadedAnswer returns the JSON answer of a host to a load request.
func LoadedAnswer(msg []byte) ([]byte, error) {
	if len(msg) == 0 || msg[0] != opLoaded {
		return nil, errors.New("not an answer to a load message")
	}
	return msg[1:], nil
}
