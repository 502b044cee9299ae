package grpcapi

import (
	"encoding/binary"

	"golang.org/x/net/http2"
)

// The HTTP/2 frame types and flags read (RFC 9113, section 6), as bytes,
// and the length of a frame's header.
const (
	frameData      = byte(http2.FrameData)
	frameHeaders   = byte(http2.FrameHeaders)
	frameRSTStream = byte(http2.FrameRSTStream)
	flagEndStream  = byte(http2.FlagDataEndStream) // HEADERS' END_STREAM is the same bit
	flagPadded     = byte(http2.FlagDataPadded)
	frameHeaderLen = 9
)

// frames is what a frameScanner tells of the frames it passes.
type frames interface {
	// begin: a frame's header has come.
	begin(stream uint32, typ, flags byte, length int, inbound bool)
	// padding: a DATA frame's pad length has come.
	padding(stream uint32, n int, inbound bool)
	// data: part of a DATA frame's data (never its padding).
	data(stream uint32, p []byte, inbound bool)
	// end: a frame has passed whole.
	end(stream uint32, typ, flags byte, inbound bool)
}

// frameScanner follows one direction of an HTTP/2 connection through
// reads or writes of any size, frame header by frame header.
type frameScanner struct {
	preface int // bytes of the client preface still to pass
	head    [frameHeaderLen]byte
	have    int // bytes of head read
	left    int // bytes of the frame's payload still to come
	// The frame being read: its type, flags and stream, and for DATA
	// whether its pad length is still to come and how many bytes of data
	// (not padding) are still to come.
	typ, flags byte
	stream     uint32
	padLength  bool
	dataLeft   int
}

// scan follows p, one direction's bytes (inbound: the client's), telling
// f of the frames it carries.
func (s *frameScanner) scan(p []byte, f frames, inbound bool) {
	if s.preface > 0 {
		k := min(s.preface, len(p))
		s.preface -= k
		p = p[k:]
	}
	for len(p) > 0 {
		if s.left == 0 && s.have < frameHeaderLen {
			k := copy(s.head[s.have:], p)
			s.have += k
			p = p[k:]
			if s.have < frameHeaderLen {
				return
			}
			s.begin(f, inbound)
			if s.left == 0 {
				s.finish(f, inbound)
			}
			continue
		}
		k := min(s.left, len(p))
		if s.typ == frameData {
			s.payload(p[:k], f, inbound)
		}
		s.left -= k
		p = p[k:]
		if s.left == 0 {
			s.finish(f, inbound)
		}
	}
}

// begin reads the frame header just completed.
func (s *frameScanner) begin(f frames, inbound bool) {
	s.left = int(s.head[0])<<16 | int(s.head[1])<<8 | int(s.head[2])
	s.typ, s.flags = s.head[3], s.head[4]
	s.stream = binary.BigEndian.Uint32(s.head[5:]) & 0x7fffffff
	s.padLength = s.typ == frameData && s.flags&flagPadded != 0 && s.left > 0
	s.dataLeft = s.left
	if s.padLength {
		s.dataLeft = 0 // known once the pad length comes
	}
	f.begin(s.stream, s.typ, s.flags, s.left, inbound)
}

// payload takes part of a DATA frame's payload (p, at most s.left bytes):
// its pad length, data, or padding.
func (s *frameScanner) payload(p []byte, f frames, inbound bool) {
	if s.padLength {
		s.padLength = false
		s.dataLeft = max(0, s.left-1-int(p[0]))
		f.padding(s.stream, int(p[0]), inbound)
		p = p[1:]
	}
	if n := min(s.dataLeft, len(p)); n > 0 {
		f.data(s.stream, p[:n], inbound)
		s.dataLeft -= n
	}
}

// finish tells f of the frame just passed.
func (s *frameScanner) finish(f frames, inbound bool) {
	s.have = 0
	f.end(s.stream, s.typ, s.flags, inbound)
}
