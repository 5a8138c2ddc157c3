package objstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/objstore/memstore"
)

// countingStore counts the Gets that reach the store.
type countingStore struct {
	objstore.Store
	gets int
}

func (s *countingStore) Get(ctx context.Context, key string) (*objstore.Object, error) {
	s.gets++
	return s.Store.Get(ctx, key)
}

// TestListCacheReadsOnlyChangedObjects: a second ReadAll reads only the object that
// changed, sees the new one, forgets the deleted one, and never returns stale data.
func TestListCacheReadsOnlyChangedObjects(t *testing.T) {
	ctx := context.Background()
	s := &countingStore{Store: memstore.New()}
	for _, k := range []string{"b/1", "b/2", "b/3"} {
		if _, err := s.Put(ctx, k, []byte("v1-"+k), objstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var c objstore.ListCache
	read := func() string {
		var got []string
		if err := c.ReadAll(ctx, s, "b/", func(k string, data []byte) error {
			got = append(got, string(data))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(got)
	}
	if got := read(); got != "[v1-b/1 v1-b/2 v1-b/3]" || s.gets != 3 {
		t.Fatalf("first read: %s with %d gets", got, s.gets)
	}
	if got := read(); got != "[v1-b/1 v1-b/2 v1-b/3]" || s.gets != 3 {
		t.Fatalf("unchanged read: %s with %d gets, want no new get", got, s.gets)
	}
	if _, err := s.Put(ctx, "b/2", []byte("v2-b/2"), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "b/3"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "b/4", []byte("v1-b/4"), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "[v1-b/1 v2-b/2 v1-b/4]" || s.gets != 5 {
		t.Fatalf("after a change, a delete and an add: %s with %d gets, want 5", got, s.gets)
	}
	var none *objstore.ListCache // no cache: every object is read
	if err := none.ReadAll(ctx, s, "b/", func(string, []byte) error { return nil }); err != nil || s.gets != 8 {
		t.Fatalf("nil cache: %v, %d gets, want 8", err, s.gets)
	}
}
