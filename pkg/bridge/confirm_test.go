package bridge

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

func TestExampleIDReadsOnlyTheID(t *testing.T) {
	b, _ := proto.Marshal(&edgeloopv1.Example{Project: "p", Device: "d", Id: "ex-1",
		Image: &edgeloopv1.Image{Data: make([]byte, 5000)}, CapturedAt: timestamppb.Now()})
	for _, c := range []struct {
		name    string
		payload []byte
		want    string
	}{
		{"example", b, "ex-1"},
		{"no id", func() []byte { b, _ := proto.Marshal(&edgeloopv1.Example{Project: "p"}); return b }(), ""},
		{"junk", []byte("\xff\xff\xff junk"), ""},
		{"truncated", b[:len(b)/2], "ex-1"},
		{"empty", nil, ""},
	} {
		if got := exampleID(c.payload); got != c.want {
			t.Errorf("%s: exampleID = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestReleaseClockNeverGoesBack(t *testing.T) {
	t0 := time.Now()
	rel := func(v int64, d time.Duration, rollback bool) *edgeloopv1.ModelRelease {
		return &edgeloopv1.ModelRelease{Project: "p", Version: v, Rollback: rollback, ReleasedAt: timestamppb.New(t0.Add(d))}
	}
	var c releaseClock
	steps := []struct {
		rel   *edgeloopv1.ModelRelease
		stale bool
	}{
		{rel(5, 2*time.Second, false), false},
		{rel(4, time.Second, false), true},   // set earlier, arrived later
		{rel(2, 3*time.Second, true), false}, // a rollback is a newer release
		{rel(6, 2500*time.Millisecond, false), true},
		{rel(2, 3*time.Second, true), false},                        // the same release again is harmless
		{&edgeloopv1.ModelRelease{Project: "p", Version: 1}, false}, // no time: an older producer
		{&edgeloopv1.ModelRelease{Project: "q", Version: 1, ReleasedAt: timestamppb.New(t0)}, false},
	}
	for i, s := range steps {
		if got := c.stale(s.rel); got != s.stale {
			t.Fatalf("step %d (v%d): stale = %v, want %v", i, s.rel.GetVersion(), got, s.stale)
		}
		if !s.stale {
			c.saw(s.rel)
		}
	}
}
