package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/artifact"
	"github.com/edgeloop/edgeloop/pkg/atomicfile"
	"github.com/edgeloop/edgeloop/pkg/augment"
	"github.com/edgeloop/edgeloop/pkg/colourscenes"
	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/drift"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/nn/backend"
	"github.com/edgeloop/edgeloop/pkg/nn/weights"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/train"
)

// bnCell is one (preset, seed) cell of the colour site-adaptation table: the
// fine-tuned classifier's accuracy on the drifted and the clean test images before
// and after its batch norm statistics are re-estimated on Frames[i] unlabelled
// drifted frames.
type bnCell struct {
	Preset        string    `json:"preset"`
	Seed          uint64    `json:"seed"`
	Model         string    `json:"model"`
	Test          int       `json:"test_images"`
	Frames        []int     `json:"frames"`
	DriftedBefore float64   `json:"drifted_before"`
	CleanBefore   float64   `json:"clean_before"`
	DriftedAfter  []float64 `json:"drifted_after"`
	CleanAfter    []float64 `json:"clean_after"`
	Seconds       float64   `json:"seconds"`
}

// colourSiteAdaptation measures train.AdaptBN on a classifier that has learnt: per
// seed, the shipped MobileNetV2 backbone (o.bnBackbone) fine-tuned on o.seedExamples
// clean colour objects (bench/colour's recipe), then for each colour preset its
// statistics re-estimated on N unlabelled drifted frames for each N of o.bnFrameList.
// Each seed's model and each (preset, seed) cell is saved under o.out as it finishes;
// a rerun skips what is there, and -bn-budget stops starting work once spent, so a
// run fits one hold of the heavy lock and the next resumes.
func colourSiteAdaptation(ctx context.Context, o options, presets []drift.Preset, be backend.Choice, log *zap.Logger) (string, error) {
	o.drift = presets[0].Name // newScenario's: the seed data are clean whichever it is
	cellDir := filepath.Join(o.out, "cells")
	if err := os.MkdirAll(cellDir, 0o755); err != nil {
		return "", fmt.Errorf("site adaptation: %w", err)
	}
	began := time.Now()
	spent := func() bool { return o.bnBudget > 0 && time.Since(began) > o.bnBudget }
	left := 0
	for seed := uint64(o.firstSeed); seed < uint64(o.firstSeed+o.seeds); seed++ {
		var model *artifact.Model
		var sc *scenario
		for _, d := range presets {
			path := filepath.Join(cellDir, fmt.Sprintf("%s-seed%d.json", d.Name, seed))
			if _, err := os.Stat(path); err == nil {
				continue
			}
			if spent() {
				left++
				continue
			}
			if model == nil {
				// A fine-tune takes minutes: start one only in the budget's first third.
				if _, err := os.Stat(filepath.Join(o.out, fmt.Sprintf("model-seed%d.elmodel", seed))); err != nil && o.bnBudget > 0 && time.Since(began) > o.bnBudget/3 {
					left++
					continue
				}
				var err error
				if model, sc, err = seedModel(ctx, o, seed, be, log); err != nil {
					return "", err
				}
				if spent() {
					left++
					continue
				}
			}
			c, err := bnColourCell(ctx, o, sc, model, d)
			if err != nil {
				return "", err
			}
			b, _ := json.MarshalIndent(c, "", "  ")
			if err := atomicfile.Write(path, b, 0o644); err != nil {
				return "", err
			}
			fmt.Fprintf(os.Stderr, "  %s seed %d: drifted %.3f → %v, clean %.3f → %v (%.0f s)\n", d.Name, seed, c.DriftedBefore, c.DriftedAfter,
				c.CleanBefore, c.CleanAfter, c.Seconds)
		}
	}
	if left > 0 {
		fmt.Fprintf(os.Stderr, "budget %s spent: %d cells not started (a rerun with the same -out resumes)\n", o.bnBudget, left)
	}
	return bnColourTable(o, cellDir)
}

