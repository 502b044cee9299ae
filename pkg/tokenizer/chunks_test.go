package tokenizer

import (
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/infer-serving/infer/pkg/internal/heaptest"
)

// wholeWords is words as it was before texts were normalized a chunk at
// a time: the whole text lowercased and stripped first, every word kept
// whole. Chunks must give the same words, [UNK]'s aside.
func (w *WordPiece) wholeWords(text string) []string {
	text = stripAccents(strings.ToLower(text))
	var out []string
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	for _, r := range text {
		switch {
		case r == 0 || r == unicode.ReplacementChar || isControl(r):
		case unicode.IsSpace(r):
			flush()
		case isPunct(r) || isCJK(r):
			flush()
			out = append(out, string(r))
		default:
			cur.WriteRune(r)
		}
	}
	flush()
	return out
}

// Texts read a chunk at a time give the ids the whole text gives: accents
// and combining marks across a chunk's edge, Hangul, capitals that lower
// to more bytes, words longer than any piece.
func TestChunksTokenizeAsTheWholeText(t *testing.T) {
	w := bundled(t)
	texts := []string{
		strings.Repeat("Héllo Wörld, ÉTÉ ", 700),
		strings.Repeat("e\u0301", 5000) + " naïve",
		strings.Repeat("ΐ", 3000) + " done",
		strings.Repeat("가", 2000) + " 한국어 text",
		strings.Repeat("a", chunkBytes-1) + "\u0301\u0301\u0301 b",
		strings.Repeat("İSTANBUL ", 600),
		strings.Repeat("x", 10000) + " tail words",
	}
	for i, text := range texts {
		var want []int64
		for _, word := range w.wholeWords(text) {
			want = w.appendPieces(want, word)
		}
		if got := w.EncodeText(nil, text); !slices.Equal(got, want) {
			t.Errorf("text %d: %d ids, the whole text's %d", i, len(got), len(want))
		}
	}
}

// A text past its tokens' limit is read no further than the limit needs,
// and a word past the longest piece is not normalized or kept past it:
// 8 MB of text, next to nothing allocated.
func TestLongTextIsReadOnlyToItsLimit(t *testing.T) {
	w := bundled(t)
	for text, want := range map[string]int{
		strings.Repeat("ΐ", 4<<20) + " hello": 4, // [CLS] [UNK] hello [SEP]
		strings.Repeat("héllo ", 1<<20):       512,
	} {
		var ids []int64
		grew := heaptest.Allocated(func() { ids = w.Encode(nil, text, 512) })
		if len(ids) != want {
			t.Fatalf("%d ids, want %d", len(ids), want)
		}
		if grew > 1<<20 {
			t.Errorf("%d bytes of text: %d bytes allocated for 512 tokens", len(text), grew)
		}
	}
}
