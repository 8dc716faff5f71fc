package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// doc is a report as a list of blocks, rendered either as aligned text for
// a terminal or as Markdown.
type doc struct{ blocks []block }

type block interface {
	text(w io.Writer)
	markdown(w io.Writer)
}

func (d *doc) heading(level int, format string, args ...any) {
	d.blocks = append(d.blocks, heading{level, fmt.Sprintf(format, args...)})
}

// para adds a paragraph of Markdown; text output drops the markup.
func (d *doc) para(s string) { d.blocks = append(d.blocks, para(s)) }

func (d *doc) paraf(format string, args ...any) { d.para(fmt.Sprintf(format, args...)) }

func (d *doc) table(header ...string) *table {
	t := &table{header: header}
	d.blocks = append(d.blocks, t)
	return t
}

func (d *doc) text(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, b := range d.blocks {
		b.text(bw)
	}
	return bw.Flush()
}

func (d *doc) markdown(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for i, b := range d.blocks {
		if i > 0 {
			bw.WriteString("\n")
		}
		b.markdown(bw)
	}
	return bw.Flush()
}

type heading struct {
	level int
	s     string
}

func (h heading) text(w io.Writer) {
	if h.level <= 2 {
		fmt.Fprintf(w, "\n%s\n%s\n", h.s, strings.Repeat("=", len(h.s)))
		return
	}
	fmt.Fprintf(w, "\n-- %s --\n", h.s)
}

func (h heading) markdown(w io.Writer) {
	fmt.Fprintf(w, "%s %s\n", strings.Repeat("#", h.level), h.s)
}

type para string

// markup is the Markdown that text output leaves out.
var markup = strings.NewReplacer("`", "", "**", "")

func (p para) text(w io.Writer) {
	s := string(p)
	if strings.HasPrefix(s, "![") { // an image: name the file instead
		if i := strings.LastIndex(s, "]("); i >= 0 {
			s = "Plot: " + strings.TrimSuffix(s[i+2:], ")")
		}
	}
	fmt.Fprintf(w, "%s\n\n", markup.Replace(s))
}

func (p para) markdown(w io.Writer) { fmt.Fprintf(w, "%s\n", p) }

type table struct {
	header []string
	rows   [][]string
}

func (t *table) row(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) text(w io.Writer) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	line := func(cells []string) {
		// A trailing tab makes the last column align too.
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	line(t.header)
	rule := make([]string, len(t.header))
	for i, h := range t.header {
		rule[i] = strings.Repeat("-", len(h))
	}
	line(rule)
	for _, r := range t.rows {
		line(r)
	}
	tw.Flush()
}

func (t *table) markdown(w io.Writer) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(escapeCells(t.header), " | "))
	align := make([]string, len(t.header))
	for i := range align {
		align[i] = "---:"
		for _, r := range t.rows {
			if i < len(r) && !numeric(r[i]) {
				align[i] = ":---"
				break
			}
		}
	}
	fmt.Fprintf(w, "| %s |\n", strings.Join(align, " | "))
	for _, r := range t.rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(escapeCells(r), " | "))
	}
}

func escapeCells(cells []string) []string {
	out := make([]string, len(cells))
	for i, c := range cells {
		out[i] = strings.ReplaceAll(c, "|", `\|`)
	}
	return out
}

// numeric reports whether a cell reads as a number (right-aligned in
// Markdown); words and labels are left-aligned.
func numeric(s string) bool {
	s = strings.TrimLeft(s, "+-±<")
	return s == "" || strings.ContainsAny(s[:1], "0123456789.")
}
