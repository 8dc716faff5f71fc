// Command carp-report measures how carp rings place keys and compares them
// with a ketama-style ring and jump consistent hashing: balance over equal
// members, accuracy of weighted shares, and how many keys move when a member
// joins or leaves. It prints aligned tables and can also write them as
// Markdown and plot per-member loads as a PNG.
//
//	go run ./carp/cmd/carp-report -markdown docs/carp/report.md -plot docs/carp/load.png
//
// Every number is a function of the flags: keys come from fixed seeds.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "carp-report:", err)
		}
		os.Exit(2)
	}
}

// config is everything a report depends on.
type config struct {
	Keys     int    // keys per shape
	Members  []int  // ring sizes N for balance, movement and weighted runs
	Seed     uint64 // seed of random and URL keys and of random weights
	Markdown string // write the report as Markdown here too, if set
	Plot     string // write the load plot here, if set
	Quick    bool   // fewer keys and ring sizes
	PlotN    int    // ring size plotted (64, or the largest measured)
	progress *progress
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("carp-report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keys := fs.Int("keys", 1_000_000, "keys per key shape")
	seed := fs.Uint64("seed", 1, "seed for random and URL keys and for random weights")
	md := fs.String("markdown", "", "also write the report as Markdown to this `file`")
	plot := fs.String("plot", "", "write a PNG of per-member load at N=64 (sequential keys) to this `file`")
	quick := fs.Bool("quick", false, "a fast, smaller run (20000 keys unless -keys is set; N = 3, 16, 64)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg := config{Keys: *keys, Seed: *seed, Markdown: *md, Plot: *plot, Quick: *quick, Members: []int{3, 16, 64, 256}}
	if cfg.Quick {
		cfg.Members = []int{3, 16, 64}
		keysSet := false
		fs.Visit(func(f *flag.Flag) { keysSet = keysSet || f.Name == "keys" })
		if !keysSet {
			cfg.Keys = 20_000
		}
	}
	if cfg.Keys < 1000 {
		return config{}, fmt.Errorf("-keys %d: need at least 1000 keys", cfg.Keys)
	}
	cfg.PlotN = cfg.Members[len(cfg.Members)-1]
	for _, n := range cfg.Members {
		if n == 64 {
			cfg.PlotN = 64
		}
	}
	return cfg, nil
}

func run(args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	cfg.progress = &progress{w: stderr, start: time.Now()}
	res, err := measure(cfg)
	if err != nil {
		return err
	}
	d := buildReport(res)
	if err := d.text(stdout); err != nil {
		return err
	}
	if cfg.Markdown != "" {
		if err := writeFile(cfg.Markdown, d.markdown); err != nil {
			return err
		}
		cfg.progress.printf("wrote %s", cfg.Markdown)
	}
	if cfg.Plot != "" {
		if err := writePlot(cfg.Plot, res); err != nil {
			return err
		}
		cfg.progress.printf("wrote %s", cfg.Plot)
	}
	cfg.progress.printf("done")
	return nil
}

func writeFile(name string, write func(io.Writer) error) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return f.Close()
}

// progress reports long steps on stderr with the elapsed time.
type progress struct {
	w     io.Writer
	start time.Time
}

func (p *progress) printf(format string, args ...any) {
	fmt.Fprintf(p.w, "[%6.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}
