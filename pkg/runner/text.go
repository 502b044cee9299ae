package runner

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/infer-serving/infer/pkg/tensor"
	"github.com/infer-serving/infer/pkg/tokenizer"
)

// TokenizerConfig lets a model that takes token ids and an attention mask
// be sent raw text instead: a BYTES input of strings, tokenized here with
// WordPiece. Texts of different lengths share batches: the batcher pads
// each batch's ids and mask to its longest sequence.
type TokenizerConfig struct {
	// Vocab is the vocabulary file in the model's folder (vocab.txt).
	Vocab string `yaml:"vocab"`
	// Lowercase lowercases and strips accents first (true), as uncased
	// BERT vocabularies expect.
	Lowercase *bool `yaml:"lowercase"`
	// MaxLength truncates each text to this many tokens, [CLS] and [SEP]
	// included (128). For a text generator it is the most tokens a
	// prompt may have, refused beyond (generation.max_positions).
	MaxLength int `yaml:"max_length"`
	// Input names the BYTES input that clients send ("text").
	Input string `yaml:"input"`
	// IDs and Mask name the graph's INT64 [batch, sequence] inputs
	// ("input_ids", "attention_mask").
	IDs  string `yaml:"ids"`
	Mask string `yaml:"mask"`
}

func (t TokenizerConfig) withDefaults() *TokenizerConfig {
	if t.Vocab == "" {
		t.Vocab = "vocab.txt"
	}
	if t.Lowercase == nil {
		yes := true
		t.Lowercase = &yes
	}
	if t.MaxLength == 0 {
		t.MaxLength = 128
	}
	if t.Input == "" {
		t.Input = "text"
	}
	if t.IDs == "" {
		t.IDs = "input_ids"
	}
	if t.Mask == "" {
		t.Mask = "attention_mask"
	}
	return &t
}

// textFront tokenizes a model's text input into its graph inputs.
type textFront struct {
	cfg       TokenizerConfig
	tok       *tokenizer.WordPiece
	ids, mask int // graph input indices
}

// newTextFront checks that the graph takes what the tokenizer produces and
// that padding per batch cannot change its outputs, and reads the
// vocabulary.
func newTextFront(cfg TokenizerConfig, graph Metadata, readFile func(string) ([]byte, error)) (*textFront, error) {
	f := &textFront{cfg: cfg, ids: -1, mask: -1}
	for i, in := range graph.Inputs {
		switch in.Name {
		case cfg.IDs:
			f.ids = i
		case cfg.Mask:
			f.mask = i
		default:
			continue
		}
		if in.DataType != tensor.Int64 || len(in.Shape) != 2 || in.Shape[0] != -1 || in.Shape[1] != -1 {
			return nil, fmt.Errorf("tokenizer: input %q is %s %v, want INT64 [-1 -1] (batch, sequence)", in.Name, in.DataType, in.Shape)
		}
	}
	if f.ids < 0 || f.mask < 0 {
		return nil, fmt.Errorf("tokenizer: the graph has no inputs %q and %q (set tokenizer.ids and tokenizer.mask)", cfg.IDs, cfg.Mask)
	}
	for _, out := range graph.Outputs {
		if len(out.Shape) == 0 || out.Shape[0] != -1 || tensor.Elements(out.Shape[1:]) < 0 {
			return nil, fmt.Errorf("tokenizer: output %q has shape %v; padding a batch to its longest text needs outputs fixed but for the batch dimension", out.Name, out.Shape)
		}
	}
	if readFile == nil {
		return nil, fmt.Errorf("tokenizer: no model folder to read %s from", cfg.Vocab)
	}
	vocab, err := readFile(cfg.Vocab)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if f.tok, err = tokenizer.NewWordPiece(vocab, *cfg.Lowercase); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", cfg.Vocab, err)
	}
	return f, nil
}

// served returns the inputs clients see: the text input in place of the
// ids and mask.
func (f *textFront) served(graph []TensorSpec) []TensorSpec {
	out := []TensorSpec{{Name: f.cfg.Input, DataType: tensor.Bytes, Shape: []int64{-1}}}
	for i, in := range graph {
		if i != f.ids && i != f.mask {
			out = append(out, in)
		}
	}
	return out
}

