// Package yamlfile reads configuration files written in YAML strictly,
// with errors a person can act on: each names the line, the key and the
// form its value should take ("line 3: http_port: `eight` is not a whole
// number"), or the keys that exist where an unknown one was written,
// never a Go type.
package yamlfile

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Decode reads one YAML document from data into v, a pointer to a struct
// with yaml tags. Unknown keys are errors; an empty document leaves v as
// it is. A value of the wrong form, or an unknown key, gives an error
// naming the line, the key and what is expected, every such problem of
// the document joined; a document that is not YAML, yaml.v3's own error.
func Decode(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(v)
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return err
	}
	keys := map[int][]keyAt{}
	index(&root, "", keys)
	errs := make([]error, len(te.Errors))
	for i, e := range te.Errors {
		errs[i] = errors.New(explain(e, keys, reflect.TypeOf(v)))
	}
	return errors.Join(errs...)
}

// KeyLines returns the line of every key of a YAML document by its dotted
// path ("dynamic_batching.max_queue_size", "fallback[0].model"), so that
// a check made after decoding can say where the value it refuses is. A
// document that does not parse has none.
func KeyLines(data []byte) map[string]int {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return nil
	}
	keys := map[int][]keyAt{}
	index(&root, "", keys)
	out := map[string]int{}
	for line, on := range keys {
		for _, k := range on {
			if l, ok := out[k.path]; !ok || line < l {
				out[k.path] = line // a key's own line comes before its value's
			}
		}
	}
	return out
}

// keyAt is a key's dotted path and its scalar value, on one line.
type keyAt struct{ path, value string }

// index records every key of n by the lines of the key and its value.
func index(n *yaml.Node, prefix string, keys map[int][]keyAt) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			index(c, prefix, keys)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			path := k.Value
			if prefix != "" {
				path = prefix + "." + k.Value
			}
			keys[k.Line] = append(keys[k.Line], keyAt{path, k.Value})
			keys[val.Line] = append(keys[val.Line], keyAt{path, val.Value}) // "" for a list or mapping
			index(val, path, keys)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			path := fmt.Sprintf("%s[%d]", prefix, i)
			keys[c.Line] = append(keys[c.Line], keyAt{path, c.Value})
			index(c, path, keys)
		}
	}
}

// DecodeNode decodes the YAML under n (a block of a file, decoded apart
// from it) into v as Decode does: unknown keys refused, every problem
// reported with its key's path, in the configuration's words. The lines
// a problem is on are those of the file, counted from n's.
func DecodeNode(n *yaml.Node, v any) error {
	buf, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	err = Decode(buf, v)
	if err == nil {
		return nil
	}
	// The block re-encoded starts at its first line: line k of it is
	// line n.Line+k-1 of the file, as long as the block keeps one key a
	// line (yaml.v3 encodes block style so); a flow mapping {a: 1, b: 2}
	// is re-encoded over several, so its problems go without a line.
	flow := n.Style&yaml.FlowStyle != 0
	msgs := strings.Split(err.Error(), "\n")
	for i, m := range msgs {
		if l := onLine.FindStringSubmatch(m); l != nil {
			k, _ := strconv.Atoi(l[1])
			if flow || n.Line == 0 {
				msgs[i] = l[2]
			} else {
				msgs[i] = fmt.Sprintf("line %d: %s", n.Line+k-1, l[2])
			}
		}
	}
	return errors.New(strings.Join(msgs, "\n"))
}

// ValueError is a custom unmarshaler's refusal of the value at n: a
// *yaml.TypeError, with which yaml.v3 goes on decoding the rest, so that
// Decode reports every problem of a file, not only the first; Decode
// names the key the value is on.
func ValueError(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: ", n.Line) + fmt.Sprintf(format, args...)}}
}

var (
	wrongForm  = regexp.MustCompile("^line ([0-9]+): cannot unmarshal !!([a-z]+) (?:`(.*)` )?into (.+)$")
	unknownKey = regexp.MustCompile(`^line ([0-9]+): field (.+) not found in type (.+)$`)
	onLine     = regexp.MustCompile(`^line ([0-9]+): (.+)$`)
)

// explain rewrites one of yaml.v3's messages in the configuration's terms.
func explain(msg string, keys map[int][]keyAt, root reflect.Type) string {
	if m := wrongForm.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		path := pick(keys[line], m[3], false)
		shown := "`" + m[3] + "`"
		if m[3] == "" {
			shown = map[string]string{"seq": "a list", "map": "a mapping"}[m[2]]
			if shown == "" {
				shown = "the value"
			}
		}
		return fmt.Sprintf("line %d: %s: %s is not %s", line, path, shown, form(m[4], root))
	}
	if m := unknownKey.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		path := pick(keys[line], m[2], true)
		out := fmt.Sprintf("line %d: %s: no such key", line, path)
		if known := keysOf(m[3], root); len(known) > 0 {
			out += " (the keys here are " + strings.Join(known, ", ") + ")"
		}
		return out
	}
	if m := onLine.FindStringSubmatch(msg); m != nil { // a ValueError
		line, _ := strconv.Atoi(m[1])
		if on := keys[line]; len(on) > 0 {
			path := on[len(on)-1].path
			if !strings.HasPrefix(m[2], path[strings.LastIndexAny(path, ".]")+1:]) {
				return fmt.Sprintf("line %d: %s: %s", line, path, m[2])
			}
		}
	}
	return msg
}

// pick returns the path of the key on a line whose value (or, for an
// unknown key, whose name) is value; the line's last key without one.
func pick(on []keyAt, value string, isKey bool) string {
	for _, k := range slices.Backward(on) {
		last := k.path[strings.LastIndexAny(k.path, ".]")+1:]
		if k.value == value && (!isKey || last == value) {
			return k.path
		}
	}
	if len(on) > 0 {
		return on[len(on)-1].path
	}
	return "a value"
}

var durationType = reflect.TypeFor[time.Duration]()

// form says in words what a value of the Go type called name must be.
func form(name string, root reflect.Type) string {
	if t := find(root, name); t != nil {
		return formOf(t)
	}
	return "of the expected form"
}

func formOf(t reflect.Type) string {
	if t == durationType {
		return "a duration such as 500ms, 5s or 1m30s"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number, 0 or more"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list, each " + formOf(t.Elem())
	case reflect.Map:
		return "a mapping"
	case reflect.Struct:
		return "a mapping of keys (" + strings.Join(tagsOf(t), ", ") + ")"
	case reflect.Pointer:
		return formOf(t.Elem())
	}
	return "of the expected form"
}

// keysOf returns the keys of the struct type called name.
func keysOf(name string, root reflect.Type) []string {
	if t := find(root, name); t != nil && t.Kind() == reflect.Struct {
		return tagsOf(t)
	}
	return nil
}

func tagsOf(t reflect.Type) []string {
	var keys []string
	for f := range t.Fields() {
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag != "-" && f.IsExported() {
			keys = append(keys, cmp.Or(tag, strings.ToLower(f.Name)))
		}
	}
	return keys
}

// find returns the type reachable from t (through pointers, slices, maps
// and struct fields) that yaml.v3 calls name, nil if there is none.
func find(t reflect.Type, name string) reflect.Type {
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type) reflect.Type
	walk = func(t reflect.Type) reflect.Type {
		if t == nil || seen[t] {
			return nil
		}
		seen[t] = true
		if t.String() == name {
			return t
		}
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
			return walk(t.Elem())
		case reflect.Struct:
			for f := range t.Fields() {
				if found := walk(f.Type); found != nil {
					return found
				}
			}
		}
		return nil
	}
	return walk(t)
}
