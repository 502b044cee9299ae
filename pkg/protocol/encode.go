package protocol

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// AppendTo appends the response's body to dst, as Encode returns it, and
// returns the extended buffer and the length of its JSON header in bytes
// (-1 when no output is binary). The header is written field by field,
// without reflection, byte for byte as encoding/json writes it (the same
// field order, string escapes and number forms), so that a front end can
// encode into a buffer it reuses.
func (r *InferResponse) AppendTo(dst []byte) ([]byte, int64, error) {
	start := len(dst)
	dst = append(dst, `{"model_name":`...)
	dst = appendJSONString(dst, r.ModelName)
	if r.ModelVersion != "" {
		dst = append(dst, `,"model_version":`...)
		dst = appendJSONString(dst, r.ModelVersion)
	}
	if r.ID != "" {
		dst = append(dst, `,"id":`...)
		dst = appendJSONString(dst, r.ID)
	}
	var err error
	if len(r.Parameters) > 0 {
		dst = append(dst, `,"parameters":`...)
		if dst, err = appendMarshal(dst, r.Parameters); err != nil {
			return dst, 0, err
		}
	}
	dst = append(dst, `,"outputs":[`...)
	anyBinary := false
	for i, t := range r.Outputs {
		if i > 0 {
			dst = append(dst, ',')
		}
		binary := r.Binary != nil && r.Binary[i]
		anyBinary = anyBinary || binary
		dst = append(dst, `{"name":`...)
		dst = appendJSONString(dst, t.Name)
		dst = append(dst, `,"shape":[`...)
		for k, d := range t.Shape {
			if k > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendInt(dst, d, 10)
		}
		dst = append(dst, `],"datatype":`...)
		dst = appendJSONString(dst, t.DataType.String())
		if binary {
			dst = append(dst, `,"parameters":{"`+ParamBinaryDataSize+`":`...)
			dst = strconv.AppendInt(dst, int64(len(t.Data)), 10)
			dst = append(dst, "}}"...)
			continue
		}
		dst = append(dst, `,"data":`...)
		if dst, err = appendJSONValues(dst, t); err != nil {
			return dst, 0, err
		}
		dst = append(dst, '}')
	}
	dst = append(dst, "]}"...)
	if !anyBinary {
		return dst, -1, nil
	}
	header := int64(len(dst) - start)
	for i, t := range r.Outputs {
		if r.Binary[i] {
			dst = append(dst, t.Data...)
		}
	}
	return dst, header, nil
}

// appendJSONString appends s as a JSON string, as encoding/json writes
// it: a string of plain printable ASCII as it is, any other through
// encoding/json itself (its escapes of control characters, quotes, HTML
// characters, U+2028 and U+2029, and invalid UTF-8).
func appendJSONString[S ~string | ~[]byte](dst []byte, s S) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(string(s)) // a string always marshals
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// appendMarshal appends v as encoding/json writes it.
func appendMarshal(dst []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	return append(dst, b...), err
}
