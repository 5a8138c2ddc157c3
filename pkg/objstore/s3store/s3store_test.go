package s3store_test

import (
	"context"
	"testing"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/internal/servertest"
	"github.com/edgeloop/edgeloop/pkg/embedded"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/objstore/s3store"
	"github.com/edgeloop/edgeloop/pkg/objstore/storetest"
)

// TestConformanceMinIO runs the suite against a real MinIO.
func TestConformanceMinIO(t *testing.T) {
	storetest.Run(t, func(t *testing.T) objstore.Store {
		s, err := s3store.Open(context.Background(), servertest.S3(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestConformanceEmbedded runs the suite against the standalone's embedded S3 server.
func TestConformanceEmbedded(t *testing.T) {
	srv, err := embedded.Start(embedded.Config{Dir: t.TempDir()}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	storetest.Run(t, func(t *testing.T) objstore.Store {
		s, err := s3store.Open(context.Background(), s3store.Config{
			Endpoint: srv.S3Addr, Bucket: "t-" + servertest.RandomID(8), AccessKey: srv.S3AccessKey, SecretKey: srv.S3SecretKey,
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
