package embedded_test

import (
	"context"
	"io"
	"net/http"
	"testing"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/embedded"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/objstore/s3store"
)

// TestS3NeedsCredentials: the embedded S3 server answers only requests signed with its
// credentials; an anonymous request or a wrong secret gets 403.
func TestS3NeedsCredentials(t *testing.T) {
	srv, err := embedded.Start(embedded.Config{Dir: t.TempDir(), S3AccessKey: "edgeloop", S3SecretKey: "edgeloop-secret"}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	ctx := context.Background()
	good, err := s3store.Open(ctx, s3store.Config{Endpoint: srv.S3Addr, Bucket: "edgeloop", AccessKey: "edgeloop", SecretKey: "edgeloop-secret"})
	if err != nil {
		t.Fatalf("open with the server's credentials: %v", err)
	}
	if _, err := good.Put(ctx, "projects/p/secret.json", []byte(`{"a":1}`), objstore.PutOptions{}); err != nil {
		t.Fatalf("put with the server's credentials: %v", err)
	}
	if o, err := good.Get(ctx, "projects/p/secret.json"); err != nil || string(o.Data) != `{"a":1}` {
		t.Fatalf("get with the server's credentials: %v", err)
	}
	for _, path := range []string{"/edgeloop/projects/p/secret.json", "/edgeloop/", "/"} {
		resp, err := http.Get("http://" + srv.S3Addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("anonymous GET %s: %d %.200s, want 403", path, resp.StatusCode, body)
		}
	}
	bad, err := s3store.Open(ctx, s3store.Config{Endpoint: srv.S3Addr, Bucket: "edgeloop", AccessKey: "edgeloop", SecretKey: "guessed"})
	if err == nil {
		if _, err = bad.Get(ctx, "projects/p/secret.json"); err == nil {
			t.Fatal("a wrong secret read an object")
		}
	}
	// Without credentials in its config, the server makes its own and says which.
	srv2, err := embedded.Start(embedded.Config{Dir: t.TempDir()}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv2.Close)
	if srv2.S3AccessKey == "" || len(srv2.S3SecretKey) < 16 {
		t.Fatalf("generated credentials %q/%q", srv2.S3AccessKey, srv2.S3SecretKey)
	}
	if _, err := s3store.Open(ctx, s3store.Config{Endpoint: srv2.S3Addr, Bucket: "generated", AccessKey: srv2.S3AccessKey, SecretKey: srv2.S3SecretKey}); err != nil {
		t.Fatalf("open with the generated credentials: %v", err)
	}
}
