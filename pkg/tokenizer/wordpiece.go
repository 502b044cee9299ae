// Package tokenizer turns text into the token ids BERT-style encoders take:
// WordPiece over a vocab.txt, with BERT's basic pre-tokenization.
package tokenizer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// WordPiece is a WordPiece tokenizer (as BERT's): clean the text, split it
// on whitespace and punctuation (and around CJK characters), optionally
// lowercase and strip accents, then split each word into the longest
// vocabulary pieces, continuations marked "##". It is safe for concurrent
// use.
type WordPiece struct {
	vocab     map[string]int64
	tokens    []string // by id
	lowercase bool
	// Special token ids.
	cls, sep, pad, unk int64
}

// maxWordChars is the longest word split into pieces; longer words become
// [UNK], as BERT's tokenizer does.
const maxWordChars = 100

// NewWordPiece reads a vocabulary, one token per line, the line number
// being the id. It must hold [CLS], [SEP], [PAD] and [UNK].
func NewWordPiece(vocab []byte, lowercase bool) (*WordPiece, error) {
	w := &WordPiece{vocab: map[string]int64{}, lowercase: lowercase}
	sc := bufio.NewScanner(bytes.NewReader(vocab))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	var id int64
	for sc.Scan() {
		tok := strings.TrimRight(sc.Text(), "\r")
		if _, dup := w.vocab[tok]; !dup && tok != "" {
			w.vocab[tok] = id
		}
		w.tokens = append(w.tokens, tok)
		id++
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read vocabulary: %w", err)
	}
	for _, s := range []struct {
		name string
		dst  *int64
	}{{"[CLS]", &w.cls}, {"[SEP]", &w.sep}, {"[PAD]", &w.pad}, {"[UNK]", &w.unk}} {
		v, ok := w.vocab[s.name]
		if !ok {
			return nil, fmt.Errorf("vocabulary of %d tokens lacks %s", id, s.name)
		}
		*s.dst = v
	}
	return w, nil
}

// Size returns the number of distinct tokens.
func (w *WordPiece) Size() int { return len(w.vocab) }

// PadID returns the id of [PAD].
func (w *WordPiece) PadID() int64 { return w.pad }

// SepID returns the id of [SEP], which ends a generated text.
func (w *WordPiece) SepID() int64 { return w.sep }

// ClsID returns the id of [CLS].
func (w *WordPiece) ClsID() int64 { return w.cls }

// EncodeText appends the ids of text's pieces, without special tokens.
func (w *WordPiece) EncodeText(dst []int64, text string) []int64 {
	dst, _ = w.EncodeTextUpTo(dst, text, math.MaxInt)
	return dst
}

// EncodeTextUpTo is EncodeText that stops once dst holds more than n
// ids, and reports whether it stopped before the end of text: a caller
// that refuses a text of more than n tokens need not read the rest.
func (w *WordPiece) EncodeTextUpTo(dst []int64, text string, n int) ([]int64, bool) {
	for word := range w.words(text) {
		if len(dst) > n {
			return dst, true
		}
		dst = w.appendPieces(dst, word)
	}
	return dst, false
}

// Decode returns the text of ids: pieces joined by spaces, "##"
// continuations joined to the piece before, special tokens left out.
func (w *WordPiece) Decode(ids []int64) string {
	var b strings.Builder
	for _, id := range ids {
		if id < 0 || int(id) >= len(w.tokens) || id == w.cls || id == w.sep || id == w.pad {
			continue
		}
		tok := w.tokens[id]
		if rest, ok := strings.CutPrefix(tok, "##"); ok {
			b.WriteString(rest)
			continue
		}
		if b.Len() > 0 && !(len(tok) == 1 && isPunct(rune(tok[0])) && tok != "(" && tok != "[") {
			b.WriteByte(' ')
		}
		b.WriteString(tok)
	}
	return b.String()
}

// ErrEmpty is returned for a text with no tokens at all.
var ErrEmpty = errors.New("text has no tokens")

// Encode returns the ids of [CLS] text [SEP], truncated to maxLen ids
// (maxLen < 3 means no limit beyond the special tokens).
func (w *WordPiece) Encode(dst []int64, text string, maxLen int) []int64 {
	dst = append(dst, w.cls)
	limit := maxLen - 1 // room for [SEP]
	for word := range w.words(text) {
		if maxLen >= 3 && len(dst) >= limit {
			break
		}
		dst = w.appendPieces(dst, word)
		if maxLen >= 3 && len(dst) > limit {
			dst = dst[:limit]
		}
	}
	return append(dst, w.sep)
}

// Tokens returns the pieces of text, without special tokens: a helper for
// inspection and tests.
func (w *WordPiece) Tokens(text string) []string {
	inv := make(map[int64]string, len(w.vocab))
	for k, v := range w.vocab {
		inv[v] = k
	}
	var out []string
	for word := range w.words(text) {
		for _, id := range w.appendPieces(nil, word) {
			out = append(out, inv[id])
		}
	}
	return out
}

