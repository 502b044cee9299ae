package loadgen

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/tensor"
)

var inputMeta = []protocol.TensorMetadata{
	{Name: "ids", Datatype: "INT64", Shape: []int64{-1, -1}},
	{Name: "scale", Datatype: "FP32", Shape: []int64{-1, 2}},
	{Name: "text", Datatype: "BYTES", Shape: []int64{-1}},
}

func writeInputData(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "input.json")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadInputData(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString(tensor.New("", nil, []float32{1.5, -2}).Data)
	path := writeInputData(t, `{"data": [
		{"ids": [1, 2, 3], "scale": [[0.5, 2]], "text": ["hello"]},
		{"ids": {"content": [4, 5, 6, 7], "shape": [2, 2]}, "scale": {"b64": "`+b64+`", "shape": [1, 2]}, "text": ["a"]}
	]}`)
	reqs, err := ReadInputData(path, inputMeta, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	// The free dimension is inferred: 3 ids in one row.
	if got := fmt.Sprint(reqs[0][0].Shape); got != "[1 3]" {
		t.Fatalf("inferred shape %s", got)
	}
	ids, _ := tensor.Values[int64](reqs[1][0])
	scale, _ := tensor.Values[float32](reqs[1][1])
	if fmt.Sprint(ids) != "[4 5 6 7]" || fmt.Sprint(reqs[1][0].Shape) != "[2 2]" || fmt.Sprint(scale) != "[1.5 -2]" {
		t.Fatalf("request 2: %v %v %v", ids, reqs[1][0].Shape, scale)
	}
	if n, _ := tensor.CountBytesElements(reqs[0][2].Data); n != 1 {
		t.Fatalf("text input holds %d strings", n)
	}
}

func TestReadInputDataErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`not json`, "not the expected JSON"},
		{`{"data": []}`, "holds no request"},
		{`{"data": [{"ids": [1], "scale": [1, 2]}]}`, `lacks input "text"`},
		{`{"data": [{"ids": [1], "scale": [1, 2], "text": ["x"], "extra": [1]}]}`, `no input "extra"`},
		{`{"data": [{"ids": [1], "scale": [1, 2, 3], "text": ["x"]}]}`, "shape [1 2] declares 2 elements, data holds 3"},
		{`{"data": [{"ids": ["a"], "scale": [1, 2], "text": ["x"]}]}`, `input "ids"`},
		{`{"data": [{"ids": [1], "scale": {"b64": "!!", "shape": [1, 2]}, "text": ["x"]}]}`, "b64"},
	} {
		_, err := ReadInputData(writeInputData(t, tc.body), inputMeta, 1)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: err %v, want one line mentioning %q", tc.body, err, tc.want)
		}
	}
	if _, err := ReadInputData("/no/such/file.json", inputMeta, 1); err == nil || !strings.Contains(err.Error(), "--input-data") {
		t.Errorf("missing file: %v", err)
	}
}
