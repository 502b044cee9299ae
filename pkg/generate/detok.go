package generate

import (
	"strings"
	"unicode/utf8"
)

// detokenizer turns a sequence's tokens into text as they come, the way
// serving engines do (vLLM's detokenize_incrementally, Hugging Face's
// DecodeStream): it decodes a short window of the tokens before the new
// ones together with them and emits what the new ones add, so that the
// text streamed is exactly the text of the whole sequence decoded at
// once. Decoding the output on its own instead loses the space before its
// first word, and splits characters that span tokens.
//
// prefix and read are vLLM's prefix_offset and read_offset: the window
// starts at prefix, and read is where the tokens whose text was emitted
// end.
type detokenizer struct {
	decode       func([]int64) string
	ids          []int64 // the prompt's, then the output's
	prefix, read int
}

// detokenizerWindow is how many prompt tokens are decoded before the
// first output token: enough for any tokenizer's spacing rules to see
// the word before (vLLM's INITIAL_INCREMENTAL_DETOKENIZATION_OFFSET).
const detokenizerWindow = 5

func newDetokenizer(decode func([]int64) string, prompt []int64) *detokenizer {
	return &detokenizer{decode: decode, ids: append([]int64(nil), prompt...),
		prefix: max(len(prompt)-detokenizerWindow, 0), read: len(prompt)}
}

// peek returns the text add(id) would return now, adding nothing: what
// an alternative to the next token would have added to the text.
func (d *detokenizer) peek(id int64) string {
	window := append(d.ids[d.prefix:len(d.ids):len(d.ids)], id)
	before := d.decode(d.ids[d.prefix:d.read])
	after := d.decode(window)
	if len(after) <= len(before) || !strings.HasPrefix(after, before) {
		return ""
	}
	if r, _ := utf8.DecodeLastRuneInString(after); r == utf8.RuneError {
		return ""
	}
	return after[len(before):]
}

// add appends a token and returns the text it completes: "" while it only
// starts a character (a byte-level token's partial UTF-8 decodes to
// U+FFFD) or has no text (a special token); what it held back comes with
// the token that completes it.
func (d *detokenizer) add(id int64) string {
	d.ids = append(d.ids, id)
	before := d.decode(d.ids[d.prefix:d.read])
	after := d.decode(d.ids[d.prefix:])
	if len(after) <= len(before) || !strings.HasPrefix(after, before) {
		return ""
	}
	if r, _ := utf8.DecodeLastRuneInString(after); r == utf8.RuneError {
		return "" // an incomplete character: wait for the rest
	}
	d.prefix, d.read = d.read, len(d.ids)
	return after[len(before):]
}

// stops finds stop sequences in a growing text and says how much of it is
// safe to send: none of it may be text that a stop sequence could still
// begin with, since a stop sequence and what follows it are never part of
// the output, streamed or not.
type stops []string

// cut returns the length of text up to the first stop sequence in it,
// and whether one is.
func (s stops) cut(text string) (int, bool) {
	end, found := len(text), false
	for _, stop := range s {
		if i := strings.Index(text, stop); stop != "" && i >= 0 && i < end {
			end, found = i, true
		}
	}
	return end, found
}

// safe returns the length of text's longest prefix that no stop sequence
// can still begin in: text less its longest suffix that is a proper
// prefix of a stop sequence. That suffix begins at a character boundary,
// since it equals the start of a stop sequence.
func (s stops) safe(text string) int {
	hold := 0
	for _, stop := range s {
		for k := min(len(stop)-1, len(text)); k > hold; k-- {
			if strings.HasSuffix(text, stop[:k]) {
				hold = k
				break
			}
		}
	}
	return len(text) - hold
}
