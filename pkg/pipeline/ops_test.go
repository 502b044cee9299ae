package pipeline_test

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/png"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/infer-serving/infer/pkg/tensor"
)

// embedConfig tokenizes texts, runs the text encoder on the token ids and
// normalises its embeddings.
const embedConfig = `
pipeline:
  inputs: [{name: text, datatype: BYTES, shape: [-1]}]
  outputs: [ids, mask, unit]
  steps:
    - name: tok
      op: tokenize
      params: {vocab: vocab.txt, max_length: 16}
      input_map: {text: text}
      output_map: {input_ids: ids, attention_mask: mask}
    - name: encode
      model: text-encoder
      input_map: {input_ids: ids, attention_mask: mask}
      output_map: {embedding: emb}
    - name: unit
      op: l2_normalize
      input_map: {x: emb}
      output_map: {y: unit}
`

// poolConfig pools token vectors, normalises and softmaxes them.
const poolConfig = `
pipeline:
  inputs:
    - {name: x, datatype: FP32, shape: [-1, -1, -1]}
    - {name: mask, datatype: INT64, shape: [-1, -1]}
  outputs: [pooled, unit, probs]
  steps:
    - {name: pool, op: mean_pool, input_map: {x: x, mask: mask}, output_map: {y: pooled}}
    - {name: norm, op: l2_normalize, input_map: {x: pooled}, output_map: {y: unit}}
    - {name: soft, op: softmax, input_map: {x: unit}, output_map: {y: probs}}
`

// byLengthConfig sends texts of 8 tokens or more to te-long.
const byLengthConfig = `
router:
  vocab: vocab.txt
  routes:
    - {name: long, model: te-long, when: {tokens: {input: text, min: 8}}}
  default: text-encoder
`

// bySizeConfig sends images 100 px wide or more, or 50 px high or more,
// to img-small (which shrinks them to 4x4), and the rest to img-plain.
// Its name sorts before both pipelines it calls.
const bySizeConfig = `
router:
  routes:
    - {name: wide, model: img-small, when: {image: {input: image, min_width: 100}}}
    - {name: tall, model: img-small, when: {image: {input: image, max_width: 99, min_height: 50}}}
  default: img-plain
`

const imgPlainConfig = `
pipeline:
  inputs: [{name: image, datatype: BYTES, shape: [-1]}]
  outputs: [pixels]
  steps:
    - {name: decode, op: image_decode, params: {channels: 1}, input_map: {image: image}, output_map: {pixels: pixels}}
`

const imgSmallConfig = `
pipeline:
  inputs: [{name: image, datatype: BYTES, shape: [-1]}]
  outputs: [small]
  steps:
    - {name: decode, op: image_decode, params: {channels: 1}, input_map: {image: image}, output_map: {pixels: pixels}}
    - {name: shrink, op: image_resize, params: {height: 4, width: 4}, input_map: {pixels: pixels}, output_map: {pixels: small}}
`

func opsRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	copyModel(t, dir, "text-encoder", "text-encoder")
	copyModel(t, dir, "text-encoder", "te-long")
	vocab := readFile(t, bundled+"/text-encoder/vocab.txt")
	for name, cfg := range map[string]string{"embed": embedConfig, "by-length": byLengthConfig} {
		writeFile(t, dir, name+"/config.yaml", []byte(cfg))
		writeFile(t, dir, name+"/vocab.txt", vocab)
	}
	writeFile(t, dir, "pool/config.yaml", []byte(poolConfig))
	writeFile(t, dir, "by-size/config.yaml", []byte(bySizeConfig))
	writeFile(t, dir, "img-plain/config.yaml", []byte(imgPlainConfig))
	writeFile(t, dir, "img-small/config.yaml", []byte(imgSmallConfig))
	return dir
}

// vocabID returns piece's id: its line in the vocabulary, from 0.
func vocabID(t *testing.T, piece string) int64 {
	t.Helper()
	lines := strings.Split(string(readFile(t, bundled+"/text-encoder/vocab.txt")), "\n")
	i := slices.Index(lines, piece)
	if i < 0 {
		t.Fatalf("the vocabulary has no %q", piece)
	}
	return int64(i)
}

