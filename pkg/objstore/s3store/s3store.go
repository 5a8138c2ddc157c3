// Package s3store is the S3 driver of objstore, on minio-go: MinIO in production and in
// tests, any S3-compatible service, and the standalone's embedded server.
package s3store

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/objstore"
)

// Config says how to reach the bucket.
type Config struct {
	// Endpoint is host:port, without scheme.
	Endpoint string
	// Bucket is created when missing.
	Bucket string
	// AccessKey and SecretKey are the credentials.
	AccessKey, SecretKey string
	// Region is the bucket's region (default us-east-1).
	Region string
	// TLS switches to HTTPS; nil means plain HTTP.
	TLS *config.TLS
}

// RegisterFlags adds the -s3-* flags to fs.
func RegisterFlags(fs *flag.FlagSet) *Config {
	c := &Config{}
	fs.StringVar(&c.Endpoint, "s3-endpoint", "127.0.0.1:9000", "S3 endpoint host:port")
	fs.StringVar(&c.Bucket, "s3-bucket", "edgeloop", "S3 bucket")
	fs.StringVar(&c.AccessKey, "s3-access-key", "edgeloop", "S3 access key")
	fs.StringVar(&c.SecretKey, "s3-secret-key", "edgeloop-secret", "S3 secret key")
	fs.StringVar(&c.Region, "s3-region", "us-east-1", "S3 region")
	c.TLS = config.RegisterTLS(fs, "s3")
	return c
}

// Store is an objstore.Store on one S3 bucket.
type Store struct {
	c      *minio.Client
	bucket string
}

var _ objstore.Store = (*Store)(nil)

// Open connects to the bucket and creates it when missing.
func Open(ctx context.Context, c Config) (*Store, error) {
	tlsCfg, err := c.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	tr, err := minio.DefaultTransport(tlsCfg != nil)
	if err != nil {
		return nil, fmt.Errorf("s3 transport: %w", err)
	}
	if tlsCfg != nil {
		tr.TLSClientConfig = tlsCfg
	}
	tr.MaxIdleConnsPerHost = 64
	region := c.Region
	if region == "" {
		region = "us-east-1"
	}
	mc, err := minio.New(c.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(c.AccessKey, c.SecretKey, ""),
		Secure:       tlsCfg != nil,
		Region:       region,
		Transport:    tr,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 client for %s: %w", c.Endpoint, err)
	}
	s := &Store{c: mc, bucket: c.Bucket}
	if err := s.ensureBucket(ctx, region); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) ensureBucket(ctx context.Context, region string) error {
	ok, err := s.c.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("s3 bucket %s: %w", s.bucket, err)
	}
	if ok {
		return nil
	}
	if err := s.c.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: region}); err != nil {
		code := minio.ToErrorResponse(err).Code
		if code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
			return fmt.Errorf("s3 create bucket %s: %w", s.bucket, err)
		}
	}
	return nil
}

func mapErr(op, key string, err error) error {
	code := minio.ToErrorResponse(err).Code
	if op == "put" && code == minio.NoSuchKey {
		// A compare-and-swap on a key that is gone: S3 answers 404, not 412.
		return fmt.Errorf("s3 %s %s: %w", op, key, objstore.ErrPrecondition)
	}
	switch code {
	case minio.NoSuchKey, "NotFound":
		return fmt.Errorf("s3 %s %s: %w", op, key, objstore.ErrNotFound)
	case minio.PreconditionFailed:
		return fmt.Errorf("s3 %s %s: %w", op, key, objstore.ErrPrecondition)
	}
	if minio.ToErrorResponse(err).StatusCode == http.StatusNotFound {
		return fmt.Errorf("s3 %s %s: %w", op, key, objstore.ErrNotFound)
	}
	return fmt.Errorf("s3 %s %s: %w", op, key, err)
}

func unquote(etag string) string { return strings.Trim(etag, `"`) }

