package protocol

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/infer-serving/infer/pkg/internal/heaptest"
)

// A shape is only a claim: a small body declaring a huge tensor is refused
// by counting the data it holds, before anything of the declared size is
// allocated.
func TestDeclaredShapeIsCheckedBeforeAllocating(t *testing.T) {
	for _, tc := range []struct {
		body string
		hl   int64 // 0: the JSON header ends at the last '}'; -1: all JSON
		want string
	}{
		{`{"inputs":[{"name":"x","shape":[2147483648],"datatype":"FP32","data":[1]}]}`, -1,
			`input "x": shape [2147483648] declares 2147483648 elements, data holds 1`},
		{`{"inputs":[{"name":"x","shape":[65536,32768],"datatype":"FP64","data":[[1,2]]}]}`, -1,
			`input "x": shape [65536 32768] declares 2147483648 elements, data holds 2`},
		{`{"inputs":[{"name":"x","shape":[2147483649],"datatype":"FP32","data":[1]}]}`, -1,
			`input "x": shape [2147483649] declares 2147483649 elements, more than the 2147483648`},
		{`{"inputs":[{"name":"x","shape":[4294967296,4294967296],"datatype":"FP32","data":[1]}]}`, -1,
			`input "x": invalid shape [4294967296 4294967296]: the product of its dimensions overflows int64`},
		{`{"inputs":[{"name":"x","shape":[9223372036854775807,2],"datatype":"INT8","data":[]}]}`, -1,
			`overflows int64`},
		{`{"inputs":[{"name":"x","shape":[1,-1],"datatype":"FP32","data":[1]}]}`, -1,
			`input "x": invalid shape [1 -1]: dimension 1 is -1`},
		{`{"inputs":[{"name":"x","shape":[` + strings.Repeat("1,", 100) + `1],"datatype":"FP32","data":[1]}]}`, -1,
			`input "x": invalid shape: rank 101`},
		// A million dimensions are counted, not kept: they took 21 times
		// the body's size to refuse.
		{`{"inputs":[{"name":"x","shape":[` + strings.Repeat("1,", 1<<20) + `1],"datatype":"FP32","data":[1]}]}`, -1,
			`input "x": invalid shape: rank 1048577, at most 64 dimensions`},
		{`{"inputs":[{"name":"x","datatype":"FP32","data":[1]}]}`, -1, `input "x": no shape`},
		{`{"inputs":[{"name":"s","shape":[2147483648],"datatype":"BYTES","data":["a"]}]}`, -1,
			`input "s": shape [2147483648] declares 2147483648 elements, data holds 1`},
		// Binary data: the declared shape against binary_data_size, and
		// binary_data_size against the bytes that are there.
		{`{"inputs":[{"name":"x","shape":[2147483648],"datatype":"FP32","parameters":{"binary_data_size":4}}]}XXXX`, 0,
			`input "x": shape [2147483648] of FP32 declares 2147483648 elements and needs 8589934592 bytes, binary_data_size is 4`},
		{`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4000000000}}]}XXXX`, 0,
			`input "x": binary_data_size is 4000000000 but only 4 binary bytes remain`},
		{`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}},{"name":"y","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}XXXXYY`, 0,
			`input "y": binary_data_size is 4 but only 2 binary bytes remain`},
		{`{"inputs":[{"name":"s","shape":[2147483648],"datatype":"BYTES","parameters":{"binary_data_size":5}}]}` + "\x01\x00\x00\x00a", 0,
			`tensor "s": shape [2147483648] declares 2147483648 elements, data holds 1`},
		{`{"inputs":[{"name":"s","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":5}}]}` + "\xff\xff\xff\x7fa", 0,
			`length 2147483647 exceeds the 1 bytes left`},
	} {
		if tc.hl == 0 {
			tc.hl = int64(strings.LastIndex(tc.body, "}") + 1)
		}
		var err error
		body := []byte(tc.body)
		grew := heaptest.Allocated(func() { _, err = DecodeRequest(body, tc.hl) })
		if err == nil || !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.200s: err %v, want a bad request mentioning %q", tc.body, err, tc.want)
		}
		if grew > 1<<20 {
			t.Errorf("%.200s: decoding allocated %d bytes", tc.body, grew)
		}
	}
}

// JSON data is parsed into room for no more elements than its text can
// spell, whatever the shape declares: the allocation follows the body.
func TestJSONDataAllocationFollowsTheBody(t *testing.T) {
	data := "[" + strings.Repeat("1,", 999) + "1]"
	for _, shape := range []string{"1000", "1001", "2147483648", "1000,2147483"} {
		body := fmt.Sprintf(`{"inputs":[{"name":"x","shape":[%s],"datatype":"FP64","data":%s}]}`, shape, data)
		var err error
		grew := heaptest.Allocated(func() { _, err = DecodeRequest([]byte(body), -1) })
		if (err == nil) != (shape == "1000") {
			t.Errorf("shape [%s]: err %v", shape, err)
		}
		if limit := uint64(64 * len(body)); grew > limit {
			t.Errorf("shape [%s]: %d bytes allocated for a %d-byte body", shape, grew, len(body))
		}
	}
}

