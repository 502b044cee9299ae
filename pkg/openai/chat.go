package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/infer-serving/infer/pkg/protocol"
)

type message struct {
	Role      string          `json:"role"`
	Content   json.RawMessage `json:"content"`
	Name      string          `json:"name"`
	ToolCalls json.RawMessage `json:"tool_calls"`
	Refusal   *string         `json:"refusal"`
}

// part is one element of a message's content list.
type part struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// messages decodes a chat request's messages, counted first: past
// maxMessages they are refused before any is decoded. Fields a message
// does not have are refused by name, as the body's are.
func messages(raw json.RawMessage) ([]message, error) {
	if n := protocol.JSONLen(raw); n > maxMessages {
		return nil, bad("messages: %d messages, want at most %d", n, maxMessages)
	}
	var msgs []message
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&msgs); err != nil {
		if te := new(json.UnmarshalTypeError); errors.As(err, &te) {
			te.Field = strings.TrimSuffix("messages."+te.Field, ".")
			return nil, decodeErr(te)
		}
		return nil, bad("messages: %v", strings.TrimPrefix(err.Error(), "json: "))
	}
	return msgs, nil
}

// chatPrompt renders messages as the prompt a completion model continues:
// one "role: text" line each, then "assistant:". Content is a string or
// a list of text parts; other parts are refused by name.
func chatPrompt(raw json.RawMessage) (string, error) {
	msgs, err := messages(raw)
	if err != nil {
		return "", err
	}
	if len(msgs) == 0 {
		return "", bad("messages: want at least one")
	}
	var b strings.Builder
	for i, m := range msgs {
		switch m.Role {
		case "system", "developer", "user", "assistant":
		case "":
			return "", bad("messages[%d].role: missing", i)
		default:
			return "", bad("messages[%d].role %s: want system, developer, user or assistant (this server calls no tools)", i, protocol.Clip(m.Role))
		}
		if set(m.ToolCalls) {
			return "", bad("messages[%d].tool_calls: this server calls no tools", i)
		}
		text, err := content(m.Content, i)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%s: %s\n", m.Role, text)
	}
	b.WriteString("assistant:")
	return b.String(), nil
}

// content reads message i's content: a string, or text parts joined.
func content(raw json.RawMessage, i int) (string, error) {
	if !set(raw) {
		return "", nil // an assistant turn may have none
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	if n := protocol.JSONLen(raw); n > maxParts {
		return "", bad("messages[%d].content: %d parts, want at most %d", i, n, maxParts)
	}
	var parts []json.RawMessage
	if json.Unmarshal(raw, &parts) != nil {
		return "", bad("messages[%d].content: want a string or a list of parts", i)
	}
	var texts []string
	for j, raw := range parts {
		var p struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(raw, &p) != nil {
			return "", bad("messages[%d].content[%d]: want an object with a type", i, j)
		}
		if p.Type != "text" {
			return "", bad("messages[%d].content[%d].type %s: only text parts are supported", i, j, protocol.Clip(p.Type))
		}
		var t part
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&t); err != nil {
			return "", bad("messages[%d].content[%d]: %v", i, j, err)
		}
		texts = append(texts, t.Text)
	}
	return strings.Join(texts, "\n"), nil
}
