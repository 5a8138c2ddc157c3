package registry

import (
	"context"
	"crypto/ed25519"
	"errors"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/artifact"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/objstore/memstore"
)

func putVersion(t *testing.T, r *Registry, v int64, key ed25519.PrivateKey) {
	t.Helper()
	a := nn.ClassifierArch(2)
	p, err := nn.InitParams(a, uint64(v))
	if err != nil {
		t.Fatal(err)
	}
	b, err := artifact.Encode(&artifact.Model{Header: artifact.Header{Arch: a, Classes: []string{"a", "b"}, Project: "p", Version: v}, Params: p})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Put(context.Background(), &Version{Project: "p", Version: v}, b, nil, nil, key, Fence{}); err != nil {
		t.Fatal(err)
	}
}

// TestReleasesCarrySignedManifests: every release change is a manifest signed with the
// registry's key; an admin's rollback is a signed rollback naming the version it leaves,
// with a higher sequence than the release it replaces.
func TestReleasesCarrySignedManifests(t *testing.T) {
	pub, key, _ := artifact.GenerateKey()
	r := New(memstore.New(), nil, kafkabus.Config{}, "http://registry")
	ctx := context.Background()
	putVersion(t, r, 1, key)
	putVersion(t, r, 2, key)
	if _, err := r.SetRelease(ctx, "p", 1, "bootstrap", "t", false); !errors.Is(err, ErrNoKey) {
		t.Fatalf("a release without a signing key: %v", err)
	}
	r.Key = key
	// Without a producer the announcement fails; the release itself is recorded.
	for _, c := range []struct {
		v        int64
		rollback bool
	}{{1, false}, {2, false}, {1, true}} {
		if _, err := r.SetRelease(ctx, "p", c.v, "x", "t", c.rollback); err == nil || errors.Is(err, ErrNoKey) {
			t.Fatalf("v%d: %v, want only the announcement to fail", c.v, err)
		}
	}
	rel, err := r.Current(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if rel.ManifestKeyID != artifact.KeyID(pub) {
		t.Fatalf("manifest key %q, want %q", rel.ManifestKeyID, artifact.KeyID(pub))
	}
	m, err := artifact.VerifyManifest(pub, rel.Manifest, rel.ManifestSig)
	if err != nil {
		t.Fatal(err)
	}
	v1, _ := r.Version(ctx, "p", 1)
	if m.Project != "p" || m.Version != 1 || !m.Rollback || m.PreviousVersion != 2 || m.Seq != 3 || m.SHA256 != v1.SHA256 ||
		m.SizeBytes != v1.SizeBytes || m.Created.IsZero() {
		t.Fatalf("rollback manifest %+v", m)
	}
}

// TestCorruptManifestsHideOnlyThemselves: a version manifest or site release that does
// not decode is passed over by Versions and SiteReleases (and reported), and the next
// version number still counts it, so a new version never lands in its folder.
func TestCorruptManifestsHideOnlyThemselves(t *testing.T) {
	ctx := context.Background()
	_, key, _ := artifact.GenerateKey()
	r := New(memstore.New(), nil, kafkabus.Config{}, "http://registry")
	var corrupt []string
	r.Corrupt = func(k string, err error) {
		if !errors.Is(err, objstore.ErrCorrupt) {
			t.Errorf("%s reported with %v", k, err)
		}
		corrupt = append(corrupt, k)
	}
	putVersion(t, r, 1, key)
	putVersion(t, r, 2, key)
	for _, k := range []string{versionPrefix("p", 2) + "version.json", siteReleaseKey("p", "cam-9")} {
		if _, err := r.S.Put(ctx, k, []byte("{truncated"), objstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	vs, err := r.Versions(ctx, "p")
	if err != nil || len(vs) != 1 || vs[0].Version != 1 {
		t.Fatalf("versions with v2 corrupt: %v, %v", vs, err)
	}
	if next, err := r.NextVersion(ctx, "p"); err != nil || next != 3 {
		t.Fatalf("next version with v2 corrupt: %d, %v; want 3", next, err)
	}
	if sites, err := r.SiteReleases(ctx, "p"); err != nil || len(sites) != 0 {
		t.Fatalf("site releases with cam-9's corrupt: %v, %v", sites, err)
	}
	if len(corrupt) != 2 {
		t.Fatalf("reported %v, want v2's manifest and cam-9's release", corrupt)
	}
	// A version folder without a manifest (a trainer killed before writing it) is reused.
	if _, err := r.S.Put(ctx, versionPrefix("p", 3)+"model-e1.elm", []byte("x"), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if next, err := r.NextVersion(ctx, "p"); err != nil || next != 3 {
		t.Fatalf("next version beside an unfinished v3: %d, %v; want 3", next, err)
	}
}
