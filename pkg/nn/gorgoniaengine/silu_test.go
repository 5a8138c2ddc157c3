package gorgoniaengine

import (
	"math"
	"testing"
)

// TestExpf32 compares expf32 with math.Exp rounded to float32 over the whole range the
// sigmoid reaches, on a fine grid and at the edges: within 2 ulp, saturating past ±87,
// and NaN for NaN.
func TestExpf32(t *testing.T) {
	ulp := func(v float32) float64 {
		return float64(math.Nextafter32(v, float32(math.Inf(1))) - v)
	}
	worst := 0.0
	for i := -870000; i <= 870000; i++ {
		x := float32(i) / 10000
		want := float32(math.Exp(float64(x)))
		got := expf32(x)
		if d := math.Abs(float64(got-want)) / ulp(want); d > worst {
			worst = d
			if d > 2 {
				t.Fatalf("expf32(%v) = %v, want %v (%.1f ulp)", x, got, want, d)
			}
		}
	}
	t.Logf("worst error: %.2f ulp", worst)
	for _, c := range []struct{ x, want float32 }{
		{0, 1},
		{float32(math.Inf(-1)), float32(math.Exp(-87))},
		{-1e30, float32(math.Exp(-87))},
		{float32(math.Inf(1)), float32(math.Exp(87))},
	} {
		if got := expf32(c.x); math.Abs(float64(got-c.want)) > 2*ulp(c.want) {
			t.Errorf("expf32(%v) = %v, want %v", c.x, got, c.want)
		}
	}
	if got := expf32(float32(math.NaN())); got == got {
		t.Errorf("expf32(NaN) = %v, want NaN", got)
	}
	for _, c := range []struct{ v, want float32 }{
		{0, 0.5}, {200, 1}, {float32(math.Inf(1)), 1}, {float32(math.Inf(-1)), 0},
	} {
		if got := sigmoid32(c.v); math.Abs(float64(got-c.want)) > 1e-37 {
			t.Errorf("sigmoid32(%v) = %v, want %v", c.v, got, c.want)
		}
	}
}

// TestRelu6Pass checks the branch-free mask of ReLU6's gradient against 0 < y < 6.
func TestRelu6Pass(t *testing.T) {
	nan := float32(math.NaN())
	for _, y := range []float32{0, float32(math.Copysign(0, -1)), 1e-45, 1e-30, 0.5, 1, 5.999999, 6, 6.000001, 7, 1e30,
		-1e-45, -1, -6, -7, -1e30, float32(math.Inf(1)), float32(math.Inf(-1)), nan, -nan} {
		want := uint32(0)
		if y > 0 && y < 6 {
			want = ^uint32(0)
		}
		if got := relu6Pass(y); got != want {
			t.Errorf("relu6Pass(%v) = %#x, want %#x", y, got, want)
		}
	}
}