// seedModel is seed's fine-tuned classifier, read from o.out when an earlier run made
// it, else fine-tuned from the backbone on the scenario's clean seed objects and saved.
func seedModel(ctx context.Context, o options, seed uint64, be backend.Choice, log *zap.Logger) (*artifact.Model, *scenario, error) {
	sc, err := newScenario(ctx, o, nil, nil, seed, be, false)
	if err != nil {
		return nil, nil, err
	}
	path := filepath.Join(o.out, fmt.Sprintf("model-seed%d.elmodel", seed))
	if b, err := os.ReadFile(path); err == nil {
		m, err := artifact.Decode(b)
		if err != nil {
			return nil, nil, fmt.Errorf("site adaptation: %s: %w", path, err)
		}
		sc.arch = m.Header.Arch
		return m, sc, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	side := o.colourSide
	a, p, err := weights.Backbone(o.bnBackbone, side, side, 3, len(sc.project.Classes), seed, log)
	if err != nil {
		return nil, nil, fmt.Errorf("site adaptation: backbone: %w", err)
	}
	if a.Name != nn.MobileNetV2+"-"+o.bnFamily {
		return nil, nil, fmt.Errorf("site adaptation: backbone %s is a %s, not -bn-family %s", o.bnBackbone, a.Name, o.bnFamily)
	}
	n := len(sc.data.Train)
	// bench/colour's recipe: 10 passes over the images seen, clamped to 3,000–12,000.
	cfg := train.Config{Epochs: max(1, min(max(10*n, 3000), 12000)/n), BatchSize: 32, LR: 1e-3, Patience: 4, Seed: seed, Augment: augment.DefaultFor(a)}
	t0 := time.Now()
	res, err := train.Run(ctx, a, p, sc.project.Classes, train.Split{Train: sc.data.Train, Val: sc.data.Val}, cfg, be.Factory)
	if err != nil {
		return nil, nil, fmt.Errorf("site adaptation: seed %d: fine-tune: %w", seed, err)
	}
	m := &artifact.Model{Header: artifact.Header{Arch: a, Classes: sc.project.Classes, CreatedAt: time.Now().UTC(),
		Lineage: artifact.Lineage{Dataset: "colour-objects", Backbone: filepath.Base(o.bnBackbone), Examples: n}}, Params: res.Params}
	b, err := artifact.Encode(m)
	if err != nil {
		return nil, nil, err
	}
	if err := atomicfile.Write(path, b, 0o644); err != nil {
		return nil, nil, err
	}
	sc.arch = a
	fmt.Fprintf(os.Stderr, "  seed %d: %s fine-tuned on %d clean objects, %d epochs (best %d), %.0f s\n", seed, a.Name, n, len(res.History), res.BestEpoch,
		time.Since(t0).Seconds())
	return m, sc, nil
}

// bnColourCell measures one preset on one seed's model.
func bnColourCell(ctx context.Context, o options, base *scenario, m *artifact.Model, d drift.Preset) (bnCell, error) {
	t0 := time.Now()
	sc := base.clone()
	sc.drift = d
	if err := sc.colourDrift(o); err != nil {
		return bnCell{}, err
	}
	sc.arch = m.Header.Arch
	c := bnCell{Preset: d.Name, Seed: sc.seed, Model: m.Header.Arch.Name, Test: len(sc.test), Frames: o.bnFrameList}
	var err error
	if c.DriftedBefore, err = sc.accuracyOn(m.Params, sc.test); err != nil {
		return c, err
	}
	if c.CleanBefore, err = sc.accuracyOn(m.Params, sc.clean); err != nil {
		return c, err
	}
	frames := streamChunk(sc, 0, slices.Max(o.bnFrameList))
	for _, n := range o.bnFrameList {
		ims := make([]*raster.Image, n)
		for i := range ims {
			ims[i] = frames[i].Image
		}
		adapted, err := train.AdaptBN(ctx, sc.arch, m.Params, ims, 32, sc.backend.Factory)
		if err != nil {
			return c, err
		}
		da, err := sc.accuracyOn(adapted, sc.test)
		if err != nil {
			return c, err
		}
		ca, err := sc.accuracyOn(adapted, sc.clean)
		if err != nil {
			return c, err
		}
		c.DriftedAfter, c.CleanAfter = append(c.DriftedAfter, da), append(c.CleanAfter, ca)
	}
	c.Seconds = time.Since(t0).Seconds()
	return c, nil
}

// bnColourTable lays the cells out: per preset, the mean over seeds (and the range)
// before and after each N, drifted and clean.
func bnColourTable(o options, dir string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	byPreset := map[string][]bnCell{}
	var order []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return "", err
		}
		var c bnCell
		if err := json.Unmarshal(b, &c); err != nil {
			return "", fmt.Errorf("site adaptation: %s: %w", e.Name(), err)
		}
		if !slices.Contains(order, c.Preset) {
			order = append(order, c.Preset)
		}
		byPreset[c.Preset] = append(byPreset[c.Preset], c)
	}
	names := drift.NamesFor(true)
	slices.SortFunc(order, func(a, b string) int { return slices.Index(names, a) - slices.Index(names, b) })
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nSite adaptation on a colour classifier that has learnt: %s-%s from %s, fine-tuned on %d clean colour objects (%d classes, %d px); "+
		"accuracy on %d test images drifted and clean, mean over seeds [min–max], before and after train.AdaptBN on N unlabelled drifted frames\n\n",
		nn.MobileNetV2, o.bnFamily, filepath.Base(o.bnBackbone), o.seedExamples, o.colourClasses, o.colourSide, o.test)
	sb.WriteString("| preset | seeds | drifted, before |")
	for _, n := range o.bnFrameList {
		fmt.Fprintf(&sb, " drifted, N=%d |", n)
	}
	sb.WriteString(" clean, before |")
	for _, n := range o.bnFrameList {
		fmt.Fprintf(&sb, " clean, N=%d |", n)
	}
	sb.WriteString("\n|---|---:|---:|" + strings.Repeat("---:|", 2*len(o.bnFrameList)+1) + "\n")
	cellOf := func(vs []float64) string {
		if len(vs) == 0 {
			return "—"
		}
		var s float64
		for _, v := range vs {
			s += v
		}
		return fmt.Sprintf("%.3f [%.3f–%.3f]", s/float64(len(vs)), slices.Min(vs), slices.Max(vs))
	}
	for _, p := range order {
		cs := byPreset[p]
		col := func(f func(c bnCell) (float64, bool)) string {
			var vs []float64
			for _, c := range cs {
				if v, ok := f(c); ok {
					vs = append(vs, v)
				}
			}
			return cellOf(vs)
		}
		at := func(vs []float64, frames []int, n int) (float64, bool) {
			i := slices.Index(frames, n)
			if i < 0 || i >= len(vs) {
				return 0, false
			}
			return vs[i], true
		}
		fmt.Fprintf(&sb, "| %s | %d | %s |", p, len(cs), col(func(c bnCell) (float64, bool) { return c.DriftedBefore, true }))
		for _, n := range o.bnFrameList {
			fmt.Fprintf(&sb, " %s |", col(func(c bnCell) (float64, bool) { return at(c.DriftedAfter, c.Frames, n) }))
		}
		fmt.Fprintf(&sb, " %s |", col(func(c bnCell) (float64, bool) { return c.CleanBefore, true }))
		for _, n := range o.bnFrameList {
			fmt.Fprintf(&sb, " %s |", col(func(c bnCell) (float64, bool) { return at(c.CleanAfter, c.Frames, n) }))
		}
		sb.WriteString("\n")
	}
	return sb.String(), nil
}

// colourPresets reads -drift as a comma list of colour presets (-bn-family).
func colourPresets(list string) ([]drift.Preset, bool, error) {
	var out []drift.Preset
	for _, name := range config.SplitList(list) {
		d, err := drift.Get(name)
		if err != nil {
			return nil, false, err
		}
		out = append(out, d)
	}
	colour := len(out) > 0 && !slices.ContainsFunc(out, func(d drift.Preset) bool { return !d.Colour })
	if len(out) > 1 && !colour {
		return nil, false, fmt.Errorf("-drift %q: a list must be colour presets only (%s)", list, strings.Join(drift.NamesFor(true)[1:], ", "))
	}
	return out, colour, nil
}

// colourGenerator loads the photographs of the home site and every preset's site.
func colourGenerator(presets []drift.Preset, log *zap.Logger) (*colourscenes.Generator, error) {
	sites := []string{colourscenes.SiteHome}
	for _, d := range presets {
		if s := colourscenes.SiteOf(d); !slices.Contains(sites, s) {
			sites = append(sites, s)
		}
	}
	return colourscenes.New(colourscenes.LoadPhotos("", log, sites...))
}
