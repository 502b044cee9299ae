package pipeline_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"image/png"
	"math"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/infer-serving/infer/pkg/inferencepb"
	"github.com/infer-serving/infer/pkg/tensor"
)

// lines are the texts the OCR tests render and read back.
var lines = []string{
	"Hello, world",
	"infer serves ONNX models",
	"The quick brown fox jumps over the lazy dog",
	"Invoice 2024-07 total 1234.50",
}

// The OCR pipeline reads back, exactly, lines of text rendered with the Go
// font, over HTTP with binary data, over HTTP with JSON (the PNG as
// base64 in a BYTES string), and over gRPC; its answers carry a phase per
// step in Server-Timing, and its metadata says it is an ensemble.
func TestOCRReadsRenderedLines(t *testing.T) {
	url, g := serve(t, ocrRepo(t, "", ""))
	for _, line := range lines {
		img := render(t, line)
		r := inferHTTP(t, url, "ocr", true, nil, stringsTensor("image", img))
		if r.status != http.StatusOK {
			t.Fatalf("%q over HTTP binary: %d %s", line, r.status, r.body)
		}
		if got := firstString(t, output(t, r.resp, "text")); got != line {
			t.Errorf("HTTP binary read %q, want %q", got, line)
		}
		timing := r.header.Get("Server-Timing")
		for _, step := range []string{"step.decode", "step.resize", "step.normalize", "step.layout", "step.recognize", "step.ctc"} {
			if !strings.Contains(timing, step+";dur=") {
				t.Errorf("Server-Timing %q lacks %s", timing, step)
			}
		}

		r = inferHTTP(t, url, "ocr", false, nil, stringsTensor("image", []byte(base64.StdEncoding.EncodeToString(img))))
		if r.status != http.StatusOK {
			t.Fatalf("%q over HTTP JSON: %d %s", line, r.status, r.body)
		}
		if got := firstString(t, output(t, r.resp, "text")); got != line {
			t.Errorf("HTTP JSON read %q, want %q", got, line)
		}

		resp, err := g.ModelInfer(context.Background(), &inferencepb.ModelInferRequest{
			ModelName:        "ocr",
			Inputs:           []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "image", Datatype: "BYTES", Shape: []int64{1}}},
			RawInputContents: [][]byte{stringsTensor("image", img).Data},
		})
		if err != nil {
			t.Fatalf("%q over gRPC: %v", line, err)
		}
		if got := firstString(t, tensor.Tensor{Name: "text", DataType: tensor.Bytes, Data: resp.RawOutputContents[0]}); got != line {
			t.Errorf("gRPC read %q, want %q", got, line)
		}
	}
	meta, err := g.ModelMetadata(context.Background(), &inferencepb.ModelMetadataRequest{Name: "ocr"})
	if err != nil {
		t.Fatal(err)
	}
	if meta.Platform != "ensemble" || len(meta.Inputs) != 1 || meta.Inputs[0].Datatype != "BYTES" || len(meta.Outputs) != 2 {
		t.Errorf("metadata %v: want an ensemble of one BYTES input and two outputs", meta)
	}
}

// Each step's output equals the same step done here by hand: the PNG
// decoded by image/png, scaled with golang.org/x/image/draw's bilinear
// scaler to height 48 and padded white to a multiple of 32, normalised to
// [-1, 1], laid out NCHW, run through the recogniser called directly, and
// decoded greedily with the key list, spaces at either end trimmed.
func TestOCRStepsMatchByHand(t *testing.T) {
	dir := ocrRepo(t, "pixels, resized, scaled, x, probs", "")
	url, _ := serve(t, dir)
	line := lines[2]
	file := render(t, line)
	r := inferHTTP(t, url, "ocr", true, nil, stringsTensor("image", file))
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}

	img, err := png.Decode(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	var pixels []byte
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			pixels = append(pixels, byte(cr>>8), byte(cg>>8), byte(cb>>8))
		}
	}
	equalBytes(t, "decode", output(t, r.resp, "pixels"), []int64{1, int64(b.Dy()), int64(b.Dx()), 3}, pixels)

	resized, ow := handResize(t, file)
	equalBytes(t, "resize", output(t, r.resp, "resized"), []int64{1, 48, int64(ow), 3}, resized)

	// From here each step by hand takes the pipeline's output of the step
	// before, so that each comparison is of one step alone.
	resized = output(t, r.resp, "resized").Data
	scaled := make([]float32, len(resized))
	for i, v := range resized {
		scaled[i] = (float32(v)/255 - 0.5) / 0.5
	}
	equalFloats(t, "normalize", output(t, r.resp, "scaled"), []int64{1, 48, int64(ow), 3}, scaled, 1e-6)

	scaled, _ = tensor.Values[float32](output(t, r.resp, "scaled"))
	nchw := make([]float32, len(scaled))
	for c := range 3 {
		for p := range 48 * ow {
			nchw[c*48*ow+p] = scaled[p*3+c]
		}
	}
	equalFloats(t, "layout", output(t, r.resp, "x"), []int64{1, 3, 48, int64(ow)}, nchw, 0)

	x := output(t, r.resp, "x")
	direct := inferHTTP(t, url, "ocr-rec", true, nil, x)
	if direct.status != http.StatusOK {
		t.Fatalf("ocr-rec: %d %s", direct.status, direct.body)
	}
	want := direct.resp.Outputs[0]
	probs, _ := tensor.Values[float32](want)
	equalFloats(t, "recognize", output(t, r.resp, "probs"), want.Shape, probs, 0)

	byHand := clientCTC(t, output(t, r.resp, "probs"), readKeys(t, filepath.Join(dir, "ocr", "ppocr_keys_v1.txt")))
	if got := firstString(t, output(t, r.resp, "text")); got != byHand || got != line {
		t.Errorf("ctc: the pipeline read %q, by hand %q, rendered %q", got, byHand, line)
	}
}

func equalBytes(t *testing.T, step string, got tensor.Tensor, shape []int64, want []byte) {
	t.Helper()
	if !slices.Equal(got.Shape, shape) || got.DataType != tensor.Uint8 {
		t.Fatalf("%s: %s %v, want UINT8 %v", step, got.DataType, got.Shape, shape)
	}
	if !bytes.Equal(got.Data, want) {
		t.Errorf("%s: the pipeline's pixels differ from those made by hand", step)
	}
}

func equalFloats(t *testing.T, step string, got tensor.Tensor, shape []int64, want []float32, tol float64) {
	t.Helper()
	v, err := tensor.Values[float32](got)
	if err != nil || !slices.Equal(got.Shape, shape) {
		t.Fatalf("%s: %s %v (%v), want FP32 %v", step, got.DataType, got.Shape, err, shape)
	}
	for i := range v {
		if math.Abs(float64(v[i]-want[i])) > tol {
			t.Fatalf("%s: element %d is %v, by hand %v", step, i, v[i], want[i])
		}
	}
}
