package pipeline

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // decodes JPEG inputs
	_ "image/png"  // decodes PNG inputs
	"math"

	"golang.org/x/image/draw"
	"golang.org/x/sync/semaphore"
	"gopkg.in/yaml.v3"

	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
)

// DefaultMaxPixels bounds the images of one request together: 16 Mpx,
// 48 MiB of RGB. A request whose images declare more is refused from
// their headers, before any is decoded.
const DefaultMaxPixels = 1 << 24

// decoding bounds the pixels being decoded at once over every pipeline
// of the process, in pixels: a decode holds Go's RGBA image (4 bytes a
// pixel) and the output's copy (up to 3) while it runs, so that a few
// kilobytes of PNG declaring 16 Mpx cost about 112 MiB each, and nothing
// else bounds how many clients send them at once. Four requests of the
// default max_pixels (about 450 MiB) decode together; others wait, as
// long as their context allows. A step whose max_pixels is larger takes
// the whole budget.
var decoding = semaphore.NewWeighted(4 * DefaultMaxPixels)

// decodeOp decodes PNG or JPEG files. Input image: BYTES [n], one file
// each, as its bytes or, for clients of the JSON protocol whose strings
// cannot carry raw bytes, as its standard base64. Output pixels: UINT8 [n, height, width, channels], NHWC, values 0
// to 255, RGB for 3 channels (transparency dropped) or luma for 1. The
// images of one request must share a size (resize them in separate
// requests otherwise), and hold at most MaxPixels pixels together.
type decodeOp struct {
	Channels  int   `yaml:"channels"`   // 3 (RGB, the default) or 1 (gray)
	MaxPixels int64 `yaml:"max_pixels"` // DefaultMaxPixels when 0
}

func newDecode(params *yaml.Node, _ env) (op, error) {
	o := &decodeOp{Channels: 3, MaxPixels: DefaultMaxPixels}
	if err := decodeParams(params, o); err != nil {
		return nil, err
	}
	if o.Channels != 1 && o.Channels != 3 {
		return nil, fmt.Errorf("channels %d: want 1 or 3", o.Channels)
	}
	if o.MaxPixels < 1 {
		return nil, fmt.Errorf("max_pixels %d: want at least 1", o.MaxPixels)
	}
	return o, nil
}

func (o *decodeOp) plan(in map[string]runner.TensorSpec) (map[string]runner.TensorSpec, error) {
	s, err := need(in, "image", 1, tensor.Bytes)
	if err != nil {
		return nil, err
	}
	return map[string]runner.TensorSpec{"pixels": spec("pixels", tensor.Uint8, s.Shape[0], -1, -1, int64(o.Channels))}, nil
}

