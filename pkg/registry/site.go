package registry

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/edgeloop/edgeloop/pkg/artifact"
	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/retry"
)

// Site releases. A candidate adapted to one device's site (retrain mode adapt-bn:SITE)
// is published as that site's release: a pointer of its own, changed by compare-and-
// swap like the project's, signed with a manifest that names the site and the project
// release it was adapted from, and announced on the device's own retained topic. Only
// that device runs it; every other device keeps the project release. The rules:
//
//   - A site release is adapted from the current project release (its version's
//     parent); the manifest records that release's version and Rev (BaseVersion,
//     BaseSeq).
//   - A newer project release supersedes it: the device returns to the project release
//     (agents enforce it from the manifests alone), and the retrain service asks for a
//     new adaptation of the site from the new release, gated like any candidate.
//   - An admin can revoke it: a signed revocation takes the device back to the project
//     release.

// ErrSiteVersion refuses a site's version as the project's release.
var ErrSiteVersion = errors.New("a version adapted to one site is released to that site only (promote publishes it there)")

// Site release states, as SiteStatus says them.
const (
	SiteActive     = "active"
	SiteSuperseded = "superseded"
	SiteRevoked    = "revoked"
)

func siteReleaseKey(p, site string) string {
	return "projects/" + p + "/sites/" + site + "/release.json"
}

// SiteRelease reads a site's release (ErrNotFound when it has none).
func (r *Registry) SiteRelease(ctx context.Context, project, site string) (*Release, error) {
	if err := contract.CheckID("site (device)", site); err != nil {
		return nil, fmt.Errorf("site release of %s: %w", project, err)
	}
	var rel Release
	if _, err := objstore.GetJSON(ctx, r.S, siteReleaseKey(project, site), &rel); err != nil {
		return nil, fmt.Errorf("site release of %s/%s: %w", project, site, err)
	}
	return &rel, nil
}

// SiteReleases lists a project's site releases, by site; one that does not decode is
// passed over (and reported to r.Corrupt).
func (r *Registry) SiteReleases(ctx context.Context, project string) ([]*Release, error) {
	out, err := listJSON[Release](ctx, r, "projects/"+project+"/sites/", "/release.json")
	slices.SortFunc(out, func(a, b *Release) int { return strings.Compare(a.Site, b.Site) })
	return out, err
}

// SiteStatus says what a site release's device runs given the project release:
// SiteActive (the site release), SiteSuperseded (a newer project release replaced it)
// or SiteRevoked.
func SiteStatus(site, project *Release) string {
	switch {
	case site.Revoked:
		return SiteRevoked
	case project != nil && int64(project.Rev) > site.BaseSeq:
		return SiteSuperseded
	}
	return SiteActive
}

// SetSiteRelease makes version v, a candidate adapted for site, that site's release:
// v must have been adapted from the current project release. It produces the
// ModelRelease for the device's topic and returns the site release.
func (r *Registry) SetSiteRelease(ctx context.Context, project, site string, v int64, reason, by string) (*Release, error) {
	if len(r.Key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("site release of %s/%s v%d: %w", project, site, v, ErrNoKey)
	}
	ver, err := r.Version(ctx, project, v)
	if err != nil {
		return nil, err
	}
	if ver.Site != site {
		return nil, fmt.Errorf("site release of %s/%s: v%d was not adapted for that site (its site: %q)", project, site, v, ver.Site)
	}
	base, err := r.Current(ctx, project)
	if err != nil {
		return nil, fmt.Errorf("site release of %s/%s v%d: %w", project, site, v, err)
	}
	if ver.Parent != base.Version {
		return nil, fmt.Errorf("site release of %s/%s: v%d was adapted from v%d, and the project release is now v%d: adapt the site again",
			project, site, v, ver.Parent, base.Version)
	}
	metric := ""
	if d := ver.Decision; d.Metric != "" && d.TestExamples > 0 {
		metric = fmt.Sprintf("%s %.3f", d.Metric, d.Candidate)
	}
	return r.changeSite(ctx, project, site, by, func(rel *Release, exists bool, now time.Time) (*artifact.ReleaseManifest, error) {
		if exists && rel.Version == v && !rel.Revoked && rel.BaseSeq == int64(base.Rev) {
			return nil, objstore.ErrNoChange
		}
		previous := int64(0)
		if exists {
			previous = rel.Version
		}
		rel.History = append(rel.History, ReleaseChange{Version: v, At: now, Reason: reason, By: by, Metric: metric, Site: site})
		rel.Version, rel.SHA256, rel.At, rel.Reason, rel.By, rel.Rollback = v, ver.SHA256, now, reason, by, false
		rel.Site, rel.BaseVersion, rel.BaseSeq, rel.Revoked = site, base.Version, int64(base.Rev), false
		return &artifact.ReleaseManifest{Project: project, Version: v, SHA256: ver.SHA256, SizeBytes: ver.SizeBytes, Created: now,
			PreviousVersion: previous, Site: site, BaseVersion: rel.BaseVersion, BaseSeq: rel.BaseSeq}, nil
	})
}

