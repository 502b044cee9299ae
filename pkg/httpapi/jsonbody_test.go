package httpapi

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/infer-serving/infer/pkg/internal/heaptest"
)

// A body's announced length sizes nothing on a port where the body has
// not been read yet (net/http's): a client announcing 512 MiB and sending
// 11 bytes costs the server about those bytes, not the 512 MiB.
func TestReadJSONGrowsAsTheBytesCome(t *testing.T) {
	const limit = 1 << 30
	r := httptest.NewRequest("PUT", "/v2/admin/models/mlp/traffic", strings.NewReader(`{"a":"b"}  `))
	r.ContentLength = 512 << 20
	var raw []byte
	var err error
	grew := heaptest.Allocated(func() { raw, err = ReadJSON(httptest.NewRecorder(), r, limit) })
	if err != nil || string(raw) != `{"a":"b"}  ` {
		t.Fatalf("%q, %v", raw, err)
	}
	if grew > 1<<20 {
		t.Errorf("reading an 11-byte body announced at 512 MiB allocated %d bytes", grew)
	}
}
