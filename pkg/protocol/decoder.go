package protocol

import "math"

// RequestDecoder decodes infer requests as DecodeRequest does, into
// memory it keeps from one request to the next: the request and its
// tensors, their shapes, the parameters' maps, the data of JSON tensors,
// and the names and datatypes it has seen. A front end that keeps one
// decoder per call it pools decodes a request that is like the last with
// no allocation at all.
//
// The request Decode returns, with everything it holds, is valid until
// the decoder's next Decode; binary tensor data aliases the body, as
// DecodeRequest's does. The zero value is ready. A decoder is not safe
// for concurrent use.
type RequestDecoder struct {
	s   scanner
	r   scannedRequest
	req InferRequest
}

// Reset drops the decoder's references to the last request and its body,
// keeping only the memory it reuses: a pooled decoder is reset as its
// call ends, so that it pins no body and no client's values while it
// waits in its pool. Decode resets first.
func (d *RequestDecoder) Reset() {
	d.s.b, d.s.i = nil, 0
	d.s.mem.forget()
	d.r = scannedRequest{Inputs: emptied(d.r.Inputs), Outputs: emptied(d.r.Outputs)}
	d.req = InferRequest{Inputs: emptied(d.req.Inputs), Outputs: emptied(d.req.Outputs)}
}

// emptied returns s with no elements, its array kept unless it holds more
// than maxKept, cleared so that it refers to nothing.
func emptied[T any](s []T) []T {
	if cap(s) > maxKept {
		return nil
	}
	clear(s[:cap(s)])
	return s[:0]
}

// Memory the decoder keeps is bounded, so that one large request does not
// pin its memory for the rest of the decoder's life: lists, maps and
// buffers past the first maxKept, a parameters map of more than
// maxKeptKeys keys, data buffers past maxKeptBytes in all, a shape arena
// of more than maxKeptInts dimensions and strings over maxKeptText bytes
// are dropped after use.
const (
	maxKept      = 16
	maxKeptKeys  = 64
	maxKeptBytes = 1 << 20
	maxKeptInts  = 1 << 10
	maxKeptText  = 64
)

// scanMemory is what a scanner reuses from one text to the next: maps
// for parameters objects, an arena for shapes, buffers for tensor data,
// strings seen, and boxed numbers (an any holding a float64 costs an
// allocation). A zero scanMemory allocates afresh, as a one-shot scanner
// must.
type scanMemory struct {
	maps  []Parameters
	nmaps int
	ints  []int64
	bufs  [][]byte
	nbufs int
	strs  [8]string
	nstrs int
	nums  [4]any
	nnums int
}

// forget makes every map, buffer and dimension handed out reusable, for
// the next text: what they held must no longer be referred to.
func (m *scanMemory) forget() {
	m.nmaps, m.nbufs = 0, 0
	if len(m.maps) > maxKept {
		clear(m.maps[maxKept:])
		m.maps = m.maps[:maxKept]
	}
	for i, p := range m.maps {
		if len(p) > maxKeptKeys {
			m.maps[i] = Parameters{} // clearing keeps a map's room for its keys
		} else {
			clear(p)
		}
	}
	kept := 0
	for i, b := range m.bufs {
		if kept += cap(b); kept > maxKeptBytes || i == maxKept {
			clear(m.bufs[i:])
			m.bufs = m.bufs[:i]
			break
		}
	}
	if cap(m.ints) > maxKeptInts {
		m.ints = nil
	}
	m.ints = m.ints[:0]
}

// parametersMap returns an empty map for a parameters object.
func (m *scanMemory) parametersMap() Parameters {
	if m.nmaps < len(m.maps) {
		m.nmaps++
		return m.maps[m.nmaps-1] // emptied by forget
	}
	p := Parameters{}
	m.maps = append(m.maps, p)
	m.nmaps++
	return p
}

// buffer returns an empty buffer of at least capacity bytes, for a
// tensor's data.
func (m *scanMemory) buffer(capacity int64) []byte {
	if capacity <= maxKeptBytes {
		for i := m.nbufs; i < len(m.bufs); i++ {
			if int64(cap(m.bufs[i])) >= capacity {
				m.bufs[i], m.bufs[m.nbufs] = m.bufs[m.nbufs], m.bufs[i]
				m.nbufs++
				return m.bufs[m.nbufs-1][:0]
			}
		}
	}
	b := make([]byte, 0, capacity)
	if capacity <= maxKeptBytes {
		m.bufs = append(m.bufs, b)
		m.bufs[m.nbufs], m.bufs[len(m.bufs)-1] = m.bufs[len(m.bufs)-1], m.bufs[m.nbufs]
		m.nbufs++
	}
	return b
}

// text returns b as a string, the same string as the last time the
// scanner saw these bytes, when it is among the few it remembers; it
// remembers none over maxKeptText bytes.
func (m *scanMemory) text(b []byte) string {
	if len(b) > maxKeptText {
		return string(b)
	}
	for _, v := range m.strs {
		if v == string(b) {
			return v
		}
	}
	v := string(b)
	m.strs[m.nstrs%len(m.strs)] = v
	m.nstrs++
	return v
}

// number returns v boxed, the same box as the last time the scanner saw
// v, when it is among the few it remembers.
func (m *scanMemory) number(v float64) any {
	for _, n := range m.nums {
		if f, ok := n.(float64); ok && math.Float64bits(f) == math.Float64bits(v) {
			return n
		}
	}
	var n any = v
	m.nums[m.nnums%len(m.nums)] = n
	m.nnums++
	return n
}
