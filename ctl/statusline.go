package main

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// statusLine shows a status line on w (stderr): rewritten in place on a
// terminal, one line per update otherwise (logs, CI).
type statusLine struct {
	w     io.Writer
	tty   bool
	shown bool
}

func newStatusLine(w io.Writer) *statusLine {
	p := &statusLine{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *statusLine) show(line string) {
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
	p.shown = true
}

// done ends the line on a terminal.
func (p *statusLine) done() {
	if p.tty && p.shown {
		fmt.Fprintln(p.w)
	}
	p.shown = false
}

// drawBar renders done/total as a bar of width cells.
func drawBar(done, total, width int) string {
	if total <= 0 {
		return strings.Repeat(" ", width)
	}
	n := min(width, done*width/total)
	return strings.Repeat("#", n) + strings.Repeat(".", width-n)
}

// progName is how to call carpkvctl in hints: as it was invoked.
func (e *env) progName() string {
	if e.prog == "" {
		return "carpkvctl"
	}
	return e.prog
}
