package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func bundled(t testing.TB) *WordPiece {
	t.Helper()
	v, err := os.ReadFile(filepath.Join("..", "..", "testdata", "models", "text-encoder", "vocab.txt"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWordPiece(v, true)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWordPieceTokens(t *testing.T) {
	w := bundled(t)
	for _, tc := range []struct{ text, want string }{
		{"Hello, world!", "hello , world !"},
		// Accents stripped, then pieces of this 8,192-entry vocabulary.
		{"The café's naïve résumé", "the cafe ' s na ##ive re ##su ##me"},
		{"tokenization", "to ##ken ##ization"},
		{"  spaces\tand\nnewlines  ", "spaces and new ##line ##s"},
		{"東京", "東 京"},
		{"x\u0000y\u200bz", "x ##y ##z"}, // NUL and zero-width space dropped: one word
		{strings.Repeat("a", 101), "[UNK]"},
	} {
		got := strings.Join(w.Tokens(tc.text), " ")
		if got != tc.want {
			t.Errorf("%q: %q, want %q", tc.text, got, tc.want)
		}
	}
}

func TestEncodeAddsSpecialTokensAndTruncates(t *testing.T) {
	w := bundled(t)
	ids := w.Encode(nil, "hello world", 0)
	if len(ids) != 4 || ids[0] != w.cls || ids[3] != w.sep || ids[1] != w.vocab["hello"] {
		t.Fatalf("ids %v", ids)
	}
	ids = w.Encode(nil, strings.Repeat("hello ", 50), 8)
	if len(ids) != 8 || ids[7] != w.sep {
		t.Fatalf("truncated ids %v", ids)
	}
	if ids := w.Encode(nil, "", 8); len(ids) != 2 {
		t.Fatalf("empty text: %v", ids)
	}
	if _, err := NewWordPiece([]byte("[PAD]\n[UNK]\nfoo\n"), true); err == nil || !strings.Contains(err.Error(), "[CLS]") {
		t.Fatalf("vocabulary without [CLS]: %v", err)
	}
}

// FuzzEncode: any text, valid UTF-8 or not, encodes to ids within the
// vocabulary, framed by [CLS] and [SEP], within the length limit; nothing
// panics or hangs.
func FuzzEncode(f *testing.F) {
	w := bundled(f)
	for _, s := range []string{"Hello, world!", "café", "東京", "\xff\xfe", strings.Repeat("ab", 80), "a\u0301", strings.Repeat("x", 5000), strings.Repeat("é", 101)} {
		f.Add(s, 16)
	}
	f.Fuzz(func(t *testing.T, text string, maxLen int) {
		maxLen = maxLen % 600
		ids := w.Encode(nil, text, maxLen)
		if len(ids) < 2 || ids[0] != w.cls || ids[len(ids)-1] != w.sep {
			t.Fatalf("%q: ids %v not framed by [CLS] and [SEP]", text, ids)
		}
		if len(ids) > 2+4*len(text) { // each piece or [UNK] spells at least a byte, a rune grows to 4 at most
			t.Fatalf("%q: %d ids from %d bytes", text, len(ids), len(text))
		}
		if maxLen >= 3 && len(ids) > maxLen {
			t.Fatalf("%q: %d ids over the limit %d", text, len(ids), maxLen)
		}
		for _, id := range ids {
			if id < 0 || id >= int64(len(w.vocab)) {
				t.Fatalf("%q: id %d outside the vocabulary", text, id)
			}
		}
	})
}