// The tokenize step frames, truncates and pads texts as the vocabulary
// says; the encoder fed its ids answers what the encoder fed the text
// answers; l2_normalize leaves unit rows.
func TestTokenizeAndNormalizeSteps(t *testing.T) {
	url, _ := serve(t, opsRepo(t))
	long := strings.Repeat("the cat sat on the world ", 5)
	texts := stringsTensor("text", []byte("hello world"), []byte("cat"), []byte(long))
	r := inferHTTP(t, url, "embed", true, nil, texts)
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	cls, sep, pad := vocabID(t, "[CLS]"), vocabID(t, "[SEP]"), vocabID(t, "[PAD]")
	the, cat, sat, on, world := vocabID(t, "the"), vocabID(t, "cat"), vocabID(t, "sat"), vocabID(t, "on"), vocabID(t, "world")
	row := func(ids ...int64) []int64 {
		for len(ids) < 16 {
			ids = append(ids, pad)
		}
		return ids
	}
	mask := func(n int) []int64 {
		m := make([]int64, 16)
		for i := range n {
			m[i] = 1
		}
		return m
	}
	wantIDs := slices.Concat(
		row(cls, vocabID(t, "hello"), world, sep),
		row(cls, cat, sep),
		[]int64{cls, the, cat, sat, on, the, world, the, cat, sat, on, the, world, the, cat, sep}, // truncated to 16
	)
	ids, _ := tensor.Values[int64](output(t, r.resp, "ids"))
	m, _ := tensor.Values[int64](output(t, r.resp, "mask"))
	if !slices.Equal(output(t, r.resp, "ids").Shape, []int64{3, 16}) || !slices.Equal(ids, wantIDs) {
		t.Errorf("ids %v %v, want [3 16] %v", output(t, r.resp, "ids").Shape, ids, wantIDs)
	}
	if want := slices.Concat(mask(4), mask(3), mask(16)); !slices.Equal(m, want) {
		t.Errorf("mask %v, want %v", m, want)
	}

	// The encoder fed texts by its own tokenizer (max_length 128, so the
	// long text is kept whole there: compare the first two rows).
	direct := inferHTTP(t, url, "text-encoder", true, nil, stringsTensor("text", []byte("hello world"), []byte("cat")))
	want, _ := tensor.Values[float32](direct.resp.Outputs[0])
	unit, _ := tensor.Values[float32](output(t, r.resp, "unit"))
	dim := len(want) / 2
	equalFloats(t, "encode and unit", tensor.New("unit", []int64{2, int64(dim)}, unit[:2*dim]), []int64{2, int64(dim)}, want, 1e-5)
	for i := range 3 {
		var sum float64
		for _, v := range unit[i*dim : (i+1)*dim] {
			sum += float64(v) * float64(v)
		}
		if math.Abs(sum-1) > 1e-5 {
			t.Errorf("row %d: squared norm %v, want 1", i, sum)
		}
	}

	if r := inferHTTP(t, url, "embed", false, nil, tensor.New("text", []int64{1}, []int64{7})); r.status != http.StatusBadRequest || !strings.Contains(r.body, `"text"`) {
		t.Errorf("numbers for text: %d %s, want a 400 naming the input", r.status, r.body)
	}
}

