package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/infer-serving/infer/pkg/loadgen"
)

// progress shows a run going on: on a terminal one line redrawn in place,
// with a bar towards the run's end; elsewhere a plain line each update.
type progress struct {
	w        io.Writer
	tty      bool
	duration time.Duration
	requests uint64
	drawn    bool
}

func newProgress(w io.Writer, duration time.Duration, requests uint64) *progress {
	p := &progress{w: w, duration: duration, requests: requests}
	if f, ok := w.(*os.File); ok {
		p.tty = term.IsTerminal(int(f.Fd()))
	}
	return p
}

// fraction returns how far the run is, by time or by requests, whichever
// is further.
func (p *progress) fraction(s loadgen.Progress) float64 {
	var f float64
	if p.duration > 0 {
		f = s.Elapsed.Seconds() / p.duration.Seconds()
	}
	if p.requests > 0 {
		f = max(f, float64(s.OK+s.Failed)/float64(p.requests))
	}
	return min(f, 1)
}

func (p *progress) update(s loadgen.Progress) {
	counts := fmt.Sprintf("%5.1fs  sent %d  ok %d  failed %d", s.Elapsed.Seconds(), s.Sent, s.OK, s.Failed)
	if !p.tty {
		fmt.Fprintf(p.w, "  %s\n", counts)
		return
	}
	const width = 30
	done := int(p.fraction(s) * width)
	fmt.Fprintf(p.w, "\r  [%s%s] %3.0f%%  %s ", strings.Repeat("=", done), strings.Repeat(" ", width-done), 100*p.fraction(s), counts)
	p.drawn = true
}

// done ends the line the bar was drawn on.
func (p *progress) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
