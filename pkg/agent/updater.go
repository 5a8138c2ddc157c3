package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/edgeloop/edgeloop/pkg/artifact"
	"github.com/edgeloop/edgeloop/pkg/atomicfile"
	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/mqttbus"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/retry"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

func (a *Agent) modelsDir() string { return filepath.Join(a.cfg.DataDir, "models") }

// loadInitialModel loads the trusted release manifests (the project's and the site's)
// and the model the agent last ran (models/current), else the configured start model.
func (a *Agent) loadInitialModel() error {
	if err := os.MkdirAll(a.modelsDir(), 0o755); err != nil {
		return err
	}
	a.trusted.file, a.trustedSite.file = trustedFile, trustedSiteFile
	for _, sl := range []*trustedRelease{&a.trusted, &a.trustedSite} {
		t, err := a.loadTrusted(sl.file)
		if err != nil {
			return err
		}
		if t != nil {
			*sl = *t
		}
	}
	if m := a.trustedSite.man; m != nil && m.Site != a.cfg.Device {
		return fmt.Errorf("agent: trusted site release is for device %q, this agent is %q", m.Site, a.cfg.Device)
	}
	path := ""
	if b, err := os.ReadFile(filepath.Join(a.modelsDir(), "current")); err == nil {
		path = filepath.Join(a.modelsDir(), filepath.Base(strings.TrimSpace(string(b))))
	} else if a.cfg.Model != "" {
		path = a.cfg.Model
	}
	if path == "" {
		a.log.Info("no model yet: waiting for a release")
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("model %s: %w", path, err)
	}
	m, err := loadModel(data, a.cfg.Workers)
	if err != nil {
		return fmt.Errorf("model %s: %w", path, err)
	}
	a.current.Store(m)
	a.log.Info("model loaded", zap.Int64("version", m.version), zap.String("sha256", m.sha256), zap.String("file", path))
	return nil
}

// onRelease receives a retained release (the project's or the device's site release);
// per topic, the latest one replaces any not yet handled.
func (a *Agent) onRelease(msg mqttbus.Message) {
	if len(msg.Payload()) == 0 {
		return // a retained message cleared: no release, nothing to refuse
	}
	rel := &edgeloopv1.ModelRelease{}
	if err := proto.Unmarshal(msg.Payload(), rel); err != nil {
		a.refuse(nil, fmt.Sprintf("release message does not decode: %v", err))
		return
	}
	ch := a.releases
	if msg.Topic() == contract.SiteReleaseTopic(a.cfg.Project, a.cfg.Device) {
		ch = a.siteReleases
	}
	for {
		select {
		case ch <- rel:
			return
		default:
			select {
			case <-ch: // drop the stale one
			default:
			}
		}
	}
}

// updater applies releases one at a time.
func (a *Agent) updater(ctx context.Context) error {
	for {
		var rel *edgeloopv1.ModelRelease
		select {
		case <-ctx.Done():
			return nil
		case rel = <-a.releases:
		case rel = <-a.siteReleases:
		}
		if err := a.Apply(ctx, rel); err != nil && ctx.Err() == nil {
			a.refuse(rel, err.Error())
		}
	}
}

func (a *Agent) refuse(rel *edgeloopv1.ModelRelease, why string) {
	v := int64(-1)
	if rel != nil {
		v = rel.Version
	}
	a.log.Error("model update refused; keeping the current model", zap.Int64("release_version", v),
		zap.Int64("current_version", a.ModelVersion()), zap.String("reason", why))
	a.m.updates.WithLabelValues("refused").Inc()
	a.mu.Lock()
	a.stats.refused = fmt.Sprintf("v%d: %s", v, why)
	a.mu.Unlock()
}

// ErrDowngrade refuses an older version that is not a signed rollback newer than the
// release the agent trusts.
var ErrDowngrade = errors.New("downgrade refused")

// ErrStaleRelease refuses a release manifest that is not newer than the trusted one of
// its kind (a replay).
var ErrStaleRelease = errors.New("stale release refused")

// ErrOtherSite refuses a site release addressed to another device.
var ErrOtherSite = errors.New("site release for another device refused")