// mean_pool averages the tokens its mask keeps (none: zeros),
// l2_normalize scales rows to unit length (a zero row stays zero) and
// softmax gives each row probabilities; a mask that does not fit is a 400
// naming the step.
func TestPoolNormalizeSoftmaxSteps(t *testing.T) {
	url, _ := serve(t, opsRepo(t))
	x := tensor.New("x", []int64{2, 3, 2}, []float32{1, 2, 3, 4, 100, 100, 7, 8, 9, 10, 11, 12})
	mask := tensor.New("mask", []int64{2, 3}, []int64{1, 1, 0, 0, 0, 0})
	r := inferHTTP(t, url, "pool", false, nil, x, mask)
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	equalFloats(t, "pool", output(t, r.resp, "pooled"), []int64{2, 2}, []float32{2, 3, 0, 0}, 0)
	n := math.Sqrt(13)
	u0, u1 := 2/n, 3/n
	equalFloats(t, "norm", output(t, r.resp, "unit"), []int64{2, 2}, []float32{float32(u0), float32(u1), 0, 0}, 1e-7)
	e0, e1 := math.Exp(u0), math.Exp(u1)
	equalFloats(t, "soft", output(t, r.resp, "probs"), []int64{2, 2}, []float32{float32(e0 / (e0 + e1)), float32(e1 / (e0 + e1)), 0.5, 0.5}, 1e-7)

	for _, c := range []struct {
		name   string
		inputs []tensor.Tensor
		want   string
	}{
		{"a mask of 2 tokens for 3", []tensor.Tensor{x, tensor.New("mask", []int64{2, 2}, []int64{1, 1, 1, 1})}, `step "pool" (op mean_pool)`},
		{"a mask of another type", []tensor.Tensor{x, tensor.New("mask", []int64{2, 3}, []float32{1, 1, 0, 0, 0, 0})}, `input "mask" is FP32, want INT64`},
	} {
		if r := inferHTTP(t, url, "pool", true, nil, c.inputs...); r.status != http.StatusBadRequest || !strings.Contains(r.body, c.want) {
			t.Errorf("%s: %d %s, want a 400 naming %s", c.name, r.status, r.body, c.want)
		}
	}
}

// A router counts a text's WordPiece tokens, [CLS] and [SEP] included,
// the most of any text in the request, both bounds inclusive.
func TestRouterByTokenCount(t *testing.T) {
	url, _ := serve(t, opsRepo(t))
	for _, c := range []struct {
		texts []string
		route string
	}{
		{[]string{"the cat sat on the"}, "default"},           // 7 tokens
		{[]string{"the cat sat on the world"}, "long"},        // 8
		{[]string{"cat", "the cat sat on the world"}, "long"}, // the longest decides
		{[]string{"cat", "hello world"}, "default"},           // 3 and 4
	} {
		var elems [][]byte
		for _, s := range c.texts {
			elems = append(elems, []byte(s))
		}
		r := inferHTTP(t, url, "by-length", true, nil, stringsTensor("text", elems...))
		if r.status != http.StatusOK || r.header.Get("Inference-Route") != c.route {
			t.Errorf("%q: %d route %q %s, want %q", c.texts, r.status, r.header.Get("Inference-Route"), r.body, c.route)
		}
	}
}

// pngOf is a gray PNG of w x h pixels.
func pngOf(t *testing.T, w, h int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A router reads images' sizes from their headers and sends each request
// to the first route they fit; it loads after the pipelines it calls
// whatever their names; a file that is no image is a 400 naming the
// route that could not read it.
func TestRouterByImageSize(t *testing.T) {
	url, _ := serve(t, opsRepo(t))
	for _, c := range []struct {
		w, h  int
		route string
		shape []int64
	}{
		{120, 20, "wide", []int64{1, 4, 4, 1}},
		{100, 20, "wide", []int64{1, 4, 4, 1}},
		{99, 50, "tall", []int64{1, 4, 4, 1}},
		{99, 49, "default", []int64{1, 49, 99, 1}},
	} {
		r := inferHTTP(t, url, "by-size", true, nil, stringsTensor("image", pngOf(t, c.w, c.h)))
		if r.status != http.StatusOK || r.header.Get("Inference-Route") != c.route {
			t.Errorf("%dx%d: %d route %q %s, want %q", c.w, c.h, r.status, r.header.Get("Inference-Route"), r.body, c.route)
			continue
		}
		if got := r.resp.Outputs[0].Shape; !slices.Equal(got, c.shape) {
			t.Errorf("%dx%d: answer of shape %v, want %v (the route's model)", c.w, c.h, got, c.shape)
		}
	}
	r := inferHTTP(t, url, "by-size", true, nil, stringsTensor("image", []byte("no image here")))
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, `route "wide"`) || !strings.Contains(r.body, "not a PNG or JPEG") {
		t.Errorf("not an image: %d %s, want a 400 naming the route", r.status, r.body)
	}
}

// pngHeader is the start of a gray PNG that declares w x h pixels: its
// signature and header chunk, and no pixels.
func pngHeader(w, h uint32) []byte {
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 0, 0, 0, 0) // 8-bit gray, no interlace
	b := []byte("\x89PNG\r\n\x1a\n")
	b = binary.BigEndian.AppendUint32(b, uint32(len(ihdr)))
	chunk := append([]byte("IHDR"), ihdr...)
	b = append(b, chunk...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(chunk))
}