// run reads every image's header first: each must be a PNG or JPEG of
// the first one's size, and all of them within MaxPixels, before any
// memory is taken for their pixels. It then waits for room in the
// process's decoding budget (or ctx's end), and decodes them.
func (o *decodeOp) run(ctx context.Context, in map[string]tensor.Tensor, _ []string, _ *profile.Timing) (map[string]tensor.Tensor, error) {
	files := stringsOf(in["image"])
	var w, h int
	for i, f := range files {
		files[i] = unbase64(f)
		cfg, format, err := image.DecodeConfig(bytes.NewReader(files[i]))
		if err != nil {
			return nil, fmt.Errorf("image %d: not a PNG or JPEG file: %v", i, err)
		}
		if cfg.Width < 1 || cfg.Height < 1 || int64(cfg.Width)*int64(cfg.Height) > o.MaxPixels {
			return nil, fmt.Errorf("image %d: %s of %dx%d pixels, want 1 to %d pixels (max_pixels)", i, format, cfg.Width, cfg.Height, o.MaxPixels)
		}
		if i == 0 {
			w, h = cfg.Width, cfg.Height
		} else if cfg.Width != w || cfg.Height != h {
			return nil, fmt.Errorf("image %d is %dx%d, image 0 %dx%d: the images of one request must share a size", i, cfg.Width, cfg.Height, w, h)
		}
	}
	pixels := int64(len(files)) * int64(w) * int64(h)
	if pixels > o.MaxPixels {
		return nil, fmt.Errorf("%d images of %dx%d: %d pixels together, over max_pixels %d", len(files), w, h, pixels, o.MaxPixels)
	}
	weight := min(pixels, 4*DefaultMaxPixels)
	if err := decoding.Acquire(ctx, weight); err != nil {
		return nil, fmt.Errorf("waiting to decode %d pixels: %w", pixels, err)
	}
	defer decoding.Release(weight)
	data := make([]byte, 0, pixels*int64(o.Channels))
	for i, f := range files {
		img, format, err := image.Decode(bytes.NewReader(f))
		if err != nil {
			return nil, fmt.Errorf("image %d: %s: %v", i, format, err)
		}
		if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
			return nil, fmt.Errorf("image %d: decoded to %dx%d, its header said %dx%d", i, b.Dx(), b.Dy(), w, h)
		}
		data = appendPixels(data, img, o.Channels)
	}
	shape := []int64{int64(len(files)), int64(h), int64(w), int64(o.Channels)}
	return map[string]tensor.Tensor{"pixels": {DataType: tensor.Uint8, Shape: shape, Data: data}}, nil
}

// unbase64 returns f decoded from standard base64 when it is that (no
// PNG or JPEG file is valid base64: both begin with a byte above 127),
// else f.
func unbase64(f []byte) []byte {
	if len(f) == 0 || f[0] >= 0x80 {
		return f
	}
	dec, err := base64.StdEncoding.AppendDecode(nil, f)
	if err != nil {
		return f
	}
	return dec
}

// appendPixels appends img's pixels, row-major, as RGB or gray bytes.
func appendPixels(dst []byte, img image.Image, channels int) []byte {
	b := img.Bounds()
	if channels == 1 {
		g, ok := img.(*image.Gray)
		if !ok {
			g = image.NewGray(b)
			draw.Draw(g, b, img, b.Min, draw.Src)
		}
		for y := range b.Dy() {
			dst = append(dst, g.Pix[y*g.Stride:y*g.Stride+b.Dx()]...)
		}
		return dst
	}
	rgba, ok := img.(*image.RGBA)
	if !ok {
		rgba = image.NewRGBA(b)
		draw.Draw(rgba, b, img, b.Min, draw.Src)
	}
	for y := range b.Dy() {
		row := rgba.Pix[y*rgba.Stride : y*rgba.Stride+4*b.Dx()]
		for x := 0; x < len(row); x += 4 {
			dst = append(dst, row[x], row[x+1], row[x+2])
		}
	}
	return dst
}

// resizeOp scales images with golang.org/x/image/draw. Input pixels:
// UINT8 [n, height, width, channels] (1 or 3 channels). Output pixels:
// UINT8 [n, Height, width', channels]. With Width 0 the ratio is kept:
// width' is width scaled by Height/height, rounded up, at most MaxWidth,
// then padded on the right with Pad up to a multiple of WidthMultiple
// (PaddleOCR's recogniser: height 48, widths in steps of 32). With both
// set and KeepRatio, the image is fitted inside and padded right and
// below; without it, stretched. The outputs of one request hold at most
// MaxPixels pixels, checked before they are made: resizing many tiny
// images up would otherwise turn a small request into gigabytes.
type resizeOp struct {
	MaxPixels     int64  `yaml:"max_pixels"` // DefaultMaxPixels
	Height        int    `yaml:"height"`
	Width         int    `yaml:"width"`
	KeepRatio     bool   `yaml:"keep_ratio"`
	WidthMultiple int    `yaml:"width_multiple"`
	MaxWidth      int    `yaml:"max_width"`
	Pad           uint8  `yaml:"pad"`           // 0 to 255
	Interpolation string `yaml:"interpolation"` // bilinear (default), nearest, catmull_rom
	scaler        draw.Scaler
}