// Files of the trusted release manifests.
const (
	// trustedFile keeps the last project release manifest the agent accepted, as TUF
	// clients keep their last trusted metadata: a replayed older release is refused
	// after a restart too.
	trustedFile = "trusted.json"
	// trustedSiteFile keeps the last site release manifest (or revocation) accepted.
	trustedSiteFile = "trusted-site.json"
)

// trustedRelease is a trusted release: the manifest as signed (kept in file), and the
// artifact's signature from its message, so that the agent can return to its model
// later (when a site release is revoked) verifying it as the first time.
type trustedRelease struct {
	Manifest          []byte `json:"manifest"`
	Signature         []byte `json:"signature"`
	KeyID             string `json:"key_id"`
	ArtifactSignature []byte `json:"artifact_signature,omitempty"`
	ArtifactKeyID     string `json:"artifact_key_id,omitempty"`

	file string
	man  *artifact.ReleaseManifest
}

// loadTrusted reads and re-verifies a trusted manifest (nil when there is none).
func (a *Agent) loadTrusted(file string) (*trustedRelease, error) {
	b, err := os.ReadFile(filepath.Join(a.modelsDir(), file))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agent: trusted release manifest: %w", err)
	}
	var t trustedRelease
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("agent: trusted release manifest %s: %w", file, err)
	}
	pub, ok := a.cfg.PublicKeys[t.KeyID]
	if !ok {
		return nil, fmt.Errorf("agent: trusted release manifest %s signed by key %q, which is not configured", file, t.KeyID)
	}
	if t.man, err = artifact.VerifyManifest(pub, t.Manifest, t.Signature); err != nil {
		return nil, fmt.Errorf("agent: trusted release manifest %s: %w", file, err)
	}
	if (file == trustedSiteFile) != (t.man.Site != "") {
		return nil, fmt.Errorf("agent: trusted release manifest %s: site %q in the wrong file", file, t.man.Site)
	}
	t.file = file
	return &t, nil
}

// verifyRelease returns the release's manifest once its signature verifies; nothing
// else of the message is trusted. A site release must name this device.
func (a *Agent) verifyRelease(rel *edgeloopv1.ModelRelease) (*artifact.ReleaseManifest, error) {
	if len(a.cfg.PublicKeys) == 0 {
		return nil, errors.New("no public key configured: cannot verify releases")
	}
	if len(rel.Manifest) == 0 {
		return nil, fmt.Errorf("%w: the release carries no signed manifest", artifact.ErrSignature)
	}
	pub, ok := a.cfg.PublicKeys[rel.ManifestKeyId]
	if !ok {
		return nil, fmt.Errorf("release manifest signed by unknown key %q", rel.ManifestKeyId)
	}
	m, err := artifact.VerifyManifest(pub, rel.Manifest, rel.ManifestSignature)
	if err != nil {
		return nil, err
	}
	if m.Project != a.cfg.Project {
		return nil, fmt.Errorf("release for project %q, this agent runs %q", m.Project, a.cfg.Project)
	}
	if m.Site != "" && m.Site != a.cfg.Device {
		return nil, fmt.Errorf("%w: v%d is the release of site %q, this agent is %q", ErrOtherSite, m.Version, m.Site, a.cfg.Device)
	}
	return m, nil
}

// same reports whether two manifests are the same release.
func same(m, t *artifact.ReleaseManifest) bool {
	return t != nil && m.Seq == t.Seq && m.Version == t.Version && m.SHA256 == t.SHA256 && m.Revoked == t.Revoked
}

