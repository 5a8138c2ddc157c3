package objstore

import (
	"context"
	"errors"
	"sync"
)

// ListCache remembers the objects that ReadAll read, by key and ETag, so that reading
// the same prefix again fetches only the objects that changed since: a service that
// scans a prefix on every tick costs one listing, not one GET per object. The zero
// value is ready; it is safe for concurrent use. It holds the data of every object the
// last ReadAll of each prefix listed, for as long as it lives.
type ListCache struct {
	mu       sync.Mutex
	byPrefix map[string]map[string]cachedObject
}

type cachedObject struct {
	etag string
	data []byte
}

// ReadAll calls fn, in key order, with the data of every object under prefix. Objects
// whose listed ETag matches the one read last time come from memory; the others are
// read, and objects no longer listed are forgotten. fn must not modify data. A nil
// cache reads every object.
func (c *ListCache) ReadAll(ctx context.Context, s Store, prefix string, fn func(key string, data []byte) error) error {
	var old map[string]cachedObject
	if c != nil {
		c.mu.Lock()
		old = c.byPrefix[prefix]
		c.mu.Unlock()
	}
	now := make(map[string]cachedObject, len(old))
	err := s.List(ctx, prefix, func(i Info) error {
		o, ok := old[i.Key]
		if !ok || i.ETag == "" || o.etag != i.ETag {
			got, err := s.Get(ctx, i.Key)
			if errors.Is(err, ErrNotFound) {
				return nil // deleted since the listing
			}
			if err != nil {
				return err
			}
			o = cachedObject{etag: got.ETag, data: got.Data}
		}
		now[i.Key] = o
		return fn(i.Key, o.data)
	})
	if err != nil || c == nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byPrefix == nil {
		c.byPrefix = map[string]map[string]cachedObject{}
	}
	c.byPrefix[prefix] = now
	return nil
}