// maxSide bounds a resized image's side, in pixels.
const maxSide = 1 << 14

func newResize(params *yaml.Node, _ env) (op, error) {
	o := &resizeOp{Interpolation: "bilinear", MaxPixels: DefaultMaxPixels}
	if err := decodeParams(params, o); err != nil {
		return nil, err
	}
	if o.MaxPixels < 1 {
		return nil, fmt.Errorf("max_pixels %d: want at least 1", o.MaxPixels)
	}
	switch o.Interpolation {
	case "bilinear":
		o.scaler = draw.BiLinear
	case "nearest":
		o.scaler = draw.NearestNeighbor
	case "catmull_rom":
		o.scaler = draw.CatmullRom
	default:
		return nil, fmt.Errorf("interpolation %q: want bilinear, nearest or catmull_rom", o.Interpolation)
	}
	if o.Height < 1 || o.Height > maxSide || o.Width < 0 || o.Width > maxSide {
		return nil, fmt.Errorf("height %d, width %d: want a height of 1 to %d and a width of 0 (keep the ratio) to %d", o.Height, o.Width, maxSide, maxSide)
	}
	if o.WidthMultiple < 0 || o.MaxWidth < 0 || o.MaxWidth > maxSide {
		return nil, fmt.Errorf("width_multiple %d, max_width %d: want 0 (none) or more, max_width at most %d", o.WidthMultiple, o.MaxWidth, maxSide)
	}
	return o, nil
}

func (o *resizeOp) plan(in map[string]runner.TensorSpec) (map[string]runner.TensorSpec, error) {
	s, err := need(in, "pixels", 4, tensor.Uint8)
	if err != nil {
		return nil, err
	}
	if c := s.Shape[3]; c != 1 && c != 3 && c != -1 {
		return nil, fmt.Errorf("input %q has %d channels, want 1 or 3", "pixels", c)
	}
	w := int64(-1)
	if o.Width > 0 {
		w = int64(o.Width)
	}
	return map[string]runner.TensorSpec{"pixels": spec("pixels", tensor.Uint8, s.Shape[0], int64(o.Height), w, s.Shape[3])}, nil
}

// size returns the scaled image's size and the output's, for an input of
// w x h pixels.
func (o *resizeOp) size(w, h int) (sw, sh, ow, oh int) {
	sh, oh = o.Height, o.Height
	switch {
	case o.Width == 0:
		sw = int(math.Ceil(float64(w) * float64(o.Height) / float64(h)))
		if o.MaxWidth > 0 {
			sw = min(sw, o.MaxWidth)
		}
		sw = min(max(sw, 1), maxSide)
		ow = sw
		if m := o.WidthMultiple; m > 1 {
			ow = min((sw+m-1)/m*m, maxSide)
		}
	case o.KeepRatio:
		ow = o.Width
		scale := min(float64(o.Width)/float64(w), float64(o.Height)/float64(h))
		sw = max(1, min(o.Width, int(math.Round(float64(w)*scale))))
		sh = max(1, min(o.Height, int(math.Round(float64(h)*scale))))
	default:
		sw, ow = o.Width, o.Width
	}
	return sw, sh, ow, oh
}