// admit decides whether manifest m may replace the trusted one of its kind. A project
// release must be newer (a higher sequence), and a lower version than the trusted
// release (the running model before any) needs m's signed rollback flag. A site
// release must be newer than the trusted site release; one adapted from an older
// project release than the trusted one is superseded: trusted, but target never runs
// it.
func (a *Agent) admit(m *artifact.ReleaseManifest, cur *model) error {
	if m.Site != "" {
		t, p := a.trustedSite.man, a.trusted.man
		if same(m, t) {
			return nil
		}
		if t != nil && m.Seq <= t.Seq {
			return fmt.Errorf("%w: site manifest #%d (v%d) is not newer than the trusted #%d (v%d)", ErrStaleRelease, m.Seq, m.Version, t.Seq, t.Version)
		}
		if p != nil && !m.Revoked && m.BaseSeq < p.Seq {
			// Superseded: trusted (it is the site's newest), never run (target).
			a.log.Info("site release superseded by the trusted project release: not run", zap.Int64("version", m.Version),
				zap.Int64("base_seq", m.BaseSeq), zap.Int64("project_seq", p.Seq))
		}
		return nil
	}
	t := a.trusted.man
	if same(m, t) {
		return nil
	}
	if t != nil && m.Seq <= t.Seq {
		return fmt.Errorf("%w: manifest #%d (v%d) is not newer than the trusted #%d (v%d)", ErrStaleRelease, m.Seq, m.Version, t.Seq, t.Version)
	}
	ref := int64(0)
	switch {
	case t != nil:
		ref = t.Version
	case cur != nil:
		ref = cur.version
	}
	if m.Version < ref && !m.Rollback {
		return fmt.Errorf("%w: v%d is older than v%d and not a signed rollback", ErrDowngrade, m.Version, ref)
	}
	return nil
}

// target is the release the agent should run given its trusted project release p and
// site release s: the site's while it is not revoked and adapted from a project
// release no older than p, else the project's (nil: none yet).
func target(p, s *trustedRelease) *trustedRelease {
	if s.man != nil && !s.man.Revoked && (p.man == nil || s.man.BaseSeq >= p.man.Seq) {
		return s
	}
	if p.man == nil {
		return nil
	}
	return p
}

// Apply verifies a release's signed manifest (the project's, or this device's site
// release), admits it, and makes the agent run what its trusted releases now say
// (target): if that is another model, it downloads the artifact from the configured
// registry, verifies, smoke-tests and swaps it in. The manifest is trusted only once
// its model is in place. Any failure leaves the current model serving.
func (a *Agent) Apply(ctx context.Context, rel *edgeloopv1.ModelRelease) error {
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	man, err := a.verifyRelease(rel)
	if err != nil {
		return err
	}
	cur := a.current.Load()
	if err := a.admit(man, cur); err != nil {
		return err
	}
	in := &trustedRelease{Manifest: rel.Manifest, Signature: rel.ManifestSignature, KeyID: rel.ManifestKeyId,
		ArtifactSignature: rel.Signature, ArtifactKeyID: rel.KeyId, file: trustedFile, man: man}
	p, s := &a.trusted, &a.trustedSite
	if man.Site != "" {
		in.file, s = trustedSiteFile, in
	} else {
		p = in
	}
	want := target(p, s)
	if want == nil || (cur != nil && want.man.Version == cur.version && want.man.SHA256 == cur.sha256) {
		return a.trust(in) // running it already (or nothing to run: a revocation before any release)
	}
	m, data, err := a.fetchModel(ctx, want)
	if err != nil {
		return err
	}
	if cur != nil {
		if err := compatible(cur.header, m.header); err != nil {
			m.retire()
			return fmt.Errorf("v%d does not follow the running v%d: %w", m.version, cur.version, err)
		}
		if added, removed := classDiff(cur.header.Classes, m.header.Classes); len(added)+len(removed) > 0 {
			a.log.Info("the new model's classes changed", zap.Int64("version", m.version), zap.Strings("added", added), zap.Strings("removed", removed))
		}
	}
	if err := a.smokeTest(ctx, m); err != nil {
		m.retire()
		return fmt.Errorf("smoke test of v%d failed: %w", m.version, err)
	}
	name := fmt.Sprintf("v%d-%s.elm", m.version, m.sha256[:12])
	if err := writeFileSync(filepath.Join(a.modelsDir(), name), data); err != nil {
		m.retire()
		return err
	}
	if err := a.trust(in); err != nil {
		m.retire()
		return err
	}
	if err := writeFileSync(filepath.Join(a.modelsDir(), "current"), []byte(name+"\n")); err != nil {
		m.retire()
		return err
	}
	// Swap: new inferences use m at once; the old model stays as the rollback and the
	// one before it is retired once its inferences are done.
	a.current.Store(m)
	if old := a.previous.Swap(cur); old != nil && old != m {
		go old.retire()
	}
	_ = os.Remove(a.partPath(want.man))
	a.m.updates.WithLabelValues("applied").Inc()
	a.mu.Lock()
	a.stats.refused = ""
	a.mu.Unlock()
	from := int64(0)
	if cur != nil {
		from = cur.version
	}
	a.log.Info("model updated", zap.Int64("from", from), zap.Int64("to", m.version), zap.String("sha256", m.sha256),
		zap.Bool("rollback", man.Rollback), zap.Int64("release_seq", man.Seq), zap.String("reason", rel.Reason),
		zap.String("site", want.man.Site), zap.Bool("site_revoked", man.Revoked))
	return nil
}