// tokenize returns req with its text input replaced by ids and mask,
// padded to the request's longest text, and the time it took; ok is false
// when req has no text input (it then gives the graph's inputs itself).
// maxRows is the model's max_batch_size (0: no bound): more texts than
// that are refused before any is tokenized, since padding makes the ids
// and mask rows x longest x 16 bytes, however short the texts.
func (f *textFront) tokenize(req *Request, maxRows int) (_ *Request, _ time.Duration, ok bool, _ error) {
	start := time.Now()
	at := -1
	for i, t := range req.Inputs {
		if t.Name == f.cfg.Input {
			at = i
		}
	}
	if at < 0 {
		return req, 0, false, f.checkIDs(req)
	}
	text := req.Inputs[at]
	if text.DataType != tensor.Bytes {
		return nil, 0, true, fmt.Errorf("%w: input %q: datatype %s, want BYTES (UTF-8 strings)", ErrInvalidInput, text.Name, text.DataType)
	}
	if !(len(text.Shape) == 1 || len(text.Shape) == 2 && text.Shape[1] == 1) || text.Shape[0] < 1 {
		return nil, 0, true, fmt.Errorf("%w: input %q: shape %v, want [n] or [n,1] strings", ErrInvalidInput, text.Name, text.Shape)
	}
	if maxRows > 0 && text.Shape[0] > int64(maxRows) {
		return nil, 0, true, fmt.Errorf("%w: input %q: batch size %d exceeds the model's max_batch_size %d", ErrInvalidInput, text.Name, text.Shape[0], maxRows)
	}
	if err := text.Validate(); err != nil {
		return nil, 0, true, fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	rows := int(text.Shape[0])
	seqs := make([][]int64, rows)
	longest := 0
	data := text.Data
	for r := range rows {
		n := binary.LittleEndian.Uint32(data)
		seqs[r] = f.tok.Encode(nil, string(data[4:4+n]), f.cfg.MaxLength)
		data = data[4+n:]
		longest = max(longest, len(seqs[r]))
	}
	ids := make([]byte, 0, rows*longest*8)
	mask := make([]byte, 0, rows*longest*8)
	for _, seq := range seqs {
		for k := range longest {
			id, m := f.tok.PadID(), uint64(0)
			if k < len(seq) {
				id, m = seq[k], 1
			}
			ids = binary.LittleEndian.AppendUint64(ids, uint64(id))
			mask = binary.LittleEndian.AppendUint64(mask, m)
		}
	}
	shape := []int64{int64(rows), int64(longest)}
	out := *req
	out.Inputs = make([]tensor.Tensor, 0, len(req.Inputs)+1)
	out.Inputs = append(out.Inputs,
		tensor.Tensor{Name: f.cfg.IDs, DataType: tensor.Int64, Shape: shape, Data: ids},
		tensor.Tensor{Name: f.cfg.Mask, DataType: tensor.Int64, Shape: shape, Data: mask})
	for i, t := range req.Inputs {
		if i != at {
			out.Inputs = append(out.Inputs, t)
		}
	}
	return &out, time.Since(start), true, nil
}

// checkIDs refuses token ids given straight to the graph (its ids input,
// without the text) that the tokenizer could never have made: ids outside
// its vocabulary, which a Gather in the graph refuses (the request then
// fails with 500) or, for -1, quietly wraps to the vocabulary's last row;
// a mask of another shape than the ids, or of values other than 0 and 1.
func (f *textFront) checkIDs(req *Request) error {
	vocab := int64(f.tok.Size())
	var ids, mask *tensor.Tensor
	for i := range req.Inputs {
		switch req.Inputs[i].Name {
		case f.cfg.IDs:
			ids = &req.Inputs[i]
		case f.cfg.Mask:
			mask = &req.Inputs[i]
		}
	}
	if ids != nil && mask != nil && !slices.Equal(ids.Shape, mask.Shape) {
		return fmt.Errorf("%w: input %q: shape %v, want %q's, %v (a mask value a token)", ErrInvalidInput, mask.Name, mask.Shape, ids.Name, ids.Shape)
	}
	for _, t := range []*tensor.Tensor{mask, ids} {
		if t == nil || t.DataType != tensor.Int64 || len(t.Data)%8 != 0 {
			continue // wrong datatypes and sizes are refused against the graph
		}
		for i := 0; i < len(t.Data); i += 8 {
			switch v := int64(binary.LittleEndian.Uint64(t.Data[i:])); {
			case t == mask && (v < 0 || v > 1):
				return fmt.Errorf("%w: input %q: %d (element %d), want 0 or 1", ErrInvalidInput, t.Name, v, i/8)
			case t == ids && (v < 0 || v >= vocab):
				return fmt.Errorf("%w: input %q: token id %d (element %d) is outside the vocabulary of %d", ErrInvalidInput, t.Name, v, i/8, vocab)
			}
		}
	}
	return nil
}
