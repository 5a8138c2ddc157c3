package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// TestForgedReleaseWritesNothingOutsideModels: a forged release whose sha256 field is a
// path must not make the agent write outside its models folder.
func TestForgedReleaseWritesNothingOutsideModels(t *testing.T) {
	f := newFixture(t)
	a := newAgent(t, f, nil)
	rel := f.release(1, modelFile(t, 1, 1))
	rel.Sha256 = "../../escaped"
	_ = a.Apply(context.Background(), rel)
	if _, err := os.Stat(filepath.Join(a.cfg.DataDir, "..", "escaped.part")); err == nil {
		t.Fatal("a forged release wrote escaped.part outside the models folder")
	}
}

// TestForgedReleaseURLGetsNoToken: a forged release pointing at another host must not
// receive the device token.
func TestForgedReleaseURLGetsNoToken(t *testing.T) {
	f := newFixture(t)
	a := newAgent(t, f, nil)
	var leaked atomic.Bool
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			leaked.Store(true)
		}
		http.NotFound(w, r)
	}))
	defer evil.Close()
	rel := f.release(1, modelFile(t, 1, 1))
	rel.ArtifactUrl = evil.URL + "/steal"
	_ = a.Apply(context.Background(), rel)
	if leaked.Load() {
		t.Fatal("the device token was sent to a host named by the release message")
	}
}

// TestRollbackReplayRefused: after v2, replaying v1's signed artifact with rollback=true
// (an old model, a forged flag) must not take the agent back to v1.
func TestRollbackReplayRefused(t *testing.T) {
	f := newFixture(t)
	a := newAgent(t, f, nil)
	ctx := context.Background()
	v1 := f.release(1, modelFile(t, 1, 1))
	if err := a.Apply(ctx, v1); err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(ctx, f.release(2, modelFile(t, 2, 2))); err != nil {
		t.Fatal(err)
	}
	v1.Rollback = true // the flag of the message is not signed
	if err := a.Apply(ctx, v1); err == nil || a.ModelVersion() != 2 {
		t.Fatalf("replayed v1 as a rollback: err %v, running v%d", err, a.ModelVersion())
	}
}