// fetchModel downloads and verifies the model of trusted release t: its bytes must be
// the manifest's and carry the artifact signature of t's message.
func (a *Agent) fetchModel(ctx context.Context, t *trustedRelease) (*model, []byte, error) {
	man := t.man
	pub, ok := a.cfg.PublicKeys[t.ArtifactKeyID]
	if !ok {
		return nil, nil, fmt.Errorf("artifact signed by unknown key %q", t.ArtifactKeyID)
	}
	data, err := a.download(ctx, man)
	if err != nil {
		return nil, nil, err
	}
	if err := artifact.Verify(pub, data, man.SHA256, t.ArtifactSignature); err != nil {
		return nil, nil, err
	}
	m, err := loadModel(data, a.cfg.Workers)
	if err != nil {
		return nil, nil, err
	}
	if m.version != man.Version {
		m.retire()
		return nil, nil, fmt.Errorf("artifact says v%d, release says v%d", m.version, man.Version)
	}
	if m.header.Project != "" && m.header.Project != a.cfg.Project {
		m.retire()
		return nil, nil, fmt.Errorf("artifact v%d is a model of project %q, this agent runs %q", m.version, m.header.Project, a.cfg.Project)
	}
	return m, data, nil
}

// trust records t as the trusted release of its kind, on disk first.
func (a *Agent) trust(t *trustedRelease) error {
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("agent: trusted release manifest: %w", err)
	}
	if err := writeFileSync(filepath.Join(a.modelsDir(), t.file), b); err != nil {
		return fmt.Errorf("agent: trusted release manifest: %w", err)
	}
	if t.man.Site != "" {
		a.trustedSite = *t
	} else {
		a.trusted = *t
	}
	return nil
}

// partPath is where the artifact of man downloads to. It is built from the verified
// manifest only (a version number and 64 hex digits, checked by VerifyManifest).
func (a *Agent) partPath(man *artifact.ReleaseManifest) string {
	return filepath.Join(a.modelsDir(), fmt.Sprintf("v%d-%s.part", man.Version, man.SHA256))
}

// artifactURL is where the configured registry serves man's artifact.
func (a *Agent) artifactURL(man *artifact.ReleaseManifest) string {
	return a.cfg.RegistryURL + "/api/v1/projects/" + url.PathEscape(man.Project) + "/models/" + strconv.FormatInt(man.Version, 10) + "/artifact"
}

// smokeTest runs the new model on a few recent frames (or a blank one): it must answer
// with finite confidences.
func (a *Agent) smokeTest(ctx context.Context, m *model) error {
	a.mu.Lock()
	var ims []*raster.Image
	for i := len(a.order) - 1; i >= 0 && len(ims) < 8; i-- {
		ims = append(ims, a.frames[a.order[i]].img)
	}
	a.mu.Unlock()
	if len(ims) == 0 {
		ims = []*raster.Image{raster.New(m.header.Arch.InW, m.header.Arch.InH)}
	}
	preds, _, err := m.predict(ctx, ims)
	if err != nil {
		return err
	}
	for _, ps := range preds {
		for _, p := range ps {
			if c := float64(p.Confidence); math.IsNaN(c) || c < 0 || c > 1 {
				return fmt.Errorf("confidence %v", p.Confidence)
			}
		}
	}
	return nil
}

