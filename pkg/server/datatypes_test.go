package server

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/infer-serving/infer/pkg/internal/requests"
	"github.com/infer-serving/infer/pkg/protocol"
)

// Every datatype travels through infer serve exactly, in each encoding of
// each protocol: the all-types model returns its inputs unchanged.
func TestEveryDatatypeEndToEnd(t *testing.T) {
	_, hs := start(t, nil, Options{})
	_, c, _ := startGRPC(t)
	in := requests.AllTypes()
	check := func(label string, names []string, data [][]byte) {
		t.Helper()
		if len(data) != len(in) {
			t.Fatalf("%s: %d outputs, want %d", label, len(data), len(in))
		}
		for i, want := range in {
			if names[i] != strings.Replace(want.Name, "_in", "_out", 1) || !bytes.Equal(data[i], want.Data) {
				t.Errorf("%s: %s = % x, want % x", label, names[i], data[i], want.Data)
			}
		}
	}
	for _, mode := range []struct {
		name          string
		binIn, binOut bool
	}{{"HTTP JSON", false, false}, {"HTTP binary", true, true}, {"HTTP JSON in, binary out", false, true}} {
		rep, resp := infer(t, hs.URL, "all-types", &protocol.InferRequest{Inputs: in, BinaryOutput: mode.binOut}, mode.binIn)
		if resp == nil {
			t.Fatalf("%s: %d %s", mode.name, rep.status, rep.body)
		}
		var names []string
		var data [][]byte
		for _, o := range resp.Outputs {
			names, data = append(names, o.Name), append(data, o.Data)
		}
		check(mode.name, names, data)
	}
	resp, err := c.ModelInfer(context.Background(), requests.GRPC("all-types", in, true))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range resp.Outputs {
		names = append(names, o.Name)
	}
	check("gRPC raw", names, resp.RawOutputContents)
}