// image_decode reads every image's header before it takes memory for
// any pixels: a header declaring 4096x4096 followed by 999 elements that
// are no image is a 400 naming the first bad one (it once sized the
// output from the first header times the count, 47 GiB, and the process
// died); images within max_pixels each but over it together are a 400
// naming max_pixels; the server answers as before after both.
func TestImageDecodeReadsEveryHeaderFirst(t *testing.T) {
	url, _ := serve(t, opsRepo(t))
	elems := [][]byte{pngHeader(4096, 4096)}
	for range 999 {
		elems = append(elems, nil)
	}
	r := inferHTTP(t, url, "img-plain", true, nil, stringsTensor("image", elems...))
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "image 1: not a PNG or JPEG") {
		t.Fatalf("a header and 999 empty elements: %d %s, want 400 naming image 1", r.status, r.body)
	}
	r = inferHTTP(t, url, "img-plain", true, nil, stringsTensor("image", pngHeader(3000, 3000), pngHeader(3000, 3000)))
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "18000000 pixels together, over max_pixels 16777216") {
		t.Fatalf("two images of 9 Mpx: %d %s, want 400 naming max_pixels", r.status, r.body)
	}
	r = inferHTTP(t, url, "img-plain", true, nil, stringsTensor("image", pngOf(t, 8, 4), pngOf(t, 8, 4)))
	if r.status != http.StatusOK || !slices.Equal(r.resp.Outputs[0].Shape, []int64{2, 4, 8, 1}) {
		t.Fatalf("two small images after: %d %s", r.status, r.body)
	}
}

// tokenize refuses, before it makes its outputs, a request whose texts
// padded to the longest pass max_request_tokens: one long text and 8,192
// empty ones would make 8,193 rows of the longest's length.
func TestTokenizeBoundsItsOutputs(t *testing.T) {
	url, _ := serve(t, opsRepo(t))
	elems := [][]byte{[]byte(strings.Repeat("the cat sat on the world ", 10))}
	for range 1 << 16 {
		elems = append(elems, nil)
	}
	r := inferHTTP(t, url, "embed", true, nil, stringsTensor("text", elems...))
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "over max_request_tokens 1048576") {
		t.Fatalf("65,537 texts padded to 16 tokens: %d %.300s, want 400 naming max_request_tokens", r.status, r.body)
	}
	r = inferHTTP(t, url, "embed", true, nil, stringsTensor("text", []byte("hello world")))
	if r.status != http.StatusOK {
		t.Fatalf("one text after: %d %s", r.status, r.body)
	}
}

// image_resize refuses, before it makes its output, a request whose
// images resized pass max_pixels together: many 1x1 images scaled up to
// 1024x1024 would make a few bytes of input into gigabytes.
func TestImageResizeBoundsItsOutput(t *testing.T) {
	dir := opsRepo(t)
	writeFile(t, dir, "grow/config.yaml", []byte(`
pipeline:
  inputs: [{name: pixels, datatype: UINT8, shape: [-1, -1, -1, 1]}]
  outputs: [big]
  steps:
    - {name: grow, op: image_resize, params: {height: 1024, width: 1024}, input_map: {pixels: pixels}, output_map: {pixels: big}}
`))
	url, _ := serve(t, dir)
	many := tensor.Tensor{Name: "pixels", DataType: tensor.Uint8, Shape: []int64{17, 1, 1, 1}, Data: make([]byte, 17)}
	r := inferHTTP(t, url, "grow", true, nil, many)
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "17825792 pixels together, over max_pixels 16777216") {
		t.Fatalf("17 images of 1 pixel grown to 1024x1024: %d %.300s, want 400 naming max_pixels", r.status, r.body)
	}
	few := tensor.Tensor{Name: "pixels", DataType: tensor.Uint8, Shape: []int64{2, 1, 1, 1}, Data: make([]byte, 2)}
	if r := inferHTTP(t, url, "grow", true, nil, few); r.status != http.StatusOK {
		t.Fatalf("2 images grown: %d %.300s", r.status, r.body)
	}
}
