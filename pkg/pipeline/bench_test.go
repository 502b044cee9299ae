package pipeline_test

import (
	"bufio"
	"bytes"
	"image"
	"image/png"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	xdraw "golang.org/x/image/draw"

	"github.com/infer-serving/infer/pkg/tensor"
)

// benchClients is the number of concurrent clients of BenchmarkOCR.
const benchClients = 16

// BenchmarkOCR compares, at 16 concurrent clients over HTTP with binary
// data, the OCR pipeline (a PNG in, the text out) with a client that does
// the same steps itself and calls the recogniser in between (the
// normalised pixels in, the class scores of every step out). It reports
// requests/s; both read the same line back.
//
//	go test ./pkg/pipeline -run '^$' -bench OCR -benchtime 200x
func BenchmarkOCR(b *testing.B) {
	dir := ocrRepo(b, "", "max_batch_size: 16\ndynamic_batching: {max_queue_delay: 0s}\n")
	url, _ := serve(b, dir)
	line := "The quick brown fox jumps over the lazy dog"
	file := render(b, line)
	keys := readKeys(b, filepath.Join(dir, "ocr", "ppocr_keys_v1.txt"))

	b.Run("pipeline", func(b *testing.B) {
		clients(b, func() string {
			r := inferHTTP(b, url, "ocr", true, nil, stringsTensor("image", file))
			if r.status != http.StatusOK {
				b.Fatalf("%d %s", r.status, r.body)
			}
			return firstString(b, output(b, r.resp, "text"))
		}, line)
	})
	b.Run("client-steps", func(b *testing.B) {
		clients(b, func() string {
			x := clientPreprocess(b, file)
			r := inferHTTP(b, url, "ocr-rec", true, nil, x)
			if r.status != http.StatusOK {
				b.Fatalf("%d %s", r.status, r.body)
			}
			return clientCTC(b, r.resp.Outputs[0], keys)
		}, line)
	})
}

// clients runs b.N calls of do from benchClients goroutines, checks each
// answer and reports requests/s.
func clients(b *testing.B, do func() string, want string) {
	var wg sync.WaitGroup
	work := make(chan struct{}, b.N)
	for range b.N {
		work <- struct{}{}
	}
	close(work)
	b.ResetTimer()
	start := time.Now()
	for range benchClients {
		wg.Go(func() {
			for range work {
				if got := do(); got != want {
					b.Errorf("read %q, want %q", got, want)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

// clientPreprocess does the pipeline's first four steps as a client
// would: decode, scale to height 48 and pad white to a multiple of 32,
// normalise to [-1, 1], lay out NCHW.
func clientPreprocess(t testing.TB, file []byte) tensor.Tensor {
	t.Helper()
	rgb, ow := handResize(t, file)
	plane := 48 * ow
	x := make([]float32, 3*plane)
	for p := range plane {
		for c := range 3 {
			x[c*plane+p] = (float32(rgb[3*p+c])/255 - 0.5) / 0.5
		}
	}
	return tensor.New("x", []int64{1, 3, 48, int64(ow)}, x)
}

// handResize decodes a PNG file and scales it with x/image/draw's
// bilinear scaler to height 48, padded white to a width ow that is a
// multiple of 32; it returns the RGB bytes.
func handResize(t testing.TB, file []byte) (rgb []byte, ow int) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	sw := int(math.Ceil(float64(b.Dx()) * 48 / float64(b.Dy())))
	ow = (sw + 31) / 32 * 32
	dst := image.NewRGBA(image.Rect(0, 0, ow, 48))
	for i := range dst.Pix {
		dst.Pix[i] = 255
	}
	xdraw.BiLinear.Scale(dst, image.Rect(0, 0, sw, 48), img, b, xdraw.Src, nil)
	for i := 0; i < len(dst.Pix); i += 4 {
		rgb = append(rgb, dst.Pix[i], dst.Pix[i+1], dst.Pix[i+2])
	}
	return rgb, ow
}

// readKeys reads a key list as the CTC classes: the blank, the keys, a
// space.
func readKeys(t testing.TB, name string) []string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := []string{""}
	for sc := bufio.NewScanner(f); sc.Scan(); {
		keys = append(keys, sc.Text())
	}
	return append(keys, " ")
}

// clientCTC decodes [1, steps, classes] scores greedily, as the
// pipeline's last step does.
func clientCTC(t testing.TB, scores tensor.Tensor, keys []string) string {
	t.Helper()
	probs, err := tensor.Values[float32](scores)
	if err != nil {
		t.Fatal(err)
	}
	steps, classes := int(scores.Shape[1]), int(scores.Shape[2])
	var text strings.Builder
	prev := 0
	for s := range steps {
		row := probs[s*classes : (s+1)*classes]
		best := 0
		for k, v := range row {
			if v > row[best] {
				best = k
			}
		}
		if best != 0 && best != prev {
			text.WriteString(keys[best])
		}
		prev = best
	}
	return strings.TrimSpace(text.String())
}
