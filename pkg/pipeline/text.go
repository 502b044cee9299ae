package pipeline

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
	"github.com/infer-serving/infer/pkg/tokenizer"
)

// tokenizeOp tokenizes texts with WordPiece (BERT's tokenizer). Input
// text: BYTES [n] of UTF-8 strings. Outputs input_ids and
// attention_mask: INT64 [n, longest], each text as [CLS] pieces [SEP],
// truncated to MaxLength tokens, padded with the vocabulary's [PAD] id
// (mask 0). The outputs of one request hold at most MaxRequestTokens
// positions, padding included: every text is padded to the longest, so
// one long text and many empty ones would otherwise make outputs
// hundreds of times the request's size (400,000 empty strings and one
// long one, a 1.6 MB body, once took the server to 1.7 GB).
type tokenizeOp struct {
	Vocab            string `yaml:"vocab"`              // a file of the pipeline's folder, one piece a line (vocab.txt)
	Lowercase        *bool  `yaml:"lowercase"`          // lowercase and strip accents first (true)
	MaxLength        int    `yaml:"max_length"`         // 128
	MaxRequestTokens int64  `yaml:"max_request_tokens"` // DefaultMaxRequestTokens
	tok              *tokenizer.WordPiece
}

// DefaultMaxRequestTokens bounds the positions of one request's
// tokenized texts together, padding included: 1 Mi, 16 MiB of ids and
// mask (8,192 texts of 128 tokens).
const DefaultMaxRequestTokens = 1 << 20

func newTokenize(params *yaml.Node, e env) (op, error) {
	o := &tokenizeOp{Vocab: "vocab.txt", MaxLength: 128, MaxRequestTokens: DefaultMaxRequestTokens}
	if err := decodeParams(params, o); err != nil {
		return nil, err
	}
	if o.MaxLength < 2 {
		return nil, fmt.Errorf("max_length %d: want at least 2 ([CLS] and [SEP])", o.MaxLength)
	}
	if o.MaxRequestTokens < int64(o.MaxLength) {
		return nil, fmt.Errorf("max_request_tokens %d: want at least max_length (%d)", o.MaxRequestTokens, o.MaxLength)
	}
	vocab, err := e.readFile(o.Vocab)
	if err != nil {
		return nil, fmt.Errorf("vocab: %w", err)
	}
	if o.tok, err = tokenizer.NewWordPiece(vocab, o.Lowercase == nil || *o.Lowercase); err != nil {
		return nil, fmt.Errorf("vocab %s: %w", o.Vocab, err)
	}
	return o, nil
}

func (o *tokenizeOp) plan(in map[string]runner.TensorSpec) (map[string]runner.TensorSpec, error) {
	s, err := need(in, "text", 1, tensor.Bytes)
	if err != nil {
		return nil, err
	}
	return map[string]runner.TensorSpec{
		"input_ids":      spec("input_ids", tensor.Int64, s.Shape[0], -1),
		"attention_mask": spec("attention_mask", tensor.Int64, s.Shape[0], -1),
	}, nil
}

func (o *tokenizeOp) run(_ context.Context, in map[string]tensor.Tensor, _ []string, _ *profile.Timing) (map[string]tensor.Tensor, error) {
	texts := stringsOf(in["text"])
	if n := int64(len(texts)) * 2; n > o.MaxRequestTokens { // [CLS] and [SEP] each
		return nil, fmt.Errorf("%d texts make at least %d tokens, over max_request_tokens %d", len(texts), n, o.MaxRequestTokens)
	}
	seqs := make([][]int64, len(texts))
	longest := 0
	for i, t := range texts {
		seqs[i] = o.tok.Encode(nil, string(t), o.MaxLength)
		longest = max(longest, len(seqs[i]))
	}
	if n := int64(len(texts)) * int64(longest); n > o.MaxRequestTokens {
		return nil, fmt.Errorf("%d texts padded to the longest, %d tokens, make %d positions, over max_request_tokens %d", len(texts), longest, n, o.MaxRequestTokens)
	}
	ids := make([]int64, 0, len(texts)*longest)
	mask := make([]int64, 0, len(texts)*longest)
	for _, seq := range seqs {
		for k := range longest {
			if k < len(seq) {
				ids, mask = append(ids, seq[k]), append(mask, 1)
			} else {
				ids, mask = append(ids, o.tok.PadID()), append(mask, 0)
			}
		}
	}
	shape := []int64{int64(len(texts)), int64(longest)}
	return map[string]tensor.Tensor{
		"input_ids":      tensor.New("input_ids", shape, ids),
		"attention_mask": tensor.New("attention_mask", shape, mask),
	}, nil
}

