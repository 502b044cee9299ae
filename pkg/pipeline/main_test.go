package pipeline_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/infer-serving/infer/pkg/inferencepb"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/server"
	"github.com/infer-serving/infer/pkg/tensor"
)

func TestMain(m *testing.M) {
	runner.ServeHostIfChild()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if _, err := runner.InitRuntime(""); err != nil {
		fmt.Fprintln(os.Stderr, "pipeline tests need ONNX Runtime:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

const bundled = "../../testdata/models"

// ocrFiles returns the folder scripts/setup-ocr-model.sh installs the OCR
// model into, skipping the test when it has not run.
func ocrFiles(t testing.TB) string {
	t.Helper()
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	dir := filepath.Join(cache, "infer", "models", "ocr-models", "1.4.2")
	if _, err := os.Stat(filepath.Join(dir, "ch_PP-OCRv4_rec_infer.onnx")); err != nil {
		t.Skipf("the OCR model is not installed: run scripts/setup-ocr-model.sh (make test does): %v", err)
	}
	return dir
}

// writeFile writes data to dir/name, making its folders.
func writeFile(t testing.TB, dir, name string, data []byte) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// copyModel copies a bundled model's folder (config, vocabulary, version
// 1) into dir under name.
func copyModel(t testing.TB, dir, from, name string) {
	t.Helper()
	src := filepath.Join(bundled, from)
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		writeFile(t, filepath.Join(dir, name), rel, readFile(t, p))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// ocrRepo writes a repository serving the OCR pipeline as "ocr", with its
// outputs extended by extra (intermediate tensors), and the recogniser as
// "ocr-rec" with recCfg as its config.yaml.
func ocrRepo(t testing.TB, extra, recCfg string) string {
	t.Helper()
	files := ocrFiles(t)
	dir := t.TempDir()
	cfg := readFile(t, "../../testdata/pipelines/ocr/config.yaml")
	if extra != "" {
		cfg = bytes.Replace(cfg, []byte("outputs: [text, confidence]"), []byte("outputs: [text, confidence, "+extra+"]"), 1)
	}
	writeFile(t, dir, "ocr/config.yaml", cfg)
	writeFile(t, dir, "ocr/ppocr_keys_v1.txt", readFile(t, filepath.Join(files, "ppocr_keys_v1.txt")))
	writeFile(t, dir, "ocr-rec/1/model.onnx", readFile(t, filepath.Join(files, "ch_PP-OCRv4_rec_infer.onnx")))
	if recCfg != "" {
		writeFile(t, dir, "ocr-rec/config.yaml", []byte(recCfg))
	}
	return dir
}

// serve opens the repository in dir and serves it over HTTP and gRPC on
// loopback ports.
func serve(t testing.TB, dir string) (string, inferencepb.GRPCInferenceServiceClient) {
	t.Helper()
	repo, err := runner.Open(dir, runner.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.New(repo, server.Options{Version: "test"})
	if err != nil {
		repo.Close()
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	g := grpc.NewServer(s.GRPCServerOptions()...)
	s.RegisterGRPC(g)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(ln)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); g.Stop(); hs.Close(); s.Close(); repo.Close() })
	return hs.URL, inferencepb.NewGRPCInferenceServiceClient(conn)
}

// render draws text in black on white with the Go font, 32 px, in an
// image 48 px high, and returns it as a PNG file.
func render(t testing.TB, text string) []byte {
	t.Helper()
	f, err := opentype.Parse(goregular.TTF)
	if err != nil {
		t.Fatal(err)
	}
	face, err := opentype.NewFace(f, &opentype.FaceOptions{Size: 32, DPI: 72, Hinting: font.HintingFull})
	if err != nil {
		t.Fatal(err)
	}
	defer face.Close()
	width := font.MeasureString(face, text).Ceil() + 24
	img := image.NewRGBA(image.Rect(0, 0, width, 48))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	d := font.Drawer{Dst: img, Src: image.NewUniform(color.Black), Face: face, Dot: fixed.P(12, 35)}
	d.DrawString(text)
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// stringsTensor is a BYTES tensor of the given strings, shape [n].
func stringsTensor(name string, elems ...[]byte) tensor.Tensor {
	var data []byte
	for _, e := range elems {
		data = binary.LittleEndian.AppendUint32(data, uint32(len(e)))
		data = append(data, e...)
	}
	return tensor.Tensor{Name: name, DataType: tensor.Bytes, Shape: []int64{int64(len(elems))}, Data: data}
}

// firstString returns a BYTES tensor's first element.
func firstString(t testing.TB, x tensor.Tensor) string {
	t.Helper()
	if x.DataType != tensor.Bytes || len(x.Data) < 4 {
		t.Fatalf("tensor %q: %s of %d bytes, want BYTES", x.Name, x.DataType, len(x.Data))
	}
	n := binary.LittleEndian.Uint32(x.Data)
	return string(x.Data[4 : 4+n])
}

// reply is an HTTP answer.
type reply struct {
	status int
	header http.Header
	resp   *protocol.InferResponse
	body   string // the error's message when the status is not 200
}

// inferHTTP posts inputs to model over the v2 protocol, binary or JSON,
// with the given headers.
func inferHTTP(t testing.TB, url, model string, binaryData bool, header map[string]string, inputs ...tensor.Tensor) reply {
	t.Helper()
	body, hl, err := (&protocol.InferRequest{Inputs: inputs, BinaryOutput: binaryData}).Encode(binaryData)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(context.Background(), "POST", url+"/v2/models/"+model+"/infer", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if binaryData {
		req.Header.Set(protocol.HeaderContentLength, strconv.FormatInt(hl, 10))
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	data, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := reply{status: r.StatusCode, header: r.Header, body: string(data)}
	var e struct{ Error string }
	if r.StatusCode != http.StatusOK && json.Unmarshal(data, &e) == nil {
		out.body = e.Error
	}
	if r.StatusCode == http.StatusOK {
		hl := int64(-1)
		if v := r.Header.Get(protocol.HeaderContentLength); v != "" {
			hl, _ = strconv.ParseInt(v, 10, 64)
		}
		if out.resp, err = protocol.DecodeResponse(data, hl); err != nil {
			t.Fatalf("decode the response: %v: %s", err, data)
		}
	}
	return out
}

// output returns the response's output called name.
func output(t testing.TB, r *protocol.InferResponse, name string) tensor.Tensor {
	t.Helper()
	for _, o := range r.Outputs {
		if o.Name == name {
			return o
		}
	}
	t.Fatalf("the response has no output %q", name)
	return tensor.Tensor{}
}

// metrics returns the server's /metrics text.
func metrics(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}
