package bridge

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
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
		// A site release has its device's topic and clock: older than the project's
		// newest release, it is not stale; an older one of the same site is.
		{&edgeloopv1.ModelRelease{Project: "p", Site: "cam-1", Version: 7, ReleasedAt: timestamppb.New(t0.Add(time.Second))}, false},
		{&edgeloopv1.ModelRelease{Project: "p", Site: "cam-1", Version: 6, ReleasedAt: timestamppb.New(t0)}, true},
		{&edgeloopv1.ModelRelease{Project: "p", Site: "cam-2", Version: 6, ReleasedAt: timestamppb.New(t0)}, false},
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

// TestConfirmerBatchesWhileAPublishIsInFlight checks that a lone confirmation goes out at
// once, that the ids of a device arriving while its publish is in flight go together
// in the next one, that another device is not held up meanwhile, and that stopping
// publishes everything queued.
func TestConfirmerBatchesWhileAPublishIsInFlight(t *testing.T) {
	c := newConfirmer(prometheus.NewRegistry(), zap.NewNop())
	type sent struct {
		topic string
		ids   []string
	}
	published := make(chan sent, 16)
	release := make(chan struct{})
	c.publish = func(_ context.Context, topic string, payload []byte) error {
		ack := &edgeloopv1.ExampleAck{}
		if err := proto.Unmarshal(payload, ack); err != nil {
			t.Error(err)
		}
		published <- sent{topic, ack.Ids}
		if topic == "a" {
			<-release
		}
		return nil
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() { defer close(stopped); c.run(context.Background(), stop) }()
	next := func() sent {
		select {
		case s := <-published:
			return s
		case <-time.After(5 * time.Second):
			t.Fatal("no confirmation published")
			return sent{}
		}
	}
	c.in <- confirmation{topic: "a", id: "1"}
	if s := next(); s.topic != "a" || fmt.Sprint(s.ids) != "[1]" {
		t.Fatalf("first publish %v, want a [1] at once", s)
	}
	for _, id := range []string{"2", "3", "4"} {
		c.in <- confirmation{topic: "a", id: id}
	}
	c.in <- confirmation{topic: "b", id: "x"}
	if s := next(); s.topic != "b" || fmt.Sprint(s.ids) != "[x]" {
		t.Fatalf("publish %v, want b [x] while a's publish is in flight", s)
	}
	for len(c.in) > 0 {
		time.Sleep(time.Millisecond)
	}
	release <- struct{}{}
	if s := next(); s.topic != "a" || fmt.Sprint(s.ids) != "[2 3 4]" {
		t.Fatalf("publish %v, want a [2 3 4] together", s)
	}
	c.in <- confirmation{topic: "a", id: "5"}
	close(stop)
	release <- struct{}{}
	if s := next(); s.topic != "a" || fmt.Sprint(s.ids) != "[5]" {
		t.Fatalf("publish %v, want a [5] flushed at stop", s)
	}
	release <- struct{}{}
	<-stopped
}

// TestReleaseTopics: a project's release is retained on its project's topic, a site
// release on its device's.
func TestReleaseTopics(t *testing.T) {
	if got := releaseTopic(&edgeloopv1.ModelRelease{Project: "p"}); got != "edgeloop/v1/p/release" {
		t.Fatalf("project release on %q", got)
	}
	if got := releaseTopic(&edgeloopv1.ModelRelease{Project: "p", Site: "cam-1"}); got != "edgeloop/v1/p/cam-1/release" {
		t.Fatalf("site release on %q", got)
	}
}