// appendPieces splits one word greedily into the longest vocabulary
// pieces; a word that cannot be split becomes [UNK].
func (w *WordPiece) appendPieces(dst []int64, word string) []int64 {
	if len(word) > maxWordChars && utf8.RuneCountInString(word) > maxWordChars { // counted, not copied: a word may be the whole text
		return append(dst, w.unk)
	}
	start := len(dst)
	var piece strings.Builder
	for begin := 0; begin < len(word); {
		found := int64(-1)
		end := len(word)
		for ; end > begin; end-- {
			if !utf8Boundary(word, end) {
				continue
			}
			piece.Reset()
			if begin > 0 {
				piece.WriteString("##")
			}
			piece.WriteString(word[begin:end])
			if id, ok := w.vocab[piece.String()]; ok {
				found = id
				break
			}
		}
		if found < 0 {
			return append(dst[:start], w.unk)
		}
		dst = append(dst, found)
		begin = end
	}
	return dst
}

func utf8Boundary(s string, i int) bool {
	return i == len(s) || s[i]&0xC0 != 0x80
}

// words yields BERT's basic tokens: whitespace-separated, punctuation and
// CJK characters on their own, control characters dropped, and when
// lowercasing, accents stripped (NFD, then combining marks removed). The
// text is lowercased and normalized a chunk at a time (lowerChunk) as the
// words are read, and a word is kept only up to one rune past the
// longest that is not [UNK]: a caller that stops after its tokens' limit
// never normalizes or copies the rest (a 60 MB text took 14-28 s of CPU
// and 16-20x its size, for the 512 tokens kept).
func (w *WordPiece) words(text string) func(func(string) bool) {
	return func(yield func(string) bool) {
		var cur strings.Builder
		runes := 0
		flush := func() bool {
			if cur.Len() == 0 {
				return true
			}
			s := cur.String()
			cur.Reset()
			runes = 0
			return yield(s)
		}
		for rest := text; len(rest) > 0; {
			if runes > maxWordChars {
				// The word is [UNK] already: find its end in the text as
				// it is, normalizing none of it (case and accents change
				// no rune into a space, punctuation or CJK).
				rest = rest[wordEnd(rest):]
				if len(rest) == 0 {
					break
				}
			}
			chunk := rest
			if w.lowercase {
				chunk, rest = lowerChunk(rest)
			} else {
				rest = ""
			}
			for _, r := range chunk {
				switch {
				case r == 0 || r == unicode.ReplacementChar || isControl(r):
					continue
				case unicode.IsSpace(r):
					if !flush() {
						return
					}
				case isPunct(r) || isCJK(r):
					if !flush() || !yield(string(r)) {
						return
					}
				case runes <= maxWordChars: // past it the word is [UNK] whatever follows
					cur.WriteRune(r)
					runes++
				}
			}
		}
		flush()
	}
}

// wordEnd is the offset of the first rune in text that ends a word.
func wordEnd(text string) int {
	for i, r := range text {
		if unicode.IsSpace(r) || isPunct(r) || isCJK(r) {
			return i
		}
	}
	return len(text)
}

// chunkBytes is about how much of a text lowerChunk lowercases and
// normalizes at a time.
const chunkBytes = 4 << 10

// lowerChunk lowercases and strips the accents of text's first chunk
// (about chunkBytes, cut where normalization may cut: before a rune that
// starts a segment in NFD), and returns it with the rest of text. Each
// step is rune by rune or segment by segment, so chunks give what the
// whole text would.
func lowerChunk(text string) (chunk, rest string) {
	n := len(text)
	if n > chunkBytes {
		i := chunkBytes
		for i < n && !utf8.RuneStart(text[i]) {
			i++
		}
		if b := norm.NFD.FirstBoundaryInString(text[i:]); b >= 0 {
			n = i + b
		}
	}
	return stripAccents(strings.ToLower(text[:n])), text[n:]
}

func stripAccents(s string) string {
	d := norm.NFD.String(s)
	var b strings.Builder
	b.Grow(len(d))
	for _, r := range d {
		if !unicode.Is(unicode.Mn, r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isControl(r rune) bool {
	if r == '\t' || r == '\n' || r == '\r' {
		return false
	}
	return unicode.IsControl(r) || unicode.In(r, unicode.Cf)
}

// isPunct follows BERT: ASCII symbols count as punctuation too.
func isPunct(r rune) bool {
	if r >= 33 && r <= 47 || r >= 58 && r <= 64 || r >= 91 && r <= 96 || r >= 123 && r <= 126 {
		return true
	}
	return unicode.IsPunct(r)
}

func isCJK(r rune) bool {
	return r >= 0x4E00 && r <= 0x9FFF || r >= 0x3400 && r <= 0x4DBF || r >= 0x20000 && r <= 0x2A6DF ||
		r >= 0x2A700 && r <= 0x2B73F || r >= 0x2B740 && r <= 0x2B81F || r >= 0x2B820 && r <= 0x2CEAF ||
		r >= 0xF900 && r <= 0xFAFF || r >= 0x2F800 && r <= 0x2FA1F
}
