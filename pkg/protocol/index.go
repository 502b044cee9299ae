package protocol

import "time"

// IndexEntry is one model version in the body of Triton's repository
// extension's POST /v2/repository/index (a JSON array of them), the same
// fields as the gRPC RepositoryIndexResponse.ModelIndex: name, version,
// state (READY, UNAVAILABLE) and the reason a version is not ready.
//
// infer adds two fields, which a client of the extension ignores:
// LoadedBytes, a loaded version's measured memory, and LastUsed, the
// time keep_alive and the memory budget's least-recently-used order count
// from. Both are absent where there is nothing to say (an unloaded
// version has no size; a version neither loaded nor asked for has no last
// use). The gRPC index has no room for them: its message is Triton's.
type IndexEntry struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	State   string `json:"state,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// LoadedBytes is the version's memory while loaded, as the server
	// measured it (infer: its model hosts' resident memory, or the C heap
	// its load took in the server's process; the same figure as the
	// infer_model_loaded_bytes gauge), in bytes.
	LoadedBytes int64 `json:"loaded_bytes,omitempty"`
	// LastUsed is the start of the version's last request, or its load
	// when it has had none since, in milliseconds since the Unix epoch as
	// Triton's statistics spell last_inference (0: neither).
	LastUsed int64 `json:"last_used,omitempty"`
}

// LastUse returns LastUsed as a time (zero: never loaded nor used).
func (e IndexEntry) LastUse() time.Time {
	if e.LastUsed == 0 {
		return time.Time{}
	}
	return time.UnixMilli(e.LastUsed)
}