// download fetches man's artifact from the configured registry into its part file,
// resuming a partial download with a Range request, within the size limit.
func (a *Agent) download(ctx context.Context, man *artifact.ReleaseManifest) ([]byte, error) {
	limit := a.cfg.MaxModelBytes
	if man.SizeBytes > limit {
		return nil, fmt.Errorf("artifact of %d bytes exceeds the %d-byte limit", man.SizeBytes, limit)
	}
	if man.SizeBytes > 0 {
		limit = man.SizeBytes
	}
	part, src := a.partPath(man), a.artifactURL(man)
	var data []byte
	err := retry.Do(ctx, retry.Backoff{Initial: 500 * time.Millisecond, Max: 10 * time.Second}, func(ctx context.Context) error {
		var err error
		data, err = a.fetch(ctx, src, part, limit)
		if err == nil && man.SizeBytes > 0 && int64(len(data)) < man.SizeBytes {
			return fmt.Errorf("download ended after %d of %d bytes", len(data), man.SizeBytes)
		}
		return err
	}, func(err error, attempt int, d time.Duration) {
		a.log.Warn("model download failed; resuming", zap.Error(err), zap.Int("attempt", attempt+1), zap.Duration("backoff", d))
	})
	return data, err
}

func (a *Agent) fetch(ctx context.Context, url, part string, limit int64) ([]byte, error) {
	have, _ := os.ReadFile(part)
	if int64(len(have)) > limit {
		have = nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, retry.Permanent(err)
	}
	if a.cfg.DeviceToken != "" {
		req.Header.Set("Authorization", "Bearer "+a.cfg.DeviceToken)
	}
	if len(have) > 0 {
		req.Header.Set("Range", "bytes="+strconv.Itoa(len(have))+"-")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		have = nil
	case http.StatusPartialContent:
	case http.StatusRequestedRangeNotSatisfiable:
		_ = os.Remove(part)
		return nil, errors.New("stale partial download discarded")
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, retry.Permanent(fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(b)))
	default:
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.OpenFile(part, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, retry.Permanent(err)
	}
	defer f.Close()
	if _, err := f.Write(have); err != nil {
		return nil, err
	}
	n, err := io.Copy(f, io.LimitReader(resp.Body, limit-int64(len(have))+1))
	total := int64(len(have)) + n
	if total > limit {
		_ = os.Remove(part)
		return nil, retry.Permanent(fmt.Errorf("artifact exceeds the %d-byte limit", limit))
	}
	if err != nil {
		return nil, err // keep the part: the next attempt resumes
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	return os.ReadFile(part)
}

// writeFileSync puts data at path atomically and durably (atomicfile.WriteSync): the
// model, its trusted manifest and the "current" pointer survive a power cut once
// written. 0o666 is what os.Create gave them: the umask decides.
func writeFileSync(path string, data []byte) error {
	return atomicfile.WriteSync(path, data, 0o666)
}

// compatible says whether model next may replace the running model cur: the same task,
// and the classes both know in the same order (a project appends classes and removes
// them explicitly, but never reorders or renames them).
func compatible(cur, next artifact.Header) error {
	if next.Arch.Task != cur.Arch.Task {
		return fmt.Errorf("it is a %s model, the running one a %s model", next.Arch.Task, cur.Arch.Task)
	}
	inNext := map[string]bool{}
	for _, c := range next.Classes {
		inNext[c] = true
	}
	var common []string
	for _, c := range cur.Classes {
		if inNext[c] {
			common = append(common, c)
		}
	}
	i := 0
	for _, c := range next.Classes {
		if i < len(common) && c == common[i] {
			i++
		}
	}
	if i != len(common) {
		return fmt.Errorf("its classes %v reorder the running model's %v", next.Classes, cur.Classes)
	}
	if len(common) == 0 {
		return fmt.Errorf("its classes %v share none with the running model's %v", next.Classes, cur.Classes)
	}
	return nil
}

// classDiff lists the classes next adds to cur and those it no longer has.
func classDiff(cur, next []string) (added, removed []string) {
	for _, c := range next {
		if !slices.Contains(cur, c) {
			added = append(added, c)
		}
	}
	for _, c := range cur {
		if !slices.Contains(next, c) {
			removed = append(removed, c)
		}
	}
	return added, removed
}
