package loadgen

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// maxMessage bounds an error message kept for a report, in bytes: enough
// for a server's sentence, not for a page it sent instead.
const maxMessage = 300

// serverMessage is what a server said in an error body: the message of
// the Open Inference Protocol's {"error": "..."} or OpenAI's
// {"error": {"message": "..."}}, else the body itself on one line, cut
// to maxMessage bytes.
func serverMessage(body string) string {
	var v2 struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal([]byte(body), &v2) == nil && len(v2.Error) > 0 {
		var text string
		var openai struct {
			Message string `json:"message"`
		}
		switch {
		case json.Unmarshal(v2.Error, &text) == nil && text != "":
			body = text
		case json.Unmarshal(v2.Error, &openai) == nil && openai.Message != "":
			body = openai.Message
		}
	}
	return oneLine(body)
}

// errorMessage is err's message for a report: on one line, at most
// maxMessage bytes, without the kind it starts with ("status 400: ").
func errorMessage(err error) string {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "status "); ok {
		if _, after, found := strings.Cut(rest, ": "); found {
			msg = after
		}
	}
	return oneLine(msg)
}

// oneLine folds s's white space to single spaces and cuts it to
// maxMessage bytes, on a rune boundary, marking the cut.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= maxMessage {
		return s
	}
	cut := maxMessage
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