// A request's parameters hold at most MaxParameterValues values, counted
// as they are read: a body of a million of them (members, or empty arrays
// or objects within one) is refused with no more allocated than a few
// times its size, where decoding them took 17 to 44 times it.
func TestParameterValuesAreBounded(t *testing.T) {
	const n = 1 << 20
	input := `"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]`
	var members strings.Builder
	for i := range n {
		if i > 0 {
			members.WriteByte(',')
		}
		fmt.Fprintf(&members, `"%x":0`, i)
	}
	list := func(elem string) string { return strings.TrimSuffix(strings.Repeat(elem+",", n), ",") }
	for name, body := range map[string]string{
		"members":                  `{"parameters":{` + members.String() + `},` + input + `}]}`,
		"empty arrays":             `{"parameters":{"k":[` + list("[]") + `]},` + input + `}]}`,
		"an input's empty objects": `{` + input + `,"parameters":{"k":[` + list("{}") + `]}}]}`,
	} {
		var d RequestDecoder
		var err error
		grew := heaptest.Allocated(func() { _, err = d.Decode([]byte(body), -1) })
		if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "parameters: more than 4096 values in one request") {
			t.Fatalf("%s: %v, want the values refused by count", name, err)
		}
		if grew > 3*uint64(len(body)) {
			t.Errorf("%s (%d bytes): %d bytes allocated to refuse it", name, len(body), grew)
		}
	}
	// A request's parameters within the bound decode.
	var d RequestDecoder
	if _, err := d.Decode([]byte(`{"parameters":{"k":[`+strings.TrimSuffix(strings.Repeat("1,", 4000), ",")+`]},`+input+`}]}`), -1); err != nil {
		t.Fatal(err)
	}
}

// A key given again in a tensor ("data", "shape", "parameters") costs no
// more than the first time, whatever follows it in the body: room made
// for data was sized from the rest of the text, and made again for each
// "data" (2,000 of them before 60 MB of padding took 28 s of CPU); shapes
// and parameters objects given over and over grew the decoder's memory by
// each. A body nested past maxDepth is refused before its recursion
// grows the stack.
func TestRepeatedKeysCostNoMoreThanOnce(t *testing.T) {
	pad := `,"pad":"` + strings.Repeat("a", 8<<20) + `"}`
	for _, tc := range []struct{ name, body, want string }{
		{"data again and again", `{"inputs":[{"name":"x","datatype":"FP64","shape":[2147483647]` + strings.Repeat(`,"data":[0]`, 200) + `}]` + pad,
			`declares 2147483647 elements, data holds 1`},
		{"shape again and again", `{"inputs":[{"name":"x","datatype":"FP32",` + strings.Repeat(`"shape":[`+strings.Repeat("0,", 63)+`0],`, 20000) + `"data":[1]}]}`,
			`declares 0 elements, data holds 1`},
		{"parameters again and again", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1],` + strings.Repeat(`"parameters":{},`, 100000) + `"data":[1]}]}`,
			`parameters: more than 4096 values in one request`},
		{"nesting", `{"x":` + strings.Repeat("[", maxDepth+2) + strings.Repeat("]", maxDepth+2) + `,"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}`,
			`nested too deep`},
	} {
		body := []byte(tc.body)
		var err error
		var d RequestDecoder
		grew := heaptest.Allocated(func() { _, err = d.Decode(body, -1) })
		if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %.300v, want %q", tc.name, err, tc.want)
		}
		if grew > 4<<20 {
			t.Errorf("%s (%d bytes): %d bytes allocated", tc.name, len(body), grew)
		}
	}
}

// A string of bytes that are not UTF-8 decodes to U+FFFD for each, 3
// bytes for 1, made once: through encoding/json an id of them took about
// 20 times its size (ids and names are bounded now; a parameter's value is
// not).
func TestInvalidUTF8StringsCostTheirReplacement(t *testing.T) {
	body := []byte(`{"parameters":{"note":"` + strings.Repeat("\xff", 4<<20) + `"},"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}`)
	var d RequestDecoder
	var req *InferRequest
	var err error
	grew := heaptest.Allocated(func() { req, err = d.Decode(body, -1) })
	if err != nil || req.Parameters["note"] != strings.Repeat("\uFFFD", 4<<20) {
		t.Fatalf("%v, or the value is not U+FFFD for each byte", err)
	}
	if grew > 7*uint64(len(body)) {
		t.Errorf("%d bytes: %d bytes allocated", len(body), grew)
	}
}