func (o *resizeOp) run(_ context.Context, in map[string]tensor.Tensor, _ []string, _ *profile.Timing) (map[string]tensor.Tensor, error) {
	t := in["pixels"]
	n, h, w, c := int(t.Shape[0]), int(t.Shape[1]), int(t.Shape[2]), int(t.Shape[3])
	if c != 1 && c != 3 {
		return nil, fmt.Errorf("input %q has %d channels, want 1 or 3", "pixels", c)
	}
	sw, sh, ow, oh := o.size(w, h)
	if pixels := int64(n) * int64(ow) * int64(oh); pixels > o.MaxPixels {
		return nil, fmt.Errorf("%d images resized to %dx%d: %d pixels together, over max_pixels %d", n, ow, oh, pixels, o.MaxPixels)
	}
	out := make([]byte, 0, n*ow*oh*c)
	for i := range n {
		src := toImage(t.Data[i*w*h*c:(i+1)*w*h*c], w, h, c)
		dst := toImage(nil, ow, oh, c)
		fill(dst, o.Pad)
		o.scaler.Scale(dst, image.Rect(0, 0, sw, sh), src, src.Bounds(), draw.Src, nil)
		out = appendPixels(out, dst, c)
	}
	return map[string]tensor.Tensor{"pixels": {DataType: tensor.Uint8, Shape: []int64{int64(n), int64(oh), int64(ow), int64(c)}, Data: out}}, nil
}

// toImage wraps (or, for data nil, allocates) w x h pixels of c channels.
func toImage(data []byte, w, h, c int) draw.Image {
	r := image.Rect(0, 0, w, h)
	if c == 1 {
		if data == nil {
			return image.NewGray(r)
		}
		return &image.Gray{Pix: data, Stride: w, Rect: r}
	}
	img := image.NewRGBA(r)
	for i, j := 0, 0; j+2 < len(data); i, j = i+4, j+3 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = data[j], data[j+1], data[j+2], 255
	}
	return img
}

func fill(img draw.Image, v uint8) {
	draw.Draw(img, img.Bounds(), image.NewUniform(color.RGBA{v, v, v, 255}), image.Point{}, draw.Src)
}

// normalizeOp scales values to FP32: y = (x × Scale − Mean[c]) / Std[c],
// c the index along the last dimension (the channel of an NHWC image);
// one Mean or Std applies to every channel. Input x: UINT8 or FP32 of any
// shape. Output y: FP32 of the same shape. PaddleOCR's recogniser takes
// scale 1/255, mean 0.5, std 0.5: values in [-1, 1].
type normalizeOp struct {
	Scale float32   `yaml:"scale"` // 1 when unset
	Mean  []float32 `yaml:"mean"`  // 0 when unset
	Std   []float32 `yaml:"std"`   // 1 when unset
}

func newNormalize(params *yaml.Node, _ env) (op, error) {
	o := &normalizeOp{Scale: 1}
	if err := decodeParams(params, o); err != nil {
		return nil, err
	}
	if len(o.Mean) == 0 {
		o.Mean = []float32{0}
	}
	if len(o.Std) == 0 {
		o.Std = []float32{1}
	}
	for _, s := range o.Std {
		if s == 0 || math.IsNaN(float64(s)) {
			return nil, fmt.Errorf("std %v: every value must be non-zero", o.Std)
		}
	}
	return o, nil
}

func (o *normalizeOp) plan(in map[string]runner.TensorSpec) (map[string]runner.TensorSpec, error) {
	s, err := need(in, "x", 0, tensor.Uint8, tensor.FP32)
	if err != nil {
		return nil, err
	}
	if len(s.Shape) == 0 {
		return nil, fmt.Errorf("input %q is a scalar; want a channel dimension last", "x")
	}
	if c := s.Shape[len(s.Shape)-1]; c > 0 && (len(o.Mean) > 1 && int64(len(o.Mean)) != c || len(o.Std) > 1 && int64(len(o.Std)) != c) {
		return nil, fmt.Errorf("mean %v and std %v: want one value or one per channel (%d)", o.Mean, o.Std, c)
	}
	return map[string]runner.TensorSpec{"y": spec("y", tensor.FP32, s.Shape...)}, nil
}

