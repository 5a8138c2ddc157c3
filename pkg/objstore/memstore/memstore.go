// Package memstore is the in-memory driver of objstore, for tests and throwaway runs. It
// implements the same conditional-write semantics as S3.
package memstore

import (
	"bytes"
	"context"
	"crypto/md5" //nolint:gosec // S3 ETags are MD5 of the content; no security role
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/edgeloop/edgeloop/pkg/objstore"
)

// Store is an objstore.Store in memory.
type Store struct {
	mu   sync.RWMutex
	objs map[string]entry
}

type entry struct {
	data []byte
	etag string
	ct   string
	mod  time.Time
}

var _ objstore.Store = (*Store)(nil)

// New returns an empty Store.
func New() *Store { return &Store{objs: map[string]entry{}} }

// Get implements objstore.Store.
func (s *Store) Get(_ context.Context, key string) (*objstore.Object, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.objs[key]
	if !ok {
		return nil, fmt.Errorf("get %s: %w", key, objstore.ErrNotFound)
	}
	return &objstore.Object{Data: bytes.Clone(e.data), ETag: e.etag, ContentType: e.ct}, nil
}

// Open implements objstore.Store.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, objstore.Info, error) {
	o, err := s.Get(ctx, key)
	if err != nil {
		return nil, objstore.Info{}, err
	}
	st, err := s.Stat(ctx, key)
	return io.NopCloser(bytes.NewReader(o.Data)), st, err
}

// Stat implements objstore.Store.
func (s *Store) Stat(_ context.Context, key string) (objstore.Info, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.objs[key]
	if !ok {
		return objstore.Info{}, fmt.Errorf("stat %s: %w", key, objstore.ErrNotFound)
	}
	return objstore.Info{Key: key, Size: int64(len(e.data)), ETag: e.etag, LastModified: e.mod}, nil
}

// Put implements objstore.Store.
func (s *Store) Put(_ context.Context, key string, data []byte, o objstore.PutOptions) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, exists := s.objs[key]
	if o.IfNoneMatch && exists {
		return "", fmt.Errorf("put %s: exists: %w", key, objstore.ErrPrecondition)
	}
	if o.IfMatch != "" && (!exists || cur.etag != o.IfMatch) {
		return "", fmt.Errorf("put %s: etag changed: %w", key, objstore.ErrPrecondition)
	}
	sum := md5.Sum(data) //nolint:gosec // S3-compatible ETag
	e := entry{data: bytes.Clone(data), etag: hex.EncodeToString(sum[:]), ct: o.ContentType, mod: time.Now()}
	s.objs[key] = e
	return e.etag, nil
}

// Delete implements objstore.Store.
func (s *Store) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.objs, key)
	return nil
}

// Dirs implements objstore.Store.
func (s *Store) Dirs(ctx context.Context, prefix string, fn func(string) error) error {
	s.mu.RLock()
	seen := map[string]bool{}
	for k := range s.objs {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				seen[prefix+rest[:i+1]] = true
			}
		}
	}
	s.mu.RUnlock()
	for _, d := range slices.Sorted(maps.Keys(seen)) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(d); err != nil {
			return err
		}
	}
	return nil
}

// List implements objstore.Store.
func (s *Store) List(ctx context.Context, prefix string, fn func(objstore.Info) error) error {
	s.mu.RLock()
	var infos []objstore.Info
	for k, e := range s.objs {
		if strings.HasPrefix(k, prefix) {
			infos = append(infos, objstore.Info{Key: k, Size: int64(len(e.data)), ETag: e.etag, LastModified: e.mod})
		}
	}
	s.mu.RUnlock()
	sort.Slice(infos, func(i, j int) bool { return infos[i].Key < infos[j].Key })
	for _, in := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(in); err != nil {
			return err
		}
	}
	return nil
}
