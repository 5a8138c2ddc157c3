package retrain

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/objstore/memstore"
	"github.com/edgeloop/edgeloop/pkg/project"
)

// TestTrainerStopsWhenItsLeaseIsTakenOver: once another trainer holds the project's
// lease (a higher epoch), the first one's fence refuses its writes and its renewal
// cancels its training with ErrLeaseLost.
func TestTrainerStopsWhenItsLeaseIsTakenOver(t *testing.T) {
	ctx := context.Background()
	mem := memstore.New()
	s := &Service{cfg: ServiceConfig{Owner: "r1", Lease: 200 * time.Millisecond}, cur: &project.Store{S: mem}, log: zap.NewNop()}
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