func (o *normalizeOp) run(_ context.Context, in map[string]tensor.Tensor, _ []string, _ *profile.Timing) (map[string]tensor.Tensor, error) {
	x := in["x"]
	c := int(x.Shape[len(x.Shape)-1])
	if len(o.Mean) > 1 && len(o.Mean) != c || len(o.Std) > 1 && len(o.Std) != c {
		return nil, fmt.Errorf("input %q has %d channels; mean and std give %d and %d", "x", c, len(o.Mean), len(o.Std))
	}
	// y = x × a[c] + b[c], with a = scale/std and b = −mean/std.
	a, b := make([]float32, c), make([]float32, c)
	for k := range c {
		mean, std := o.Mean[min(k, len(o.Mean)-1)], o.Std[min(k, len(o.Std)-1)]
		a[k], b[k] = o.Scale/std, -mean/std
	}
	n := int(tensor.Elements(x.Shape))
	y := make([]float32, n)
	if x.DataType == tensor.Uint8 {
		for i, v := range x.Data[:n] {
			k := i % c
			y[i] = float32(v)*a[k] + b[k]
		}
	} else {
		xs, err := tensor.Values[float32](x)
		if err != nil {
			return nil, err
		}
		for i, v := range xs {
			k := i % c
			y[i] = v*a[k] + b[k]
		}
	}
	return map[string]tensor.Tensor{"y": tensor.New("y", x.Shape, y)}, nil
}

// layoutOp moves an image batch's channels: To "NCHW" reads x as [n, h,
// w, c] and writes y as [n, c, h, w]; To "NHWC" the reverse. Any
// fixed-size datatype.
type layoutOp struct {
	To string `yaml:"to"`
}

func newLayout(params *yaml.Node, _ env) (op, error) {
	o := &layoutOp{To: "NCHW"}
	if err := decodeParams(params, o); err != nil {
		return nil, err
	}
	if o.To != "NCHW" && o.To != "NHWC" {
		return nil, fmt.Errorf("to %q: want NCHW or NHWC", o.To)
	}
	return o, nil
}

func (o *layoutOp) plan(in map[string]runner.TensorSpec) (map[string]runner.TensorSpec, error) {
	s, err := need(in, "x", 4)
	if err != nil {
		return nil, err
	}
	if s.DataType.Size() == 0 {
		return nil, fmt.Errorf("input %q is %s, want a fixed-size datatype", "x", s.DataType)
	}
	d := s.Shape
	if o.To == "NCHW" {
		return map[string]runner.TensorSpec{"y": spec("y", s.DataType, d[0], d[3], d[1], d[2])}, nil
	}
	return map[string]runner.TensorSpec{"y": spec("y", s.DataType, d[0], d[2], d[3], d[1])}, nil
}

func (o *layoutOp) run(_ context.Context, in map[string]tensor.Tensor, _ []string, _ *profile.Timing) (map[string]tensor.Tensor, error) {
	x := in["x"]
	size := x.DataType.Size()
	n, a, b, c := int(x.Shape[0]), int(x.Shape[1]), int(x.Shape[2]), int(x.Shape[3])
	// Both ways are one transposition of the last three axes:
	// NHWC→NCHW moves axis 3 first ([a b c] → [c a b]); NCHW→NHWC moves
	// axis 1 last ([a b c] → [b c a]).
	out := make([]byte, len(x.Data))
	var shape []int64
	if o.To == "NCHW" {
		shape = []int64{int64(n), int64(c), int64(a), int64(b)}
		for i := range n {
			base := i * a * b * c
			for k := range c {
				for p := range a * b {
					copy(out[(base+k*a*b+p)*size:][:size], x.Data[(base+p*c+k)*size:][:size])
				}
			}
		}
	} else {
		shape = []int64{int64(n), int64(b), int64(c), int64(a)}
		for i := range n {
			base := i * a * b * c
			for k := range a {
				for p := range b * c {
					copy(out[(base+p*a+k)*size:][:size], x.Data[(base+k*b*c+p)*size:][:size])
				}
			}
		}
	}
	return map[string]tensor.Tensor{"y": {DataType: x.DataType, Shape: shape, Data: out}}, nil
}
