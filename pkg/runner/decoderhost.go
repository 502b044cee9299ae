package runner

import (
	"fmt"
	"unsafe"

	"github.com/infer-serving/infer/pkg/modelhost"
	"github.com/infer-serving/infer/pkg/tensor"
)

// hostedLayout places a forward pass's tensors in the region of the
// decoder's model host: the past keys and values first (slot order, from
// offset 0, so that PastBuffers can hand them out before the pass), then
// input_ids, position_ids and attention_mask, then the outputs. It
// returns the input and output placements, in the graph's order, and the
// region's size they take.
func (d *Decoder) hostedLayout(rows, news, past int) (ins, outs []modelhost.Tensor, end int) {
	b, n, p := int64(rows), int64(news), int64(past)
	heads, hd := int64(d.Heads), int64(d.HeadDim)
	ins = make([]modelhost.Tensor, len(d.inputs))
	outs = make([]modelhost.Tensor, len(d.outputs))
	place := func(t *modelhost.Tensor, elemBytes int64, shape ...int64) {
		*t = modelhost.Tensor{Shape: shape, Offset: int64(end), Length: tensor.Elements(shape) * elemBytes}
		end = modelhost.Align(end + int(t.Length))
	}
	for _, i := range d.pastAt {
		place(&ins[i], 4, b, heads, p, hd)
	}
	place(&ins[d.idsAt], 8, b, n)
	place(&ins[d.posAt], 8, b, n)
	place(&ins[d.maskAt], 8, b, p+n)
	positions, _ := d.PresentWindow(past, news)
	place(&outs[d.logitsAt], 4, b, int64(d.Vocab))
	for _, j := range d.presentAt {
		place(&outs[j], 4, b, heads, int64(positions), hd)
	}
	return ins, outs, end
}

// PastBuffers returns the buffers the next forward pass of rows × news
// tokens after past positions reads its past keys and values from (per
// layer, key then value). With a model host they are views of the region
// where the pass reads them, so filling them is the only copy; they stay
// valid until that pass. Otherwise, and when the host cannot be had (the
// pass then fails), they are reuse's arrays, grown.
func (d *Decoder) PastBuffers(rows, news, past int, reuse [][]float32) [][]float32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(reuse) != 2*d.Layers {
		reuse = make([][]float32, 2*d.Layers)
	}
	n := rows * d.Heads * past * d.HeadDim
	if h := d.remote; h != nil && h.ready() == nil {
		ins, _, end := d.hostedLayout(rows, news, past)
		if h.region.Grow(end) == nil {
			mem := h.region.Bytes()
			views := make([][]float32, 2*d.Layers)
			for slot, i := range d.pastAt {
				views[slot] = unsafe.Slice((*float32)(unsafe.Pointer(&mem[ins[i].Offset])), n)
			}
			return views
		}
	}
	for i := range reuse {
		reuse[i] = grow(reuse[i], n)
	}
	return reuse
}

// runHosted makes one forward pass in the decoder's model host. The past
// keys and values are read where PastBuffers put them (copied there when
// they are elsewhere), the other inputs are copied in, and the runtime
// writes the logits and keys and values straight into the region: the
// result views them there, valid until the next pass (res's own arrays
// are not used). A host that dies fails the pass with a
// HostDiedError (the engine fails the pass's sequences) and is restarted
// for the next one. d.mu is held.
func (d *Decoder) runHosted(f *Forward, res ...*ForwardResult) (*ForwardResult, error) {
	h := d.remote
	if err := h.ready(); err != nil {
		return nil, fmt.Errorf("decoder %q: %w", d.Name, err)
	}
	ins, outs, end := d.hostedLayout(f.Batch, f.News, f.Past)
	if err := h.region.Grow(end); err != nil {
		return nil, fmt.Errorf("decoder %q: %w", d.Name, err)
	}
	mem := h.region.Bytes()
	put := func(i int, data []byte) {
		t := ins[i]
		dst := mem[t.Offset : t.Offset+t.Length]
		if len(data) > 0 && &data[0] != &dst[0] { // not already in place
			copy(dst, data)
		}
	}
	put(d.idsAt, asBytes(f.IDs))
	put(d.posAt, asBytes(f.Pos))
	put(d.maskAt, asBytes(f.Mask))
	for slot, i := range d.pastAt {
		put(i, asBytes(f.KV[slot]))
	}
	h.run.Inputs, h.run.Outputs = ins, outs
	if err := h.exchange(); err != nil {
		return nil, fmt.Errorf("decoder %q: %w", d.Name, err)
	}
	if len(h.result.Outputs) != len(d.outputs) {
		return nil, fmt.Errorf("decoder %q: the host answered %d outputs, want %d", d.Name, len(h.result.Outputs), len(d.outputs))
	}
	out := &ForwardResult{}
	if len(res) > 0 && res[0] != nil {
		out = res[0]
	}
	if len(out.Present) != len(d.presentAt) {
		out.Present = make([][]float32, len(d.presentAt))
	}
	// The outputs are read where the runtime wrote them: the engine is done
	// with a pass's logits and keys and values before the next pass.
	mem = h.region.Bytes()
	view := func(j int) []float32 {
		o := outs[j]
		return unsafe.Slice((*float32)(unsafe.Pointer(&mem[o.Offset])), o.Length/4)
	}
	out.Logits = view(d.logitsAt)
	for slot, j := range d.presentAt {
		out.Present[slot] = view(j)
	}
	return out, nil
}
