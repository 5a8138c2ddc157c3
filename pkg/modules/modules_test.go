package modules

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/config"
)

func names(ms []Module) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return strings.Join(out, ",")
}

func TestResolvePullsDependenciesInTableOrder(t *testing.T) {
	for target, want := range map[string]string{
		"bridge":                     "bridge",
		"dashboard":                  "curator,registry,dashboard",
		"curator,registry,dashboard": "curator,registry,dashboard",
		"all":                        "bridge,curator,registry,dashboard,retrain",
		"standalone":                 "embedded,bridge,curator,registry,dashboard,retrain,bootstrap,fleet,annotators",
		"fleet, retrain":             "curator,retrain,bootstrap,fleet",
		"retrain,retrain":            "retrain",
	} {
		ms, err := Resolve(target)
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		if got := names(ms); got != want {
			t.Errorf("Resolve(%q) = %s, want %s", target, got, want)
		}
	}
	for _, bad := range []string{"", "curatr", "all,nope"} {
		if _, err := Resolve(bad); err == nil {
			t.Errorf("Resolve(%q): want an error", bad)
		}
	}
}

// Every flag is registered once across all modules (a second registration panics), and
// each can be set from its EDGELOOP_* variable.
func TestFlagsRegisteredOnceAndReadFromTheEnvironment(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c := RegisterFlags(fs, "all")
	env := map[string]string{"EDGELOOP_BRIDGE_OPS_ADDR": "0.0.0.0:1", "EDGELOOP_RETRAIN_GROUP": "g2", "EDGELOOP_TARGET": "bridge"}
	if err := config.Parse(fs, []string{"-http-addr", ":9"}, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if c.Bridge.OpsAddr != "0.0.0.0:1" || c.Retrain.Group != "g2" || c.Target != "bridge" || c.HTTPAddr != ":9" {
		t.Fatalf("config %+v", c)
	}
}

// A binary refuses a target whose modules it does not link, before starting anything.
func TestRunRefusesModulesNotBuiltIn(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c := RegisterFlags(fs, "curator")
	err := Run(context.Background(), c, map[string]Impl{Bridge: {}}, zap.NewNop(), Options{})
	if err == nil || !strings.Contains(err.Error(), "module curator is not built into this binary") {
		t.Fatalf("err %v", err)
	}
}

// -demo picks the bootstrap's and the fleet's settings; flags given override them, and
// an unknown demo is refused.
func TestDemoSettings(t *testing.T) {
	parse := func(args ...string) (*Config, error) {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		c := RegisterFlags(fs, "standalone")
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return c, c.ApplyDemo()
	}
	c, err := parse()
	if err != nil || c.Bootstrap.Project != "digits" || c.Bootstrap.Dataset != "mnist" || c.Bootstrap.Limit != 2000 || c.Fleet.Drift != "rotation" {
		t.Fatalf("default demo: %v, %+v, drift %s", err, c.Bootstrap, c.Fleet.Drift)
	}
	c, err = parse("-demo", "colour", "-seed-limit", "50")
	if err != nil || c.Bootstrap.Project != "shelf" || !strings.HasPrefix(c.Bootstrap.Dataset, "colour-objects") || c.Bootstrap.Limit != 50 ||
		c.Bootstrap.Epochs != 4 || c.Fleet.Drift != "white-balance" {
		t.Fatalf("colour demo: %v, %+v, drift %s", err, c.Bootstrap, c.Fleet.Drift)
	}
	c, err = parse("-demo", "colour-detect")
	if err != nil || c.Bootstrap.Project != "shelf-detect" || !strings.HasPrefix(c.Bootstrap.Dataset, "colour-scenes:size=160x128") || c.Fleet.Drift != "white-balance" ||
		c.Bootstrap.Model == nil || c.Bootstrap.Model.Input != [2]int{160, 128} {
		t.Fatalf("colour-detect demo: %v, %+v, drift %s", err, c.Bootstrap, c.Fleet.Drift)
	}
	// The colour demos start from the first of their backbones that exists, relative to
	// the working directory: here, in a test, pkg/modules has none and it says which
	// files it looked for; from the repository root, the shipped one (the detector takes
	// its trunk).
	for _, demo := range []string{"colour", "colour-detect"} {
		c, _ = parse("-demo", demo)
		if bb, missing, err := c.DemoBackbone(); err != nil || bb != "" || missing != strings.Join(Demos()[demo].Backbones, ", ") {
			t.Fatalf("%s demo without a backbone: %q, missing %q, %v", demo, bb, missing, err)
		}
	}
	t.Chdir("../..")
	shipped, _ := filepath.Abs(Demos()["colour"].Backbones[1])
	if _, err := os.Stat(Demos()["colour"].Backbones[0]); err == nil {
		shipped, _ = filepath.Abs(Demos()["colour"].Backbones[0]) // `make pretrain` has run here
	}
	for _, demo := range []string{"colour", "colour-detect"} {
		c, _ = parse("-demo", demo)
		if bb, missing, err := c.DemoBackbone(); err != nil || bb != shipped || missing != "" {
			t.Fatalf("%s demo from the repository root: %q, missing %q, %v; want %s", demo, bb, missing, err, shipped)
		}
	}
	file := filepath.Join(t.TempDir(), "mine.safetensors")
	for arg, want := range map[string]string{file: file, "none": ""} {
		c, _ = parse("-demo", "colour", "-backbone", arg)
		if bb, missing, err := c.DemoBackbone(); err != nil || bb != want || missing != "" {
			t.Fatalf("-backbone %s: %q, missing %q, %v", arg, bb, missing, err)
		}
	}
	if _, err := parse("-demo", "sepia"); err == nil || !strings.Contains(err.Error(), "want one of colour, colour-detect, digits") {
		t.Fatalf("an unknown demo: %v", err)
	}
}
