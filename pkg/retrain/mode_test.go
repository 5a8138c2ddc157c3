package retrain

import (
	"testing"
	"time"

	"github.com/edgeloop/edgeloop/pkg/project"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// TestChooseMode: an admin's request wins; otherwise every full_every-th training and the
// first training after the daily full_at slot are full (or scratch, as full_from says);
// the rest are left to the default (replay).
func TestChooseMode(t *testing.T) {
	now := time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)
	pol := project.RetrainPolicy{FullEvery: 5, FullAt: "02:30", FullFrom: "release"}
	slot := fullSlot(pol.FullAt, now)
	if want := time.Date(2026, 11, 29, 2, 30, 0, 0, time.UTC); !slot.Equal(want) {
		t.Fatalf("slot %v, want %v", slot, want)
	}
	if early := fullSlot("04:00", now); !early.Equal(time.Date(2026, 11, 28, 4, 0, 0, 0, time.UTC)) {
		t.Fatalf("a slot later today: %v, want yesterday's", early)
	}
	if !fullSlot("", now).IsZero() {
		t.Fatal("no full_at, yet a slot")
	}
	afterSlot := now.Add(-10 * time.Minute)
	for _, c := range []struct {
		name string
		st   State
		pol  project.RetrainPolicy
		want string
	}{
		{"asked for scratch", State{Mode: ModeScratch, LastFull: afterSlot}, pol, ModeScratch},
		{"fifth training", State{SinceFull: 4, LastFull: afterSlot}, pol, ModeFull},
		{"third training", State{SinceFull: 2, LastFull: afterSlot}, pol, ""},
		{"nightly slot passed", State{SinceFull: 1, LastFull: slot.Add(-time.Hour)}, pol, ModeFull},
		{"nightly from scratch", State{LastFull: slot.Add(-time.Hour)}, project.RetrainPolicy{FullAt: "02:30", FullFrom: "scratch"}, ModeScratch},
		{"no full policy", State{SinceFull: 100}, project.RetrainPolicy{FullFrom: "release"}, ""},
	} {
		if got := chooseMode(c.pol, &c.st, fullSlot(c.pol.FullAt, now)); got != c.want {
			t.Errorf("%s: mode %q, want %q", c.name, got, c.want)
		}
	}
	for id, want := range map[string]string{"manual-1": "", "manual-full-2": ModeFull, "manual-scratch-3": ModeScratch, "batch-7": ""} {
		if got := ManualMode(&edgeloopv1.BatchApproved{BatchId: id}); got != want {
			t.Errorf("ManualMode(%s) = %q, want %q", id, got, want)
		}
	}
}