// ctcOp decodes a CTC model's per-step class scores greedily: the best
// class at each time step, repeats merged, blanks dropped. Input probs:
// FP32 [n, steps, classes]. Outputs text: BYTES [n], and confidence:
// FP32 [n], the mean score of the kept steps (0 for an empty text).
// Class 0 is the blank; class k ≥ 1 is line k of Characters, and with
// AppendSpace the class after the last line is a space (PaddleOCR's
// convention for its key lists). With Trim, spaces at either end of a
// text (a line's margins, read as blank space) are dropped.
type ctcOp struct {
	Characters  string `yaml:"characters"`   // a file of the pipeline's folder, one character (string) a line
	AppendSpace bool   `yaml:"append_space"` // a space is the last class
	Trim        bool   `yaml:"trim"`
	classes     []string
}

func newCTCDecode(params *yaml.Node, e env) (op, error) {
	o := &ctcOp{}
	if err := decodeParams(params, o); err != nil {
		return nil, err
	}
	if o.Characters == "" {
		return nil, errors.New("characters: name the file of the character list")
	}
	data, err := e.readFile(o.Characters)
	if err != nil {
		return nil, fmt.Errorf("characters: %w", err)
	}
	o.classes = []string{""} // the blank
	for line := range strings.Lines(string(bytes.TrimSuffix(data, []byte("\n")))) {
		o.classes = append(o.classes, strings.TrimRight(line, "\r\n"))
	}
	if o.AppendSpace {
		o.classes = append(o.classes, " ")
	}
	return o, nil
}

func (o *ctcOp) plan(in map[string]runner.TensorSpec) (map[string]runner.TensorSpec, error) {
	s, err := need(in, "probs", 3, tensor.FP32)
	if err != nil {
		return nil, err
	}
	if c := s.Shape[2]; c >= 0 && c != int64(len(o.classes)) {
		return nil, fmt.Errorf("input %q has %d classes; the character list with the blank%s makes %d", "probs", c, map[bool]string{true: " and the space"}[o.AppendSpace], len(o.classes))
	}
	return map[string]runner.TensorSpec{
		"text":       spec("text", tensor.Bytes, s.Shape[0]),
		"confidence": spec("confidence", tensor.FP32, s.Shape[0]),
	}, nil
}

func (o *ctcOp) run(_ context.Context, in map[string]tensor.Tensor, _ []string, _ *profile.Timing) (map[string]tensor.Tensor, error) {
	p := in["probs"]
	n, steps, classes := int(p.Shape[0]), int(p.Shape[1]), int(p.Shape[2])
	if classes != len(o.classes) {
		return nil, fmt.Errorf("input %q has %d classes, want %d", "probs", classes, len(o.classes))
	}
	texts := make([][]byte, n)
	conf := make([]float32, n)
	for i := range n {
		var text []byte
		var sum float64
		kept, prev := 0, -1
		for t := range steps {
			row := p.Data[((i*steps+t)*classes)*4:][:classes*4]
			best, score := 0, float32(math.Inf(-1))
			for k := range classes {
				if v := math.Float32frombits(binary.LittleEndian.Uint32(row[4*k:])); v > score {
					best, score = k, v
				}
			}
			if best != 0 && best != prev {
				text = append(text, o.classes[best]...)
				sum += float64(score)
				kept++
			}
			prev = best
		}
		if o.Trim {
			text = bytes.TrimSpace(text)
		}
		texts[i] = text
		if kept > 0 {
			conf[i] = float32(sum / float64(kept))
		}
	}
	return map[string]tensor.Tensor{
		"text":       bytesTensor("text", []int64{int64(n)}, texts),
		"confidence": tensor.New("confidence", []int64{int64(n)}, conf),
	}, nil
}
