// Package protowalk reads a protobuf message field by field from its wire
// bytes, with no generated types and nothing allocated: the readers that
// must bound what a hostile message makes (an ONNX model file, a gRPC
// inference request) count and check each field before they keep it.
package protowalk

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// Error is a message's framing fault: a tag, a length or a value cut
// short or out of range.
type Error struct {
	Field protowire.Number // the field whose value is at fault; 0 for a tag
	Err   error            // protowire's
}

func (e *Error) Error() string {
	if e.Field == 0 {
		return fmt.Sprintf("malformed protobuf: %v", e.Err)
	}
	return fmt.Sprintf("malformed protobuf: field %d: %v", e.Field, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Fields calls fn with each field of the message b, in order: its number,
// its wire type, and its bytes (a length-delimited field, v aliasing b) or
// its value (x: a varint, or a fixed32 or fixed64 field's bits). A group
// is skipped whole, as protobuf skips a field it does not know; a field
// number past protowire.MaxValidNumber is a fault, as protobuf's decoder
// has it. Its errors are *Error, or fn's.
func Fields(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n >= 0 && num > protowire.MaxValidNumber {
			n = -2 // protowire's code for an invalid field number
		}
		if n < 0 {
			return &Error{Err: protowire.ParseError(n)}
		}
		b = b[n:]
		var (
			v []byte
			x uint64
		)
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var x32 uint32
			x32, n = protowire.ConsumeFixed32(b)
			x = uint64(x32)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return &Error{Field: num, Err: protowire.ParseError(n)}
		}
		b = b[n:]
		if typ == protowire.StartGroupType {
			continue
		}
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}
