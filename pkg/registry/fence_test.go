package registry

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/artifact"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/objstore/memstore"
)

// beforeFirstPut runs hook once, before the first write under prefix.
type beforeFirstPut struct {
	objstore.Store
	prefix string
	once   sync.Once
	hook   func()
}

func (s *beforeFirstPut) Put(ctx context.Context, key string, data []byte, o objstore.PutOptions) (string, error) {
	if strings.HasPrefix(key, s.prefix) {
		s.once.Do(s.hook)
	}
	return s.Store.Put(ctx, key, data, o)
}

func modelBytes(t *testing.T, v int64, seed uint64) []byte {
	t.Helper()
	a := nn.ClassifierArch(2)
	p, err := nn.InitParams(a, seed)
	if err != nil {
		t.Fatal(err)
	}
	b, err := artifact.Encode(&artifact.Model{Header: artifact.Header{Arch: a, Classes: []string{"a", "b"}, Project: "p", Version: v}, Params: p})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRacingTrainersNeverOverwriteTheWinner: two trainers store the same next version;
// the one that loses (its manifest is second) must not overwrite the winner's model.
func TestRacingTrainersNeverOverwriteTheWinner(t *testing.T) {
	_, key, _ := artifact.GenerateKey()
	ctx := context.Background()
	mem := memstore.New()
	winner, loser := modelBytes(t, 1, 1), modelBytes(t, 1, 2)
	var winErr error
	st := &beforeFirstPut{Store: mem, prefix: "projects/p/models/v1/"}
	r := New(st, nil, kafkabus.Config{}, "")
	// The loser has checked that v1 is free; the winner stores v1 completely before the
	// loser's first write.
	st.hook = func() {
		winErr = New(mem, nil, kafkabus.Config{}, "").Put(ctx, &Version{Project: "p", Version: 1}, winner, nil, nil, key, Fence{Token: 1})
	}
	err := r.Put(ctx, &Version{Project: "p", Version: 1}, loser, nil, nil, key, Fence{Token: 2})
	if winErr != nil {
		t.Fatal(winErr)
	}
	if !errors.Is(err, ErrVersionTaken) {
		t.Fatalf("the loser's Put: %v, want ErrVersionTaken", err)
	}
	got, err := r.File(ctx, "p", 1, "model.elm")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, winner) {
		t.Fatal("v1's model is the loser's: the losing trainer overwrote the winner's artifact")
	}
	v, _ := r.Version(ctx, "p", 1)
	if v.SHA256 != artifact.SHA256(winner) || artifact.Verify(key.Public().(ed25519.PublicKey), got, v.SHA256, v.Signature) != nil {
		t.Fatal("v1's manifest does not describe its model")
	}
}

// TestFencedPutWritesNothingOnceTheLeaseIsLost: a writer whose fence fails (its lease
// was taken over) writes nothing.
func TestFencedPutWritesNothingOnceTheLeaseIsLost(t *testing.T) {
	_, key, _ := artifact.GenerateKey()
	ctx := context.Background()
	mem := memstore.New()
	r := New(mem, nil, kafkabus.Config{}, "")
	lost := errors.New("lease lost")
	err := r.Put(ctx, &Version{Project: "p", Version: 1}, modelBytes(t, 1, 1), []byte("{}"), nil, key,
		Fence{Token: 3, Check: func(context.Context) error { return lost }})
	if !errors.Is(err, lost) {
		t.Fatalf("fenced Put: %v, want the fence's error", err)
	}
	n := 0
	_ = mem.List(ctx, "projects/p/", func(objstore.Info) error { n++; return nil })
	if n != 0 {
		t.Fatalf("a fenced-off writer wrote %d objects", n)
	}
}
