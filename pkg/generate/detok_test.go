package generate

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/infer-serving/infer/pkg/tokenizer"
)

// byteLevel decodes a byte-level vocabulary (GPT-2's: token id i is byte
// i), as byte-level BPE decoders do: bytes that are not valid UTF-8
// become U+FFFD, one for each invalid run.
func byteLevel(ids []int64) string {
	b := make([]byte, len(ids))
	for i, id := range ids {
		b[i] = byte(id)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

func byteIDs(s string) []int64 {
	ids := make([]int64, len(s))
	for i := range len(s) {
		ids[i] = int64(s[i])
	}
	return ids
}

// A character that spans tokens is emitted whole with the token that
// completes it, never as U+FFFD or a partial byte sequence; what is
// emitted, joined, is the output's text.
func TestDetokenizerEmitsCompleteCharacters(t *testing.T) {
	const out = "naïve café — 東京 🙂 ok"
	d := newDetokenizer(byteLevel, byteIDs("say: "))
	var got strings.Builder
	emitted := 0
	for i, id := range byteIDs(out) {
		delta := d.add(id)
		if !utf8.ValidString(delta) || strings.ContainsRune(delta, utf8.RuneError) {
			t.Fatalf("token %d (byte %#x): emitted %q, not whole characters", i, id, delta)
		}
		if delta != "" {
			emitted++
		}
		got.WriteString(delta)
	}
	if got.String() != out {
		t.Fatalf("emitted %q, want %q", got.String(), out)
	}
	if want := utf8.RuneCountInString(out); emitted != want {
		t.Fatalf("%d deltas, want one a character (%d): a character was held past the token that completed it", emitted, want)
	}
}

// Bytes that never form a character are emitted as the whole text has
// them (U+FFFD) once a complete character follows, so that the stream
// still equals the whole decode.
func TestDetokenizerInvalidBytesFollowTheWholeDecode(t *testing.T) {
	prompt := byteIDs("x")
	out := append([]int64{0xE2, 0x82}, byteIDs("a€")...) // an unfinished "€", then "a€"
	d := newDetokenizer(byteLevel, prompt)
	var got strings.Builder
	for _, id := range out {
		got.WriteString(d.add(id))
	}
	if want := byteLevel(append(prompt, out...))[1:]; got.String() != want {
		t.Fatalf("emitted %q, want %q", got.String(), want)
	}
}

// With a WordPiece vocabulary (the bundled generator's), the output's
// first word keeps the space before it, "##" continuations join the word
// before, and prompt text + emitted text is the whole sequence's decode,
// for random prompts and outputs.
func TestDetokenizerKeepsTheFirstWordsSpace(t *testing.T) {
	vocab, err := os.ReadFile(filepath.Join(bundled, "tiny-gpt", "vocab.txt"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.NewWordPiece(vocab, true)
	if err != nil {
		t.Fatal(err)
	}
	emit := func(prompt, out []int64) string {
		d := newDetokenizer(tok.Decode, prompt)
		var b strings.Builder
		for _, id := range out {
			b.WriteString(d.add(id))
		}
		return b.String()
	}

	prompt, out := tok.EncodeText(nil, "the cat sat on"), tok.EncodeText(nil, "the mat, purring")
	if got := emit(prompt, out); got != " the mat, purring" {
		t.Fatalf("emitted %q, want %q", got, " the mat, purring")
	}
	if alone := tok.Decode(out); strings.HasPrefix(alone, " ") {
		t.Fatalf("the output decoded alone is %q: the test no longer shows the space it would lose", alone)
	}

	rng := rand.New(rand.NewPCG(19, 1))
	first := int64(5) // after [PAD] [UNK] [CLS] [SEP] [MASK]
	random := func(n int, specials bool) []int64 {
		ids := make([]int64, n)
		for i := range ids {
			ids[i] = first + rng.Int64N(int64(tok.Size())-first)
			if specials && rng.IntN(10) == 0 {
				ids[i] = rng.Int64N(first)
			}
		}
		return ids
	}
	pieces := strings.Split(string(vocab), "\n")
	continuations := 0
	for range 500 {
		prompt, out := random(1+rng.IntN(12), false), random(1+rng.IntN(24), true)
		got := emit(prompt, out)
		if whole := tok.Decode(append(append([]int64(nil), prompt...), out...)); tok.Decode(prompt)+got != whole {
			t.Fatalf("prompt %v, output %v: prompt text + emitted %q != whole decode %q", prompt, out, tok.Decode(prompt)+got, whole)
		}
		for _, id := range out {
			if strings.HasPrefix(pieces[id], "##") {
				continuations++
			}
		}
	}
	if continuations == 0 {
		t.Fatal("no output had a \"##\" continuation: the test no longer joins words")
	}
}

// Text that could still become a stop sequence is held back; a stop
// sequence ends the text before it, the earliest of several first.
func TestStopsHoldBackPossibleStops(t *testing.T) {
	for _, c := range []struct {
		stops []string
		text  string
		safe  int // bytes releasable
		cut   int // -1: no stop found
	}{
		{[]string{"ists"}, "the art", 7, -1},
		{[]string{"ists"}, "the arti", 7, -1},
		{[]string{"ists"}, "the artis", 7, -1},
		{[]string{"ists"}, "the artist", 7, -1},
		{[]string{"ists"}, "the artists", 7, 7},
		{[]string{"ists"}, "istsists", 0, 0},
		{[]string{"ists"}, "the artisan", 11, -1}, // "is" began no stop after all
		{[]string{"\n\n", "END"}, "a\n", 1, -1},
		{[]string{"\n\n", "END"}, "a EN", 2, -1},
		{[]string{"\n\n", "END"}, "a END b\n\n", 10, 2}, // the earliest stop wins
		{[]string{"b\n\n", "END"}, "a b\n\nEND", 9, 2},
		{[]string{"——"}, "wait—", 4, -1}, // the held part starts at a character
		{[]string{""}, "text", 4, -1},    // an empty stop stops nothing
		{nil, "text", 4, -1},
		{[]string{"abcab"}, "xabcab", 6, 1},
		{[]string{"abcab"}, "xabca", 1, -1}, // the longest possible start is held
		{[]string{"ab", "b"}, "xa", 1, -1},
	} {
		s := stops(c.stops)
		end, found := s.cut(c.text)
		if want := c.cut >= 0; found != want || (found && end != c.cut) {
			t.Errorf("stops %q, text %q: cut at %d (%v), want %d", c.stops, c.text, end, found, c.cut)
		}
		if got := s.safe(c.text); !found && got != c.safe {
			t.Errorf("stops %q, text %q: %d bytes safe (%q), want %d (%q)", c.stops, c.text, got, c.text[:got], c.safe, c.text[:c.safe])
		}
	}
}
