package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/carpkv/carpkv/carp/internal/ringstat"
)

// writePlot draws per-member load (count over mean) at N = cfg.PlotN for
// sequential keys, members sorted by load, one curve per scheme, in three
// panels of decreasing spread: all schemes, all but spec, strong and jump.
func writePlot(name string, res *results) error {
	n, k := res.cfg.PlotN, res.cfg.Keys
	panels := []struct {
		title   string
		schemes []string
	}{
		{fmt.Sprintf("all schemes (N=%d, K=%d sequential keys)", n, k), allSchemes},
		{"without spec", []string{ketama, strong, jump}},
		{"strong and jump only", []string{strong, jump}},
	}
	row := make([]*plot.Plot, len(panels))
	for i, pn := range panels {
		p, err := loadPlot(res, pn.schemes, pn.title)
		if err != nil {
			return err
		}
		row[i] = p
	}
	img := vgimg.NewWith(vgimg.UseWH(16*vg.Inch, 5*vg.Inch), vgimg.UseDPI(120))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: len(row), PadX: vg.Centimeter, PadTop: vg.Millimeter * 3, PadBottom: vg.Millimeter * 3, PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3}
	canvases := plot.Align([][]*plot.Plot{row}, tiles, dc)
	for i, p := range row {
		p.Draw(canvases[0][i])
	}

	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return f.Close()
}

func loadPlot(res *results, schemes []string, title string) (*plot.Plot, error) {
	n := res.cfg.PlotN
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "members, sorted by load"
	p.Y.Label.Text = "keys / mean keys per member"
	p.Y.Tick.Marker = loadTicks{}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())

	// Expected order statistics of an ideal placement: 1 + idealCV * z_i,
	// with Blom's approximation for the expected normal order statistics.
	ideal := make(plotter.XYs, n)
	cv := ringstat.IdealCV(n, res.cfg.Keys)
	for i := range ideal {
		q := (float64(i+1) - 0.375) / (float64(n) + 0.25)
		ideal[i] = plotter.XY{X: float64(i + 1), Y: 1 + cv*math.Sqrt2*math.Erfinv(2*q-1)}
	}
	l, err := plotter.NewLine(ideal)
	if err != nil {
		return nil, err
	}
	l.Color = color.Gray{Y: 80}
	l.Width = vg.Points(1.5)
	l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
	p.Add(l)
	p.Legend.Add("ideal (expected)", l)

	for _, s := range schemes {
		counts := res.loads[s]
		if len(counts) != n {
			return nil, fmt.Errorf("no loads for %s at N=%d", s, n)
		}
		sorted := slices.Clone(counts)
		slices.Sort(sorted)
		mean := float64(res.cfg.Keys) / float64(n)
		xys := make(plotter.XYs, n)
		for i, c := range sorted {
			xys[i] = plotter.XY{X: float64(i + 1), Y: float64(c) / mean}
		}
		line, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, err
		}
		c := plotutil.Color(slices.Index(allSchemes, s))
		line.Color, pts.Color = c, c
		line.Width = vg.Points(1.5)
		pts.Shape = plotutil.Shape(slices.Index(allSchemes, s))
		pts.Radius = vg.Points(2.5)
		p.Add(line, pts)
		p.Legend.Add(s, line, pts)
	}
	return p, nil
}

// loadTicks labels about six evenly spaced values with as many decimals as
// the step needs: gonum's default ticker rounds 1.01 to "1" on tight ranges.
type loadTicks struct{}

func (loadTicks) Ticks(lo, hi float64) []plot.Tick {
	step := 1.0
	for _, s := range []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1} {
		if (hi-lo)/s <= 8 {
			step = s
			break
		}
	}
	decimals := max(0, int(math.Ceil(-math.Log10(step)-1e-9)))
	var ticks []plot.Tick
	for i := math.Ceil(lo / step * 5); i <= math.Floor(hi/step*5); i++ {
		v := i * step / 5 // a minor tick every fifth of a step
		t := plot.Tick{Value: v}
		if math.Mod(i, 5) == 0 {
			t.Label = strconv.FormatFloat(v, 'f', decimals, 64)
		}
		ticks = append(ticks, t)
	}
	return ticks
}
