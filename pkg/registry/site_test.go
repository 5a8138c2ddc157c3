package registry

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/artifact"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/objstore/memstore"
)

// TestSiteReleaseRules, on the memory store: a site's version is released to its site
// only (never as the project release, never to another site), only when adapted from
// the current project release; its manifest is signed with the site's own sequence
// and names its base; a newer project release supersedes it, and its re-adaptation is
// claimed once per project release; a revocation is a signed
// manifest with the next sequence; the overview merges both histories in time order.
func TestSiteReleaseRules(t *testing.T) {
	pub, key, _ := artifact.GenerateKey()
	r := New(memstore.New(), nil, kafkabus.Config{}, "http://registry")
	r.Key = key
	ctx := context.Background()
	put := func(v, parent int64, site string) {
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
		if err := r.Put(ctx, &Version{Project: "p", Version: v, Parent: parent, Site: site}, b, nil, nil, key, Fence{}); err != nil {
			t.Fatal(err)
		}
	}
	// Without a producer every announcement fails; the releases themselves are recorded.
	announced := func(_ *Release, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "no producer") {
			t.Fatalf("%v, want only the announcement to fail", err)
		}
	}
	put(1, 0, "")
	announced(r.SetRelease(ctx, "p", 1, "bootstrap", "t", false))
	put(2, 1, "cam-1")
	if _, err := r.SetRelease(ctx, "p", 2, "promote", "t", false); !errors.Is(err, ErrSiteVersion) {
		t.Fatalf("a site's version as the project release: %v", err)
	}
	if _, err := r.SetSiteRelease(ctx, "p", "cam-2", 2, "site", "t"); err == nil {
		t.Fatal("cam-1's version released to cam-2")
	}
	announced(r.SetSiteRelease(ctx, "p", "cam-1", 2, "site", "t"))
	sr, err := r.SiteRelease(ctx, "p", "cam-1")
	if err != nil {
		t.Fatal(err)
	}
	m, err := artifact.VerifyManifest(pub, sr.Manifest, sr.ManifestSig)
	if err != nil {
		t.Fatal(err)
	}
	if m.Site != "cam-1" || m.Version != 2 || m.Seq != 1 || m.BaseVersion != 1 || m.BaseSeq != 1 || m.Revoked {
		t.Fatalf("site manifest %+v", m)
	}
	if st := SiteStatus(sr, mustRelease(t, r)); st != SiteActive {
		t.Fatalf("status %q, want active", st)
	}
	// A newer project release supersedes it, and a site version from v1 is refused.
	put(3, 1, "")
	announced(r.SetRelease(ctx, "p", 3, "retrain", "t", false))
	if st := SiteStatus(sr, mustRelease(t, r)); st != SiteSuperseded {
		t.Fatalf("status %q after v3, want superseded", st)
	}
	// Its re-adaptation to v3 (release Rev 2) is claimed once.
	for i, want := range []bool{true, false} {
		if got, err := r.ClaimReadaptation(ctx, "p", "cam-1", 2); err != nil || got != want {
			t.Fatalf("claim %d: %v %v, want %v", i, got, err, want)
		}
	}
	put(4, 1, "cam-1")
	if _, err := r.SetSiteRelease(ctx, "p", "cam-1", 4, "site", "t"); err == nil || !strings.Contains(err.Error(), "adapt the site again") {
		t.Fatalf("a site version from an older project release: %v", err)
	}
	// Revoked: a signed revocation with the next site sequence.
	announced(r.RevokeSiteRelease(ctx, "p", "cam-1", "ada"))
	sr, _ = r.SiteRelease(ctx, "p", "cam-1")
	if m, err = artifact.VerifyManifest(pub, sr.Manifest, sr.ManifestSig); err != nil || !m.Revoked || m.Seq != 2 || m.Site != "cam-1" {
		t.Fatalf("revocation manifest %+v %v", m, err)
	}
	if got, err := r.ClaimReadaptation(ctx, "p", "cam-1", 3); err != nil || got {
		t.Fatalf("a revoked site's re-adaptation claimed: %v %v", got, err)
	}
	if _, err := r.RevokeSiteRelease(ctx, "p", "cam-9", "ada"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoking a site without a release: %v", err)
	}
	o, err := r.Overview(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range o.History {
		got = append(got, h.Site+"/"+h.Reason)
	}
	if strings.Join(got, " ") != "/bootstrap cam-1/site /retrain cam-1/revoke" || len(o.Sites) != 1 || o.Sites[0].Status != SiteRevoked {
		t.Fatalf("overview: history %v, sites %+v", got, o.Sites)
	}
}

func mustRelease(t *testing.T, r *Registry) *Release {
	t.Helper()
	rel, err := r.Current(context.Background(), "p")
	if err != nil {
		t.Fatal(err)
	}
	return rel
}
