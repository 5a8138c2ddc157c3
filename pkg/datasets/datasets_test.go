package datasets

import (
	"slices"
	"strings"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/colourscenes"
	"github.com/edgeloop/edgeloop/pkg/drift"
	"github.com/edgeloop/edgeloop/pkg/nn"
)

func TestParseColourSpecs(t *testing.T) {
	for in, want := range map[string]Spec{
		"colour-objects":                                       {Name: ColourObjects},
		"colour-scenes:drift=low-light":                        {Name: ColourScenes, Drift: "low-light"},
		"colour-objects:size=128x64":                           {Name: ColourObjects, W: 128, H: 64},
		"colour-scenes:size=640x480,classes=12,drift=new-site": {Name: ColourScenes, W: 640, H: 480, Classes: 12, Drift: "new-site"},
		"mnist:drift=rotation":                                 {Name: MNIST, Drift: "rotation"},
		"colour-scenes:size=320x240,classes=8,objects=50-100":  {Name: ColourScenes, W: 320, H: 240, Classes: 8, MinObjects: 50, MaxObjects: 100},
		"colour-scenes:objects=0-100":                          {Name: ColourScenes, MinObjects: 0, MaxObjects: 100},
		"colour-scenes:objects=7":                              {Name: ColourScenes, MinObjects: 7, MaxObjects: 7},
	} {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Fatalf("Parse(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		again, err := Parse(got.String())
		if err != nil || again != got {
			t.Fatalf("Parse(%q) does not round-trip through %q: %+v, %v", in, got.String(), again, err)
		}
	}
	for _, bad := range []string{"colour-scenes:drift=rotation", "mnist:drift=low-light", "mnist:size=64x64",
		"colour-objects:size=8x8", "colour-scenes:size=48x48", "colour-objects:classes=17", "colour-objects:classes=x", "colour-scenes:zoom=2", "colours",
		"colour-scenes:objects=101", "colour-scenes:objects=60-50", "colour-scenes:objects=0-0", "colour-scenes:objects=-3", "colour-scenes:objects=a-b",
		"colour-objects:objects=3", "digit-scenes:objects=3"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	// A bad count says what, where and why.
	_, err := Parse("colour-scenes:size=320x240,objects=50-120")
	if err == nil || !strings.Contains(err.Error(), `"colour-scenes:size=320x240,objects=50-120"`) ||
		!strings.Contains(err.Error(), `objects "50-120"`) || !strings.Contains(err.Error(), "MAX <= 100") {
		t.Errorf("objects=50-120: %v", err)
	}
	if _, err := Parse("colour-scenes:objectz=5"); err == nil || !strings.Contains(err.Error(), "objects=MIN-MAX") {
		t.Errorf("unknown option: %v, want the options colour-scenes takes", err)
	}
}

func TestColourSpecShapes(t *testing.T) {
	s, _ := Parse("colour-scenes:size=320x256,classes=5")
	if s.Task() != nn.Detect || !s.Colour() || len(s.ClassNames()) != 5 {
		t.Fatalf("colour-scenes: task %s, colour %v, %d classes", s.Task(), s.Colour(), len(s.ClassNames()))
	}
	if a := s.Arch(); a.InC != 3 || a.InW != 320 || a.InH != 256 || a.Classes != 5 || a.Task != nn.Detect {
		t.Fatalf("colour-scenes arch %+v", a)
	}
	o, _ := Parse("colour-objects")
	if a := o.Arch(); a.InC != 3 || a.InW != 96 || a.InH != 96 || a.Classes != 8 || a.Task != nn.Classify {
		t.Fatalf("colour-objects arch: %dx%dx%d, %d classes, %s", a.InC, a.InW, a.InH, a.Classes, a.Task)
	}
	if _, _, err := o.Arch().Analyse(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.ClassNames(), colourscenes.Catalogue()[:8]) {
		t.Fatalf("colour-objects classes %v", o.ClassNames())
	}
}

// A project seeded from a dataset never mirrors a letter or a digit, and mirrors the
// colour catalogue's shapes; the setting resolves against the dataset's classes.
func TestMirroringOfTheDatasets(t *testing.T) {
	for name, want := range map[string][]string{
		"colour-objects":           {"A", "K"},
		"colour-scenes:classes=16": {"A", "K", "R", "E", "G", "S", "F", "Y"},
		"colour-scenes:classes=4":  nil,
		"mnist":                    Classes(),
		"digit-scenes":             Classes(),
	} {
		s, err := Parse(name)
		if err != nil {
			t.Fatal(err)
		}
		m := s.Mirroring()
		if !slices.Equal(m.Never, want) || len(m.Pairs) != 0 {
			t.Errorf("%s: never mirrored %v, want %v", name, m.Never, want)
		}
		if _, err := m.Resolve(s.ClassNames()); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestLoadColourSplits(t *testing.T) {
	g, err := colourscenes.New(colourscenes.LoadPhotos(t.TempDir(), nil)) // procedural: fast
	if err != nil {
		t.Fatal(err)
	}
	none, _ := drift.Get(drift.None)
	s, _ := Parse("colour-objects:size=48x32,classes=4")
	sp, err := LoadColour(g, s, Sizes{Train: 12, Val: 4, Test: 8}, 1, none)
	if err != nil {
		t.Fatal(err)
	}
	if len(sp.Train) != 12 || len(sp.Val) != 4 || len(sp.Test) != 8 {
		t.Fatalf("splits %d/%d/%d, want 12/4/8", len(sp.Train), len(sp.Val), len(sp.Test))
	}
	for _, smp := range sp.Train {
		if smp.Image.W != 48 || smp.Image.H != 32 || smp.Image.Channels() != 3 || smp.Label < 0 || smp.Label >= 4 {
			t.Fatalf("sample %s: %dx%dx%d label %d", smp.ID, smp.Image.W, smp.Image.H, smp.Image.Channels(), smp.Label)
		}
	}
	if slices.Equal(sp.Train[0].Image.Pix, sp.Val[0].Image.Pix) || slices.Equal(sp.Train[0].Image.Pix, sp.Test[0].Image.Pix) {
		t.Fatal("train, val and test share an image")
	}
	again, _ := LoadColour(g, s, Sizes{Train: 12, Val: 4, Test: 8}, 1, none)
	if !slices.Equal(again.Test[3].Image.Pix, sp.Test[3].Image.Pix) {
		t.Fatal("the same seed gave another test split")
	}
	sc, _ := Parse("colour-scenes")
	det, err := LoadColour(g, sc, Sizes{Train: 3, Val: 1, Test: 1}, 1, none)
	if err != nil || len(det.Train) != 3 || det.Train[0].Image.W != 320 || len(det.Train[0].Boxes) == 0 {
		t.Fatalf("colour scenes: %v, %d train", err, len(det.Train))
	}
	// Dense scenes: every scene holds 50–100 objects.
	dense, _ := Parse("colour-scenes:size=320x240,classes=8,objects=50-100")
	det, err = LoadColour(g, dense, Sizes{Train: 3, Val: 1, Test: 1}, 1, none)
	if err != nil {
		t.Fatal(err)
	}
	for _, smp := range slices.Concat(det.Train, det.Val, det.Test) {
		if n := len(smp.Boxes); n < 50 || n > 100 {
			t.Fatalf("dense scene %s: %d objects, want 50–100", smp.ID, n)
		}
	}
}

func TestLoadColourRefusesScenesThatCannotHoldTheirObjects(t *testing.T) {
	g, err := colourscenes.New(colourscenes.LoadPhotos(t.TempDir(), nil)) // procedural: fast
	if err != nil {
		t.Fatal(err)
	}
	none, _ := drift.Get(drift.None)
	crowded, err := Parse("colour-scenes:size=64x64,objects=100")
	if err != nil {
		t.Fatal(err)
	}
	_, err = LoadColour(g, crowded, Sizes{Train: 2, Val: 1, Test: 1}, 1, none)
	if err == nil {
		t.Fatal("100 objects in 64×64 scenes loaded")
	}
	t.Log(err)
	for _, want := range []string{"colour-scenes:size=64x64,objects=100-100", "train scene 0", "(64x64)", "of the 100 objects asked placed", "minimum 100"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	def, _ := Parse("colour-scenes")
	if _, err := LoadColour(g, def, Sizes{Train: 8, Val: 2, Test: 2}, 1, none); err != nil {
		t.Fatalf("default spec: %v", err)
	}
}
