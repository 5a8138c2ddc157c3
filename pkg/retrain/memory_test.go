package retrain

// Retrain logic on the memory store and the disk, no server: the image cache, the
// training lease's fence, the choice of training mode.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/internal/fixture"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/objstore/memstore"
	"github.com/edgeloop/edgeloop/pkg/project"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// TestImageCacheRepairsTruncatedFiles: a cache file cut short (a trainer killed while
// writing it) is detected by its content hash and fetched again, instead of skipping
// its example in every later training; cache writes leave no partial file behind.
func TestImageCacheRepairsTruncatedFiles(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	data := fixture.PNG(28, 28)
	key, _, err := objstore.PutContent(ctx, st, "projects/p/images/", data, "image/png")
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{cfg: ServiceConfig{CacheDir: t.TempDir()}, cur: &project.Store{S: st}, log: zap.NewNop()}
	cache := filepath.Join(s.cfg.CacheDir, "images", filepath.Base(key))
	if err := os.MkdirAll(filepath.Dir(cache), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cache, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	im, err := s.image(ctx, key, 1)
	if err != nil || im.W != 28 || im.H != 28 {
		t.Fatalf("image with a truncated cache file: %v", err)
	}
	if got, _ := os.ReadFile(cache); len(got) != len(data) {
		t.Fatalf("cache file holds %d bytes after the refetch, want %d", len(got), len(data))
	}
	entries, _ := os.ReadDir(filepath.Dir(cache))
	if len(entries) != 1 {
		t.Fatalf("cache dir holds %d files, want only the image", len(entries))
	}
}

// TestTrainerStopsWhenItsLeaseIsTakenOver: once another trainer holds the project's
// lease (a higher epoch), the first one's fence refuses its writes and its renewal
// cancels its training with ErrLeaseLost.
func TestTrainerStopsWhenItsLeaseIsTakenOver(t *testing.T) {
	ctx := context.Background()
	mem := memstore.New()
	s := &Service{cfg: ServiceConfig{Owner: "r1", Lease: 200 * time.Millisecond}, cur: &project.Store{S: mem}, log: zap.NewNop(), now: time.Now}
	mine := &Lease{Owner: "r1", Epoch: 1, Until: time.Now().Add(time.Minute)}
	if _, err := objstore.PutJSON(ctx, mem, stateKey("p"), &State{Epoch: 1, Running: mine}, objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.checkLease(ctx, "p", mine); err != nil {
		t.Fatalf("fence while holding the lease: %v", err)
	}
	tctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go s.renew(tctx, "p", mine, cancel)
	time.Sleep(120 * time.Millisecond) // renewed at least once meanwhile
	if tctx.Err() != nil {
		t.Fatalf("training cancelled while the lease was held: %v", context.Cause(tctx))
	}
	// r1 stalled past its lease; r2 took the project over.
	if _, err := objstore.Update(ctx, mem, stateKey("p"), func(st *State, _ bool) error {
		st.Epoch++
		st.Running = &Lease{Owner: "r2", Epoch: st.Epoch, Until: time.Now().Add(time.Minute)}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.checkLease(ctx, "p", mine); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("fence after the takeover: %v, want ErrLeaseLost", err)
	}
	select {
	case <-tctx.Done():
		if !errors.Is(context.Cause(tctx), ErrLeaseLost) {
			t.Fatalf("training cancelled by %v, want ErrLeaseLost", context.Cause(tctx))
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the training goes on after its lease was taken over")
	}
	// The same owner with a stale epoch (it restarted and reclaimed) is fenced off too.
	if err := s.checkLease(ctx, "p", &Lease{Owner: "r2", Epoch: 1}); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("stale epoch: %v", err)
	}
}

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
