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
	"github.com/edgeloop/edgeloop/pkg/mqttbus"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/retry"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

func (a *Agent) modelsDir() string { return filepath.Join(a.cfg.DataDir, "models") }

// loadInitialModel loads the trusted release manifest and the model the agent last ran
// (models/current), else the configured start model.
func (a *Agent) loadInitialModel() error {
	if err := os.MkdirAll(a.modelsDir(), 0o755); err != nil {
		return err
	}
	t, err := a.loadTrusted()
	if err != nil {
		return err
	}
	a.trusted = t
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

// onRelease receives the retained release; the latest one replaces any not yet handled.
func (a *Agent) onRelease(msg mqttbus.Message) {
	rel := &edgeloopv1.ModelRelease{}
	if err := proto.Unmarshal(msg.Payload(), rel); err != nil {
		a.refuse(nil, fmt.Sprintf("release message does not decode: %v", err))
		return
	}
	for {
		select {
		case a.releases <- rel:
			return
		default:
			select {
			case <-a.releases: // drop the stale one
			default:
			}
		}
	}
}

// updater applies releases one at a time.
func (a *Agent) updater(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case rel := <-a.releases:
			if err := a.Apply(ctx, rel); err != nil && ctx.Err() == nil {
				a.refuse(rel, err.Error())
			}
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

// ErrStaleRelease refuses a release manifest that is not newer than the trusted one (a
// replay).
var ErrStaleRelease = errors.New("stale release refused")

// trustedFile keeps the last release manifest the agent accepted, as TUF clients keep
// their last trusted metadata: a replayed older release is refused after a restart too.
const trustedFile = "trusted.json"

// trustedRelease is trustedFile's content: the manifest as signed.
type trustedRelease struct {
	Manifest  []byte `json:"manifest"`
	Signature []byte `json:"signature"`
	KeyID     string `json:"key_id"`
}

// loadTrusted reads and re-verifies the trusted manifest (nil when there is none).
func (a *Agent) loadTrusted() (*artifact.ReleaseManifest, error) {
	b, err := os.ReadFile(filepath.Join(a.modelsDir(), trustedFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agent: trusted release manifest: %w", err)
	}
	var t trustedRelease
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("agent: trusted release manifest %s: %w", trustedFile, err)
	}
	pub, ok := a.cfg.PublicKeys[t.KeyID]
	if !ok {
		return nil, fmt.Errorf("agent: trusted release manifest signed by key %q, which is not configured", t.KeyID)
	}
	m, err := artifact.VerifyManifest(pub, t.Manifest, t.Signature)
	if err != nil {
		return nil, fmt.Errorf("agent: trusted release manifest: %w", err)
	}
	return m, nil
}

// verifyRelease returns the release's manifest once its signature verifies; nothing
// else of the message is trusted.
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
	return m, nil
}

// admit decides whether manifest m may replace the trusted one: it must be newer (a
// higher sequence), and a lower version than the one running needs m's signed rollback
// flag. It reports done when m is the trusted release and already running.
func (a *Agent) admit(m *artifact.ReleaseManifest, cur *model) (done bool, err error) {
	if t := a.trusted; t != nil {
		if m.Seq == t.Seq && m.Version == t.Version && m.SHA256 == t.SHA256 {
			return cur != nil && cur.version == m.Version && cur.sha256 == m.SHA256, nil
		}
		if m.Seq <= t.Seq {
			return false, fmt.Errorf("%w: manifest #%d (v%d) is not newer than the trusted #%d (v%d)", ErrStaleRelease, m.Seq, m.Version, t.Seq, t.Version)
		}
	}
	if cur != nil && m.Version == cur.version && m.SHA256 == cur.sha256 {
		return false, nil // running it: only the trusted manifest moves on
	}
	if cur != nil && m.Version < cur.version && !m.Rollback {
		return false, fmt.Errorf("%w: v%d is older than the running v%d and not a signed rollback", ErrDowngrade, m.Version, cur.version)
	}
	return false, nil
}

// Apply verifies a release's signed manifest, downloads the artifact it names from the
// configured registry, verifies, smoke-tests and swaps it in. Any failure leaves the
// current model serving.
func (a *Agent) Apply(ctx context.Context, rel *edgeloopv1.ModelRelease) error {
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	man, err := a.verifyRelease(rel)
	if err != nil {
		return err
	}
	cur := a.current.Load()
	done, err := a.admit(man, cur)
	if err != nil || done {
		return err
	}
	if cur != nil && man.Version == cur.version && man.SHA256 == cur.sha256 {
		return a.trust(rel, man) // e.g. a re-signed release of the running model
	}
	pub, ok := a.cfg.PublicKeys[rel.KeyId]
	if !ok {
		return fmt.Errorf("artifact signed by unknown key %q", rel.KeyId)
	}
	data, err := a.download(ctx, man)
	if err != nil {
		return err
	}
	if err := artifact.Verify(pub, data, man.SHA256, rel.Signature); err != nil {
		return err
	}
	m, err := loadModel(data, a.cfg.Workers)
	if err != nil {
		return err
	}
	if m.version != man.Version {
		m.retire()
		return fmt.Errorf("artifact says v%d, release says v%d", m.version, man.Version)
	}
	if m.header.Project != "" && m.header.Project != a.cfg.Project {
		m.retire()
		return fmt.Errorf("artifact v%d is a model of project %q, this agent runs %q", m.version, m.header.Project, a.cfg.Project)
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
	if err := a.trust(rel, man); err != nil {
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
	_ = os.Remove(a.partPath(man))
	a.m.updates.WithLabelValues("applied").Inc()
	a.mu.Lock()
	a.stats.refused = ""
	a.mu.Unlock()
	from := int64(0)
	if cur != nil {
		from = cur.version
	}
	a.log.Info("model updated", zap.Int64("from", from), zap.Int64("to", m.version), zap.String("sha256", m.sha256),
		zap.Bool("rollback", man.Rollback), zap.Int64("release_seq", man.Seq), zap.String("reason", rel.Reason))
	return nil
}

// trust records man as the trusted release manifest, on disk first.
func (a *Agent) trust(rel *edgeloopv1.ModelRelease, man *artifact.ReleaseManifest) error {
	b, err := json.Marshal(trustedRelease{Manifest: rel.Manifest, Signature: rel.ManifestSignature, KeyID: rel.ManifestKeyId})
	if err != nil {
		return fmt.Errorf("agent: trusted release manifest: %w", err)
	}
	if err := writeFileSync(filepath.Join(a.modelsDir(), trustedFile), b); err != nil {
		return fmt.Errorf("agent: trusted release manifest: %w", err)
	}
	a.trusted = man
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

func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
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
