package nn

import (
	"math"
	"strings"
	"testing"
)

// TestFamilyMatchesReference: the m size is torchvision's mobilenet_v2 to the weight
// (3,504,872 with 1,000 classes), and the multiply-adds are the paper's and Keras's
// published figures (300M at 1.0/224, 154M at 1.0/160, 97M at 0.5/224, 50M at 0.5/160,
// 59M at 0.35/224, 31M at 0.35/160), within 1%.
func TestFamilyMatchesReference(t *testing.T) {
	for _, c := range []struct {
		size   string
		px     int
		params int
		macsM  float64
	}{{"m", 224, 3504872, 300}, {"m", 160, 3504872, 154}, {"s", 224, 0, 97}, {"s", 160, 0, 50}, {"n", 224, 0, 59}, {"n", 160, 0, 30.9}} {
		a, err := Family(MobileNetV2, c.size, c.px, c.px, 3, 1000)
		if err != nil {
			t.Fatal(err)
		}
		params, macs, err := a.Cost()
		if err != nil {
			t.Fatal(err)
		}
		if c.params != 0 && params != c.params {
			t.Errorf("%s: %d weights, want %d", a.Name, params, c.params)
		}
		if m := float64(macs) / 1e6; math.Abs(m-c.macsM) > 0.01*c.macsM {
			t.Errorf("%s at %d px: %.1fM multiply-adds, want %.0fM", a.Name, c.px, m, c.macsM)
		}
		adds := 0
		for _, l := range a.Layers {
			if l.Kind == Add {
				adds++
			}
		}
		if adds != 10 || a.Layers[a.HeadFrom].Kind != Dense || a.HeadFrom != len(a.Layers)-1 {
			t.Errorf("%s: %d residual adds (want 10), head %d", a.Name, adds, a.HeadFrom)
		}
	}
	n, _ := Family(MobileNetV2, "n", 96, 96, 1, 2)
	if n.Layers[0].Out != 16 || n.InC != 1 {
		t.Errorf("n stem %d filters on %d channels", n.Layers[0].Out, n.InC)
	}
}

func TestFamilyRefusals(t *testing.T) {
	for want, f := range map[string]func() (Arch, error){
		`family "resnet" unknown`: func() (Arch, error) { return Family("resnet", "n", 96, 96, 3, 2) },
		`size "xl" unknown`:       func() (Arch, error) { return Family(MobileNetV2, "xl", 96, 96, 3, 2) },
		"use 32 px or more":       func() (Arch, error) { return Family(MobileNetV2, "n", 16, 96, 3, 2) },
		"4 channels":              func() (Arch, error) { return Family(MobileNetV2, "n", 96, 96, 4, 2) },
	} {
		if _, err := f(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q, got %v", want, err)
		}
	}
}
