// Command gen writes the bundled demo models under testdata/models,
// deterministically: the same source always yields the same bytes.
//
//	go run ./testdata/gen            # regenerate every model.onnx
//	go run ./testdata/gen -check     # fail if a committed file differs
//	go run ./testdata/gen -many 50 -dir /tmp/many   # 50 distinct models, about 4 MiB each
//
// -many N writes a repository of N distinct small models (m000 to m...,
// version 1, or -many-version V) into -dir instead, generated at run time
// so that nothing of that size is committed: scripts/many-models.sh serves
// them under a memory budget.
//
// The text encoder's WordPiece vocabulary, testdata/models/text-encoder/vocab.txt,
// is committed; -bert-vocab FILE re-derives it from the bert-base-uncased
// vocabulary (a vocab.txt, one token a line, or a JSON array of tokens) by
// keeping the special tokens, every single-character piece and its "##"
// continuation, and the most frequent remaining pieces up to 8192 entries.
//
// Weights are uniform (Xavier/Glorot for projections) from a fixed-seed
// splitmix64 stream, so the models compute meaningful-looking but arbitrary
// functions: they exist to exercise the runtime, batcher and protocol, not
// to be accurate.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

const vocabSize = 8192

func main() {
	dir := flag.String("dir", "testdata/models", "model repository to write into")
	check := flag.Bool("check", false, "compare with the files on disk instead of writing")
	bertVocab := flag.String("bert-vocab", "", "re-derive text-encoder/vocab.txt from this bert-base-uncased vocabulary")
	many := flag.Int("many", 0, "write this many distinct small models into -dir instead of the bundled ones")
	manyMiB := flag.Float64("many-mib", 4, "-many: each model's weights, in MiB")
	manyVersion := flag.Int("many-version", 1, "-many: the version folder to write")
	flag.Parse()
	if *many > 0 {
		if err := writeMany(*dir, *many, *manyMiB, *manyVersion); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*dir, *check, *bertVocab); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(dir string, check bool, bertVocab string) error {
	vocabPath := filepath.Join(dir, "text-encoder", "vocab.txt")
	if bertVocab != "" {
		v, err := deriveVocab(bertVocab)
		if err != nil {
			return err
		}
		if err := emit(vocabPath, []byte(strings.Join(v, "\n")+"\n"), check); err != nil {
			return err
		}
	}
	vocab, err := os.ReadFile(vocabPath)
	if err != nil {
		return fmt.Errorf("read vocabulary: %w", err)
	}
	nvocab := int64(bytes.Count(vocab, []byte("\n")))

	models := map[string][]byte{
		"mlp/1/model.onnx":              mlp().Encode(),
		"text-encoder/1/model.onnx":     textEncoder(nvocab).Encode(),
		"multi-io/1/model.onnx":         multiIO().Encode(),
		"fixed-shape/1/model.onnx":      fixedShape().Encode(),
		"all-types/1/model.onnx":        allTypes().Encode(),
		"../variants/mlp-heavy.onnx":    mlpHeavy(100).Encode(),
		"../variants/mlp-heavy-3x.onnx": mlpHeavy(300).Encode(),
		"../variants/faulty.onnx":       faulty().Encode(),
		// The decoder shares the text encoder's vocabulary.
		"tiny-gpt/1/model.onnx": tinyGPT(nvocab, false).Encode(),
		"tiny-gpt/vocab.txt":    vocab,
		// The same decoder in small, in both key/value output layouts.
		"../variants/tiny-gpt-512-new.onnx":     tinyGPT(512, false).Encode(),
		"../variants/tiny-gpt-512-present.onnx": tinyGPT(512, true).Encode(),
		// Models that go wrong, for the containment tests.
		"../faults/int-div.onnx":   intDiv().Encode(),
		"../faults/no-inputs.onnx": noInputs().Encode(),
		"../faults/expand.onnx":    expand().Encode(),
		"../faults/slow-load.onnx": slowLoad(1024, 256).Encode(),
		// Shapes at their edges: scalars (rank 0).
		"../variants/scalar.onnx": scalar().Encode(),
		// Outputs whose first dimension is not the batch.
		"../variants/repeat-rows.onnx": repeatRows().Encode(),
		// For the quality monitor: a small classifier, and mlp biased.
		"../variants/tabular.onnx":    tabular().Encode(),
		"../variants/mlp-biased.onnx": mlpBiased().Encode(),
		// Outputs that are not tensors: a converted classifier's ZipMap,
		// and a sequence of tensors.
		"../variants/classifier.onnx":   classifier().Encode(),
		"../variants/sequence-out.onnx": sequenceOut().Encode(),
	}
	var errs []error
	for _, name := range []string{"mlp/1/model.onnx", "text-encoder/1/model.onnx", "multi-io/1/model.onnx", "fixed-shape/1/model.onnx", "all-types/1/model.onnx", "../variants/mlp-heavy.onnx", "../variants/mlp-heavy-3x.onnx", "../variants/faulty.onnx",
		"tiny-gpt/1/model.onnx", "tiny-gpt/vocab.txt", "../variants/tiny-gpt-512-new.onnx", "../variants/tiny-gpt-512-present.onnx",
		"../faults/int-div.onnx", "../faults/no-inputs.onnx", "../faults/expand.onnx", "../faults/slow-load.onnx",
		"../variants/scalar.onnx", "../variants/repeat-rows.onnx", "../variants/tabular.onnx", "../variants/mlp-biased.onnx",
		"../variants/classifier.onnx", "../variants/sequence-out.onnx"} {
		errs = append(errs, emit(filepath.Join(dir, name), models[name], check))
	}
	return errors.Join(errs...)
}

// emit writes data to path, or with check reports whether path already
// holds exactly data.
func emit(path string, data []byte, check bool) error {
	if check {
		have, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.Equal(have, data) {
			return fmt.Errorf("%s differs from what the generator writes (%d bytes on disk, %d generated)", path, len(have), len(data))
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// deriveVocab reads a BERT WordPiece vocabulary and keeps vocabSize entries
// of it, in the source's (frequency) order.
func deriveVocab(path string) ([]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var src []string
	if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) {
		if err := json.Unmarshal(raw, &src); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	} else {
		sc := bufio.NewScanner(bytes.NewReader(raw))
		for sc.Scan() {
			src = append(src, sc.Text())
		}
	}
	src = standardPieces(src)
	specials := []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
	isSpecial := map[string]bool{}
	for _, s := range specials {
		isSpecial[s] = true
	}
	single := func(t string) bool {
		t = strings.TrimPrefix(t, "##")
		return t != "" && utf8.RuneCountInString(t) == 1
	}
	var chars, others int
	keep := func(t string) bool {
		return t != "" && !isSpecial[t] && !strings.HasPrefix(t, "[unused")
	}
	for _, t := range src {
		if keep(t) && single(t) {
			chars++
		}
	}
	room := vocabSize - len(specials) - chars
	out := append([]string{}, specials...)
	for _, t := range src {
		if !keep(t) {
			continue
		}
		if single(t) {
			out = append(out, t)
		} else if others < room {
			out = append(out, t)
			others++
		}
	}
	if len(out) != vocabSize {
		return nil, fmt.Errorf("%s: derived %d entries, want %d", path, len(out), vocabSize)
	}
	return out, nil
}

// standardPieces rewrites a vocabulary spelled with a "\u2581" word-start
// marker (word starts marked, continuations bare) into BERT's own spelling
// (word starts bare, continuations "##"). A vocabulary already in BERT's
// spelling is returned as it is. A lone marker stands for an unused slot.
func standardPieces(src []string) []string {
	const marker = "\u2581"
	marked := false
	for _, t := range src {
		if strings.HasPrefix(t, marker) {
			marked = true
			break
		}
	}
	if !marked {
		return src
	}
	out := make([]string, len(src))
	for i, t := range src {
		switch {
		case t == marker:
			out[i] = "[unused]"
		case strings.HasPrefix(t, marker):
			out[i] = strings.TrimPrefix(t, marker)
		case strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]"):
			out[i] = t
		default:
			out[i] = "##" + t
		}
	}
	return out
}
