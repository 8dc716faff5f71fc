package main

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestQuickReportHasEverySection(t *testing.T) {
	dir := t.TempDir()
	md := filepath.Join(dir, "report.md")
	img := filepath.Join(dir, "load.png")
	var stdout, stderr bytes.Buffer
	if err := run([]string{"-quick", "-markdown", md, "-plot", img}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"Balance over equal members",
		"sequential keys", "random keys", "url keys",
		"ketama160", "jump",
		"Weights 1:2:3:4 (4 members)",
		"Random weights in [1, 4) over 16 members",
		"Movement when a member joins or leaves",
		"remove last",
		"Movement with unequal weights",
		"Verdict",
		"N=64 strong:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	if !strings.Contains(stderr.String(), "measured") {
		t.Errorf("no progress on stderr: %q", stderr.String())
	}

	mdText, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# CARP ring report", "## Verdict", "| N | scheme | max/mean |", "![per-member load", "(load.png)"} {
		if !bytes.Contains(mdText, []byte(want)) {
			t.Errorf("markdown lacks %q", want)
		}
	}

	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		t.Fatalf("plot is not a PNG: %v", err)
	}
	if cfg.Width < 800 || cfg.Height < 300 {
		t.Errorf("plot is %dx%d, too small to read", cfg.Width, cfg.Height)
	}
}

// The report is a function of its flags: two runs print the same text.
func TestReportIsDeterministic(t *testing.T) {
	var a, b, errs bytes.Buffer
	args := []string{"-quick", "-keys", "5000"}
	if err := run(args, &a, &errs); err != nil {
		t.Fatal(err)
	}
	if err := run(args, &b, &errs); err != nil {
		t.Fatal(err)
	}
	if a.String() != b.String() {
		t.Error("two runs with the same flags printed different reports")
	}
}

func TestBadFlagsAreRejected(t *testing.T) {
	for _, args := range [][]string{{"-keys", "10"}, {"extra"}, {"-nosuch"}} {
		var out, errs bytes.Buffer
		if err := run(args, &out, &errs); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}
