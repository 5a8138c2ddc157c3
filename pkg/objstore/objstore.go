// Package objstore is edgeloop's portable object storage, after gocloud.dev's blob: one
// Store interface with an S3 driver (MinIO, any S3, the standalone's embedded server)
// and an in-memory driver, plus the three write disciplines of docs/architecture.md ("Object storage"):
// create-only puts, content-addressed puts and compare-and-swap on the ETag.
package objstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"go.uber.org/zap"
)

// ErrNotFound says the key does not exist.
var ErrNotFound = errors.New("object not found")

// ErrPrecondition says a conditional write lost: the object exists (create-only) or it
// changed since it was read (compare-and-swap).
var ErrPrecondition = errors.New("object precondition failed")

// ErrCorrupt says an object holds no valid document of its kind: it does not decode.
// Listings pass over such a document (reporting it to an OnCorrupt), so that one bad
// document hides only itself; reading it by its key is an error that wraps ErrCorrupt.
var ErrCorrupt = errors.New("corrupt document")

// OnCorrupt hears of each document a listing passed over because it is corrupt.
type OnCorrupt func(key string, err error)

// Report tells f of key's error; a nil OnCorrupt hears nothing.
func (f OnCorrupt) Report(key string, err error) {
	if f != nil {
		f(key, err)
	}
}

// Throttle returns an OnCorrupt that passes each key on to f at most once every d (a
// listing that runs every few seconds meets the same corrupt document each time). It
// is safe for concurrent use.
func (f OnCorrupt) Throttle(d time.Duration) OnCorrupt {
	var mu sync.Mutex
	last := map[string]time.Time{}
	return func(key string, err error) {
		mu.Lock()
		now := time.Now()
		due := now.Sub(last[key]) >= d
		if due {
			last[key] = now
		}
		mu.Unlock()
		if due {
			f.Report(key, err)
		}
	}
}

// LogCorrupt is the services' OnCorrupt: it logs each corrupt document at error level,
// at most once every 10 minutes per key, for an operator to repair or delete.
func LogCorrupt(log *zap.Logger) OnCorrupt {
	return OnCorrupt(func(key string, err error) {
		log.Error("corrupt document passed over: repair or delete it", zap.String("key", key), zap.Error(err))
	}).Throttle(10 * time.Minute)
}

// DecodeJSON decodes the JSON document data, read from key, into v; the error names
// key and wraps ErrCorrupt.
func DecodeJSON(key string, data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %s: %w: %w", key, ErrCorrupt, err)
	}
	return nil
}

// Object is a stored object with its ETag.
type Object struct {
	Data        []byte
	ETag        string
	ContentType string
}

// Info describes an object without its data.
type Info struct {
	Key          string
	Size         int64
	ETag         string
	LastModified time.Time
}

// PutOptions make a write conditional.
type PutOptions struct {
	ContentType string
	// IfNoneMatch makes the write create-only: it fails with ErrPrecondition when the
	// key exists.
	IfNoneMatch bool
	// IfMatch makes the write a compare-and-swap: it fails with ErrPrecondition unless
	// the object's current ETag equals IfMatch.
	IfMatch string
}

// Store is object storage. Every method is safe for concurrent use.
type Store interface {
	// Get reads a whole object.
	Get(ctx context.Context, key string) (*Object, error)
	// Open streams an object.
	Open(ctx context.Context, key string) (io.ReadCloser, Info, error)
	// Stat describes an object.
	Stat(ctx context.Context, key string) (Info, error)
	// Put writes data (its size is always known) and returns the new ETag.
	Put(ctx context.Context, key string, data []byte, o PutOptions) (string, error)
	// Delete removes an object; deleting a missing one is not an error.
	Delete(ctx context.Context, key string) error
	// List calls fn for every object under prefix, in key order.
	List(ctx context.Context, prefix string, fn func(Info) error) error
	// Dirs calls fn, in key order, with each folder directly under prefix: the distinct
	// key prefixes up to and including the next '/' ("projects/a/" for the objects
	// "projects/a/x" and "projects/a/y/z" under "projects/"). It reads one name per
	// folder, however many objects lie below it.
	Dirs(ctx context.Context, prefix string, fn func(dir string) error) error
}

// PutContent writes data content-addressed under prefix (prefix + hex sha256), once:
// a second write of the same bytes is a no-op. It returns the key and whether this call
// created it.
func PutContent(ctx context.Context, s Store, prefix string, data []byte, contentType string) (key string, created bool, err error) {
	sum := sha256.Sum256(data)
	key = prefix + hex.EncodeToString(sum[:])
	_, err = s.Put(ctx, key, data, PutOptions{ContentType: contentType, IfNoneMatch: true})
	switch {
	case err == nil:
		return key, true, nil
	case errors.Is(err, ErrPrecondition):
		return key, false, nil
	default:
		return "", false, err
	}
}

// GetJSON reads key into v and returns its ETag; a document that does not decode is an
// error wrapping ErrCorrupt.
func GetJSON(ctx context.Context, s Store, key string, v any) (string, error) {
	o, err := s.Get(ctx, key)
	if err != nil {
		return "", err
	}
	if err := DecodeJSON(key, o.Data, v); err != nil {
		return "", err
	}
	return o.ETag, nil
}

// PutJSON writes v as JSON at key under o's conditions.
func PutJSON(ctx context.Context, s Store, key string, v any, o PutOptions) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode %s: %w", key, err)
	}
	o.ContentType = "application/json"
	return s.Put(ctx, key, b, o)
}

// ErrNoChange, returned by an Update function, ends Update without writing.
var ErrNoChange = errors.New("no change")

// Update changes the JSON object at key by compare-and-swap: it reads the object (exists
// is false when there is none), calls fn to change it, and writes it back only if nobody
// else wrote in between, retrying with a fresh read when someone did. fn must have no
// side effects beyond *v: it can run several times. When fn returns ErrNoChange,
// Update writes nothing and returns (false, nil).
func Update[T any](ctx context.Context, s Store, key string, fn func(v *T, exists bool) error) (written bool, err error) {
	for attempt := 0; attempt < 100; attempt++ {
		var v T
		etag, err := GetJSON(ctx, s, key, &v)
		exists := err == nil
		if err != nil && !errors.Is(err, ErrNotFound) {
			return false, err
		}
		if err := fn(&v, exists); err != nil {
			if errors.Is(err, ErrNoChange) {
				return false, nil
			}
			return false, err
		}
		o := PutOptions{IfMatch: etag, IfNoneMatch: !exists}
		if _, err := PutJSON(ctx, s, key, &v, o); err != nil {
			if errors.Is(err, ErrPrecondition) {
				continue
			}
			return false, err
		}
		return true, nil
	}
	return false, fmt.Errorf("update %s: too much contention", key)
}
