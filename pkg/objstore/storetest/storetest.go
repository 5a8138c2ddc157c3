// Package storetest is the conformance suite every objstore driver passes: the same
// behaviour, including conditional writes under contention, from memory to MinIO.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/objstore"
)

// Run runs the suite on the store newStore returns (empty, private to the test).
func Run(t *testing.T, newStore func(t *testing.T) objstore.Store) {
	ctx := context.Background()
	t.Run("GetMissing", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Get(ctx, "nope"); !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("Get missing: got %v, want ErrNotFound", err)
		}
		if _, err := s.Stat(ctx, "nope"); !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("Stat missing: got %v, want ErrNotFound", err)
		}
		if err := s.Delete(ctx, "nope"); err != nil {
			t.Fatalf("Delete missing: %v", err)
		}
	})
	t.Run("PutGetList", func(t *testing.T) {
		s := newStore(t)
		for _, k := range []string{"p/b", "p/a", "q/c"} {
			if _, err := s.Put(ctx, k, []byte("v-"+k), objstore.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		o, err := s.Get(ctx, "p/a")
		if err != nil || string(o.Data) != "v-p/a" || o.ETag == "" {
			t.Fatalf("Get: %+v %v", o, err)
		}
		var keys []string
		if err := s.List(ctx, "p/", func(i objstore.Info) error {
			keys = append(keys, i.Key)
			if i.Key == "p/a" && i.ETag != o.ETag {
				// ListCache saves a Get only when a listing's ETag is the one a Get returns.
				return fmt.Errorf("listed ETag %q, Get's %q", i.ETag, o.ETag)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(keys) != "[p/a p/b]" {
			t.Fatalf("List p/: %v", keys)
		}
	})
	t.Run("Dirs", func(t *testing.T) {
		s := newStore(t)
		for _, k := range []string{"p/b/1", "p/a/x/2", "p/a/3", "p/c", "q/d/4"} {
			if _, err := s.Put(ctx, k, []byte("v"), objstore.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		var dirs []string
		if err := s.Dirs(ctx, "p/", func(d string) error { dirs = append(dirs, d); return nil }); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(dirs) != "[p/a/ p/b/]" {
			t.Fatalf("Dirs p/: %v, want [p/a/ p/b/]", dirs)
		}
		dirs = nil
		if err := s.Dirs(ctx, "", func(d string) error { dirs = append(dirs, d); return nil }); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(dirs) != "[p/ q/]" {
			t.Fatalf("Dirs of the whole store: %v, want [p/ q/]", dirs)
		}
	})
	t.Run("CreateOnly", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Put(ctx, "k", []byte("1"), objstore.PutOptions{IfNoneMatch: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(ctx, "k", []byte("2"), objstore.PutOptions{IfNoneMatch: true}); !errors.Is(err, objstore.ErrPrecondition) {
			t.Fatalf("second create: got %v, want ErrPrecondition", err)
		}
		o, _ := s.Get(ctx, "k")
		if string(o.Data) != "1" {
			t.Fatalf("create-only overwrote: %q", o.Data)
		}
	})
	t.Run("CompareAndSwap", func(t *testing.T) {
		s := newStore(t)
		e1, err := s.Put(ctx, "k", []byte("1"), objstore.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		e2, err := s.Put(ctx, "k", []byte("2"), objstore.PutOptions{IfMatch: e1})
		if err != nil {
			t.Fatalf("CAS with current etag: %v", err)
		}
		if _, err := s.Put(ctx, "k", []byte("3"), objstore.PutOptions{IfMatch: e1}); !errors.Is(err, objstore.ErrPrecondition) {
			t.Fatalf("CAS with stale etag: got %v, want ErrPrecondition", err)
		}
		if _, err := s.Put(ctx, "missing", []byte("3"), objstore.PutOptions{IfMatch: e2}); !errors.Is(err, objstore.ErrPrecondition) {
			t.Fatalf("CAS on missing key: got %v, want ErrPrecondition", err)
		}
	})
	t.Run("PutContentOnce", func(t *testing.T) {
		s := newStore(t)
		k1, created1, err := objstore.PutContent(ctx, s, "img/", []byte("pixels"), "image/png")
		if err != nil || !created1 {
			t.Fatalf("first: %v %v", created1, err)
		}
		k2, created2, err := objstore.PutContent(ctx, s, "img/", []byte("pixels"), "image/png")
		if err != nil || created2 || k1 != k2 {
			t.Fatalf("second: %s %v %v", k2, created2, err)
		}
	})
	// Create-only writes racing for one key: exactly one wins and its bytes stay (what a
	// version's files and manifest rely on when two trainers store the same version).
	t.Run("CreateOnlyUnderContention", func(t *testing.T) {
		s := newStore(t)
		const writers, keys = 6, 10
		var mu sync.Mutex
		won := map[string][]string{}
		var wg sync.WaitGroup
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := 0; k < keys; k++ {
					key, val := fmt.Sprintf("race/%d", k), fmt.Sprintf("writer-%d", w)
					_, err := s.Put(ctx, key, []byte(val), objstore.PutOptions{IfNoneMatch: true})
					switch {
					case err == nil:
						mu.Lock()
						won[key] = append(won[key], val)
						mu.Unlock()
					case !errors.Is(err, objstore.ErrPrecondition):
						t.Errorf("create %s: %v", key, err)
					}
				}
			}()
		}
		wg.Wait()
		for k := 0; k < keys; k++ {
			key := fmt.Sprintf("race/%d", k)
			o, err := s.Get(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if w := won[key]; len(w) != 1 || string(o.Data) != w[0] {
				t.Fatalf("%s: creates that succeeded %v, stored %q: want exactly one winner, stored", key, w, o.Data)
			}
		}
	})
	t.Run("UpdateUnderContention", func(t *testing.T) {
		s := newStore(t)
		type counter struct{ N int }
		const writers, each = 4, 10
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					if _, err := objstore.Update(ctx, s, "counter", func(c *counter, _ bool) error { c.N++; return nil }); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		var c counter
		if _, err := objstore.GetJSON(ctx, s, "counter", &c); err != nil {
			t.Fatal(err)
		}
		if c.N != writers*each {
			t.Fatalf("counter = %d, want %d: an update was lost", c.N, writers*each)
		}
	})
}
