package protocol

import "strings"

// WrongPort recognises, in the error of an exchange with a server, the
// answer of a port that speaks another of infer serve's protocols than
// the one asked (HTTP/1.1 asked for gRPC, gRPC's HTTP/2 asked for HTTP,
// the metrics port's text asked for JSON), and says which port to give;
// "" otherwise. The ports are infer serve's defaults: HTTP 8000, gRPC
// 8001, metrics 8002.
func WrongPort(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "looked like an HTTP/1.1 header"):
		return "the port answers HTTP/1.1, not gRPC: infer serve's gRPC port is its HTTP port + 1, 8001 by default"
	case strings.Contains(msg, `malformed HTTP response "\x00\x00`), strings.Contains(msg, "readLoopPeekFailLocked"):
		// an HTTP/2 server's first frame, read as an answer or sent before the request
		return "the port answers HTTP/2 frames, as a gRPC port does: give the HTTP port, 8000 by default, or --protocol grpc"
	case strings.Contains(msg, "invalid character '#' looking for beginning of value"):
		return "the port answers text starting with '#', as Prometheus metrics do: give the HTTP port, 8000 by default, not the metrics port"
	}
	return ""
}
