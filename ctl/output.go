package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"unicode/utf8"
)

// Results go to stdout: a table (or a bare value, where a script wants
// one) by default, JSON with --output json.

// writeTable writes rows under header, aligned. Empty cells show as "-".
func writeTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			if c == "" {
				c = "-"
			}
			cells[i] = c
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// writeTableRaw writes rows under header, aligned, with empty cells left
// blank (continuation rows).
func writeTableRaw(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// writeJSON writes v as indented JSON and a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// bytesField renders bytes for JSON: the text itself when it is valid
// UTF-8, else base64 with the flag set.
func bytesField(b []byte) (s string, isBase64 bool) {
	if utf8.Valid(b) {
		return string(b), false
	}
	return base64.StdEncoding.EncodeToString(b), true
}

// valueResult is the JSON of `get`.
type valueResult struct {
	Key         string `json:"key"`
	KeyBase64   bool   `json:"key_base64"`
	Value       string `json:"value"`
	ValueBase64 bool   `json:"value_base64"`
	Version     uint64 `json:"version"`
}

// writeResult is the JSON of a write: the new version (put, cas) or the
// deleted one (delete).
type writeResult struct {
	Key       string `json:"key"`
	KeyBase64 bool   `json:"key_base64"`
	Version   uint64 `json:"version"`
}

// humanBytes renders a byte count in binary units.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