// RevokeSiteRelease withdraws a site's release: its device returns to the project
// release. It produces the signed revocation and returns the site release.
func (r *Registry) RevokeSiteRelease(ctx context.Context, project, site, by string) (*Release, error) {
	if len(r.Key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("revocation of %s/%s: %w", project, site, ErrNoKey)
	}
	return r.changeSite(ctx, project, site, by, func(rel *Release, exists bool, now time.Time) (*artifact.ReleaseManifest, error) {
		if !exists {
			return nil, fmt.Errorf("site release of %s/%s: %w", project, site, ErrNotFound)
		}
		if rel.Revoked {
			return nil, objstore.ErrNoChange
		}
		rel.History = append(rel.History, ReleaseChange{Version: rel.Version, At: now, Reason: "revoke", By: by, Site: site})
		rel.At, rel.Reason, rel.By, rel.Revoked = now, "revoke", by, true
		return &artifact.ReleaseManifest{Project: project, Version: rel.Version, SHA256: rel.SHA256, Created: now,
			Site: site, BaseVersion: rel.BaseVersion, BaseSeq: rel.BaseSeq, Revoked: true}, nil
	})
}

// changeSite changes a site's release by compare-and-swap with change, which edits it
// and returns its manifest (the sequence is set here), signs it and announces it.
func (r *Registry) changeSite(ctx context.Context, project, site, by string,
	change func(rel *Release, exists bool, now time.Time) (*artifact.ReleaseManifest, error)) (*Release, error) {
	if err := contract.CheckID("site (device)", site); err != nil {
		return nil, fmt.Errorf("site release of %s: %w", project, err)
	}
	var out Release
	_, err := objstore.Update(ctx, r.S, siteReleaseKey(project, site), func(rel *Release, exists bool) error {
		m, err := change(rel, exists, time.Now().UTC())
		if err != nil {
			if errors.Is(err, objstore.ErrNoChange) {
				out = *rel
			}
			return err
		}
		rel.Rev++
		m.Seq = int64(rel.Rev)
		if err := r.sign(rel, m); err != nil {
			return fmt.Errorf("site release of %s/%s: %w", project, site, err)
		}
		out = *rel
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = retry.Do(ctx, retry.Backoff{Max: 5 * time.Second}, func(ctx context.Context) error { return r.AnnounceSite(ctx, project, site) }, nil)
	return &out, err
}

// AnnounceSite produces a site's current release (or its revocation) as a
// ModelRelease for the device's topic.
func (r *Registry) AnnounceSite(ctx context.Context, project, site string) error {
	rel, err := r.SiteRelease(ctx, project, site)
	if err != nil {
		return err
	}
	ver, err := r.Version(ctx, project, rel.Version)
	if err != nil {
		return err
	}
	return r.announce(ctx, project, rel, ver)
}

// SiteView is a site release as the API and the dashboard show it: the release, and
// what its device runs given the project release (Status: SiteStatus).
type SiteView struct {
	*Release
	Status string `json:"status"`
}

// Overview is the project release with its site releases: History holds the project
// release's changes and every site's, oldest first, each site's change marked with its
// site.
type Overview struct {
	*Release
	History []ReleaseChange `json:"history"`
	Sites   []SiteView      `json:"sites"`
}

// Overview reads the project release (ErrNotFound when none yet) and its site releases.
func (r *Registry) Overview(ctx context.Context, project string) (*Overview, error) {
	rel, err := r.Current(ctx, project)
	if err != nil {
		return nil, err
	}
	sites, err := r.SiteReleases(ctx, project)
	if err != nil {
		return nil, fmt.Errorf("site releases of %s: %w", project, err)
	}
	o := &Overview{Release: rel, History: slices.Clone(rel.History), Sites: []SiteView{}}
	for _, s := range sites {
		o.Sites = append(o.Sites, SiteView{Release: s, Status: SiteStatus(s, rel)})
		o.History = append(o.History, s.History...)
	}
	slices.SortStableFunc(o.History, func(a, b ReleaseChange) int { return a.At.Compare(b.At) })
	return o, nil
}

// AnnounceAll produces the project's release and every site release again (devices
// ignore a release they run already): what retrain's re-announcement sends.
//
// It returns ErrNotFound only when the project has no release and nothing else failed,
// so that callers that pass over a project without a release still hear of its sites'
// failures.
func (r *Registry) AnnounceAll(ctx context.Context, project string) error {
	noRelease := r.Announce(ctx, project)
	if noRelease != nil && !errors.Is(noRelease, ErrNotFound) {
		return noRelease
	}
	sites, err := r.SiteReleases(ctx, project)
	if err != nil {
		return fmt.Errorf("site releases of %s: %w", project, err)
	}
	var errs []error
	for _, s := range sites { // one site's failure does not keep the others unannounced
		if err := r.AnnounceSite(ctx, project, s.Site); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return noRelease
}

// ClaimReadaptation records that a re-adaptation of site's release to the project
// release of revision rev is asked for. It reports whether this call claimed it: the
// site release is superseded by that release, not revoked, and not claimed for it
// before (so each project release asks once per site, whatever the outcome).
func (r *Registry) ClaimReadaptation(ctx context.Context, project, site string, rev int) (bool, error) {
	claimed := false
	_, err := objstore.Update(ctx, r.S, siteReleaseKey(project, site), func(rel *Release, exists bool) error {
		claimed = false
		if !exists || rel.Revoked || rel.BaseSeq >= int64(rev) || rel.ReadaptedFor >= int64(rev) {
			return objstore.ErrNoChange
		}
		rel.ReadaptedFor, claimed = int64(rev), true
		return nil
	})
	return claimed, err
}