// Get implements objstore.Store.
func (s *Store) Get(ctx context.Context, key string) (*objstore.Object, error) {
	rc, info, err := s.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, mapErr("get", key, err)
	}
	return &objstore.Object{Data: data, ETag: info.ETag}, nil
}

// Open implements objstore.Store.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, objstore.Info, error) {
	// One GET request: minio-go's lazy Object would re-read with If-Match and fail
	// when a compare-and-swap writer replaced the object in between.
	rc, st, _, err := minio.Core{Client: s.c}.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, objstore.Info{}, mapErr("get", key, err)
	}
	st.Key = key
	return rc, info(st), nil
}

func info(st minio.ObjectInfo) objstore.Info {
	return objstore.Info{Key: st.Key, Size: st.Size, ETag: unquote(st.ETag), LastModified: st.LastModified}
}

// Stat implements objstore.Store.
func (s *Store) Stat(ctx context.Context, key string) (objstore.Info, error) {
	st, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return objstore.Info{}, mapErr("stat", key, err)
	}
	return info(st), nil
}

// Put implements objstore.Store. The size is always passed, so minio-go never buffers
// for an unknown length, and objects up to 64 MiB go in one conditional PUT.
func (s *Store) Put(ctx context.Context, key string, data []byte, o objstore.PutOptions) (string, error) {
	// The body's MD5 (which the server checks) instead of minio-go's streaming SigV4 on
	// plain HTTP, which signs every chunk and costs both sides more than the write of a
	// small object; over HTTPS minio-go sends no payload hash either.
	opts := minio.PutObjectOptions{ContentType: o.ContentType, DisableMultipart: true, SendContentMd5: true, DisableContentSha256: true}
	if opts.ContentType == "" {
		opts.ContentType = "application/octet-stream"
	}
	if o.IfNoneMatch {
		opts.SetMatchETagExcept("*")
	}
	if o.IfMatch != "" {
		opts.SetMatchETag(o.IfMatch)
	}
	if len(data) > 64<<20 {
		return "", fmt.Errorf("s3 put %s: %d bytes is over the 64 MiB single-put limit", key, len(data))
	}
	up, err := s.c.PutObject(ctx, s.bucket, key, bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		return "", mapErr("put", key, err)
	}
	return unquote(up.ETag), nil
}

// Delete implements objstore.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		err = mapErr("delete", key, err)
		if errors.Is(err, objstore.ErrNotFound) {
			return nil
		}
		return err
	}
	return nil
}

// List implements objstore.Store.
func (s *Store) List(ctx context.Context, prefix string, fn func(objstore.Info) error) error {
	return s.each(ctx, "list", minio.ListObjectsOptions{Prefix: prefix, Recursive: true}, func(o minio.ObjectInfo) error {
		return fn(info(o))
	})
}

// Dirs implements objstore.Store with a delimited listing: S3 answers one common prefix
// per folder.
func (s *Store) Dirs(ctx context.Context, prefix string, fn func(string) error) error {
	return s.each(ctx, "list folders", minio.ListObjectsOptions{Prefix: prefix}, func(o minio.ObjectInfo) error {
		if !strings.HasSuffix(o.Key, "/") || o.Key == prefix {
			return nil // an object directly under prefix, or prefix's own folder marker
		}
		return fn(o.Key)
	})
}

// each calls fn with every entry of the listing o asks for, stopping at fn's first error.
func (s *Store) each(ctx context.Context, op string, o minio.ListObjectsOptions, fn func(minio.ObjectInfo) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for e := range s.c.ListObjects(ctx, s.bucket, o) {
		if e.Err != nil {
			return mapErr(op, o.Prefix, e.Err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return ctx.Err() // minio-go ends a cancelled listing without an error: it is not whole
}

// Ping checks that the bucket answers, for readiness probes.
func (s *Store) Ping(ctx context.Context) error {
	if _, err := s.c.BucketExists(ctx, s.bucket); err != nil {
		return fmt.Errorf("s3 bucket %s: %w", s.bucket, err)
	}
	return nil
}
