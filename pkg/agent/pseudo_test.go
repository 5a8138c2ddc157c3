package agent

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/sampling"
)

// TestPseudoFlagsGovernTheConfidentStrategy: by default the agent sends pseudo-labels
// (the confident strategy, 2 % at ≥ 0.9, ≤ 6 a minute); the -pseudo-* flags (also
// EDGELOOP_PSEUDO_*) change it, in a sampling file's config too, and a share of 0 turns
// it off; a bad value is an error naming the flags.
func TestPseudoFlagsGovernTheConfidentStrategy(t *testing.T) {
	parse := func(args ...string) (Config, error) {
		fs := flag.NewFlagSet("agent", flag.ContinueOnError)
		f := RegisterFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return f.Config()
	}
	confident := func(c Config) *sampling.StrategyConfig {
		i := slices.IndexFunc(c.Sampling.Strategies, func(s sampling.StrategyConfig) bool { return s.Kind == sampling.Confident })
		if i < 0 {
			return nil
		}
		return &c.Sampling.Strategies[i]
	}
	c, err := parse()
	if err != nil {
		t.Fatal(err)
	}
	if s := confident(c); s == nil || s.Probability != 0.02 || s.Min != 0.9 || s.Limits.PerMinute != 6 {
		t.Fatalf("default confident strategy %+v", s)
	}
	file := filepath.Join(t.TempDir(), "sampling.json")
	if err := os.WriteFile(file, []byte(`{"strategies": [{"kind": "operator_flagged"}, {"kind": "random", "probability": 0.1}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err = parse("-sampling", file, "-pseudo-share", "0.1", "-pseudo-per-minute", "2", "-pseudo-min-confidence", "0.97")
	if err != nil {
		t.Fatal(err)
	}
	if s := confident(c); s == nil || s.Probability != 0.1 || s.Min != 0.97 || s.Limits.PerMinute != 2 || len(c.Sampling.Strategies) != 3 {
		t.Fatalf("a sampling file with -pseudo-*: %+v", c.Sampling.Strategies)
	}
	if c, err = parse("-pseudo-share", "0"); err != nil || confident(c) != nil {
		t.Fatalf("-pseudo-share 0: %+v, %v", c.Sampling.Strategies, err)
	}
	if _, err := parse("-pseudo-share", "0.1", "-pseudo-min-confidence", "1.5"); err == nil {
		t.Fatal("-pseudo-min-confidence 1.5 accepted")
	}
}
