package agent

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/edgeloop/edgeloop/pkg/artifact"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// siteOf makes a manifest cam-1's site release with its own sequence seq, adapted from
// the project release base (version, sequence).
func siteOf(site string, seq, baseVersion, baseSeq int64) func(*artifact.ReleaseManifest) {
	return func(m *artifact.ReleaseManifest) {
		m.Site, m.Seq, m.BaseVersion, m.BaseSeq = site, seq, baseVersion, baseSeq
	}
}

// revoked marks a site manifest as a revocation.
func revoked(m *artifact.ReleaseManifest) { m.Revoked = true }

// TestSiteReleaseRules, without servers: a device runs its site release on top of the
// project release; a site release for another device or a replayed one is refused; a
// newer project release replaces the site release, and neither a re-announcement of it
// nor a later one adapted from the older project release brings it back; a site
// release adapted from the new one applies; a
// signed revocation takes the device back to the project release — also across a
// restart, which keeps both trusted manifests.
func TestSiteReleaseRules(t *testing.T) {
	f := newFixture(t)
	a := newAgent(t, f, nil) // cam-1
	ctx := context.Background()
	apply := func(ag *Agent, rel *edgeloopv1.ModelRelease, want int64) {
		t.Helper()
		if err := ag.Apply(ctx, rel); err != nil {
			t.Fatal(err)
		}
		if ag.ModelVersion() != want {
			t.Fatalf("running v%d, want v%d", ag.ModelVersion(), want)
		}
	}
	refused := func(rel *edgeloopv1.ModelRelease, want error, running int64) {
		t.Helper()
		if err := a.Apply(ctx, rel); !errors.Is(err, want) {
			t.Fatalf("err %v, want %v", err, want)
		}
		if a.ModelVersion() != running {
			t.Fatalf("running v%d after a refusal, want v%d", a.ModelVersion(), running)
		}
	}
	p1 := f.release(1, modelFile(t, 1, 1)) // project release #1
	apply(a, p1, 1)
	// A site release of another device, validly signed: refused.
	refused(f.release(2, modelFile(t, 2, 2), siteOf("cam-2", 1, 1, 1)), ErrOtherSite, 1)
	// cam-1's own site release v3 (site #1, from project #1) applies.
	s3 := f.release(3, modelFile(t, 3, 3), siteOf("cam-1", 1, 1, 1))
	apply(a, s3, 3)
	apply(a, p1, 3) // the retained project release again changes nothing
	apply(a, s3, 3)
	// A new project release v4 (#2 of the fixture's sequence) replaces the site release.
	p4 := f.release(4, modelFile(t, 4, 4))
	apply(a, p4, 4)
	apply(a, s3, 4) // re-announced: superseded
	// A site release adapted from the older project release is superseded: it is not
	// run, even with a newer site sequence; one adapted from v4 applies.
	apply(a, f.release(5, modelFile(t, 5, 5), siteOf("cam-1", 2, 1, 1)), 4)
	var m4 artifact.ReleaseManifest
	if err := json.Unmarshal(p4.Manifest, &m4); err != nil {
		t.Fatal(err)
	}
	s6 := f.release(6, modelFile(t, 6, 6), siteOf("cam-1", 3, 4, m4.Seq))
	apply(a, s6, 6)
	// Replaying the older site release s3 (site #1) is refused.
	refused(s3, ErrStaleRelease, 6)
	// A restart keeps running v6 and trusting both manifests.
	b := newAgent(t, f, func(c *Config) { c.DataDir = a.cfg.DataDir })
	if b.ModelVersion() != 6 {
		t.Fatalf("after a restart running v%d, want v6", b.ModelVersion())
	}
	if err := b.Apply(ctx, s3); !errors.Is(err, ErrStaleRelease) {
		t.Fatalf("replayed site release after a restart: %v", err)
	}
	// The signed revocation (site #4) takes it back to the project release v4.
	rv := f.release(6, modelFile(t, 6, 6), siteOf("cam-1", 4, 4, m4.Seq), revoked)
	apply(b, rv, 4)
	if err := b.Apply(ctx, s6); !errors.Is(err, ErrStaleRelease) || b.ModelVersion() != 4 {
		t.Fatalf("revoked site release replayed: %v, running v%d", err, b.ModelVersion())
	}
	// A site manifest that names no project release it was adapted from does not sign.
	if _, _, err := artifact.SignManifest(f.priv, &artifact.ReleaseManifest{Project: "digits", Version: 7, SHA256: strings.Repeat("a", 64), Seq: 9, Site: "cam-1"}); err == nil {
		t.Fatal("a site manifest without its base signed")
	}
}
