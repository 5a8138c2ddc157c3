// Package registry keeps a project's model versions and its release in object storage,
// and publishes release changes. A version is its signed artifact, metrics.json, the
// report picture, its lineage and the gate's decision; it becomes visible only when its
// manifest — written last, create-only — exists, so that no half-written version is
// ever seen. The release is a pointer changed by compare-and-swap; each change is
// produced as a ModelRelease on edgeloop.models.v1, which the bridge turns into the
// retained MQTT release the devices follow.
//
//	projects/p/models/v<N>/model-e<T>.elm     signed artifact (T: the writer's fencing token)
//	projects/p/models/v<N>/metrics-e<T>.json  training metrics
//	projects/p/models/v<N>/report-e<T>.png    training report
//	projects/p/models/v<N>/version.json       Version (the manifest, last; names the files)
//	projects/p/release.json              Release (CAS)
//	projects/p/sites/<device>/release.json  a site's Release (CAS; site.go)
package registry

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/edgeloop/edgeloop/pkg/artifact"
	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/message"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/project"
	"github.com/edgeloop/edgeloop/pkg/retry"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// Decision is the gate's verdict on a candidate.
type Decision struct {
	Published bool `json:"published"`
	// Verdict is "first" (the first model, released without a comparison), "published",
	// "held" (not enough evidence either way: too few test examples, or a difference the
	// test cannot tell from chance; an admin can still promote it) or "refused" (evidence
	// that it is worse, overall or on a class, or a failed training). Empty in versions
	// stored before the paired gate.
	Verdict string `json:"verdict,omitempty"`
	// Metric is "accuracy" or "map50"; Candidate and Current are on the same frozen
	// test split (Current is 0 without a release).
	Metric    string  `json:"metric"`
	Candidate float64 `json:"candidate"`
	Current   float64 `json:"current"`
	// TestExamples is the size of the test split they were compared on.
	TestExamples int `json:"test_examples"`
	// PerClass are the per-class figures (candidate, current).
	PerClass map[string][2]float64 `json:"per_class,omitempty"`
	Reasons  []string              `json:"reasons"`
	// Evidence is the paired comparison the gate decided on (absent for a first model
	// and when the test split was too small to compare on).
	Evidence *Evidence `json:"evidence,omitempty"`
}

// Evidence is a paired comparison of candidate and release on the same test examples.
type Evidence struct {
	// Method is "exact McNemar" (classification) or "paired bootstrap" (detection:
	// images resampled Resamples times with Seed).
	Method    string `json:"method"`
	Resamples int    `json:"resamples,omitempty"`
	Seed      uint64 `json:"seed,omitempty"`
	// Confidence is the gate's; Require ("better" or "not_worse") and Threshold say
	// what the lower bound had to clear: above MinGain, or at least −Margin.
	Confidence float64 `json:"confidence"`
	Require    string  `json:"require"`
	Threshold  float64 `json:"threshold"`
	// N is the paired test examples (images, for detection).
	N int `json:"n"`
	// Gained counts test examples the candidate gets right and the release wrong, Lost
	// the other way round (classification; 0 for detection).
	Gained int `json:"gained"`
	Lost   int `json:"lost"`
	// Difference is candidate minus release on the headline metric; Lower and Upper
	// bound it, each one-sided at Confidence.
	Difference float64 `json:"difference"`
	Lower      float64 `json:"lower"`
	Upper      float64 `json:"upper"`
	// P is the one-sided p-value of "the candidate is not better".
	P float64 `json:"p"`
	// PerClassPolicy is the project's ("significant", "count" or "off").
	PerClassPolicy string          `json:"per_class_policy"`
	Classes        []ClassEvidence `json:"classes,omitempty"`
}

// ClassEvidence is one class's paired change.
type ClassEvidence struct {
	Class string `json:"class"`
	// N is the class's test examples (ground-truth objects, for detection).
	N int `json:"n"`
	// Gained and Lost are the class's examples the candidate newly gets right or
	// wrong (objects newly found or missed, for detection).
	Gained int `json:"gained"`
	Lost   int `json:"lost"`
	// Candidate and Current are the class's accuracy (AP@0.5, for detection).
	Candidate float64 `json:"candidate"`
	Current   float64 `json:"current"`
	// P is the one-sided p-value of "the class did not get worse"; Alpha the level it
	// was held against (Holm-corrected over the classes).
	P     float64 `json:"p"`
	Alpha float64 `json:"alpha,omitempty"`
	// Regressed says the class refused the candidate.
	Regressed bool `json:"regressed"`
}

// Version is a model version's manifest.
type Version struct {
	Project   string             `json:"project"`
	Version   int64              `json:"version"`
	SHA256    string             `json:"sha256"`
	SizeBytes int64              `json:"size_bytes"`
	KeyID     string             `json:"key_id"`
	Signature []byte             `json:"signature"`
	CreatedAt time.Time          `json:"created_at"`
	Parent    int64              `json:"parent"`
	Snapshot  string             `json:"dataset_snapshot"`
	Trigger   string             `json:"trigger"`
	Engine    string             `json:"engine"`
	Seconds   float64            `json:"seconds"`
	Metrics   map[string]float64 `json:"metrics"`
	Decision  Decision           `json:"decision"`
	Classes   []string           `json:"classes"`
	Task      string             `json:"task"`
	// Mode is how it was trained: replay (the release fine-tuned on the new examples and
	// a replay sample), full (on the whole train split) or scratch.
	Mode string `json:"mode,omitempty"`
	// Examples are its training's example counts: train, new, replayed, available.
	Examples map[string]int `json:"examples,omitempty"`
	// Site is the device a site candidate (mode adapt-bn:SITE) was adapted for: when
	// published it becomes that site's release (SetSiteRelease), never the project's.
	Site string `json:"site,omitempty"`
	// Files maps a version's file names (model.elm, metrics.json, report.png) to the
	// objects holding them in its folder; a name not in it is stored under itself
	// (versions written before fencing).
	Files map[string]string `json:"files,omitempty"`
}

// Release is the version a project's devices should run, with its history.
type Release struct {
	Version  int64           `json:"version"`
	SHA256   string          `json:"sha256"`
	At       time.Time       `json:"at"`
	Reason   string          `json:"reason"`
	By       string          `json:"by"`
	Rollback bool            `json:"rollback"`
	History  []ReleaseChange `json:"history"`
	Rev      int             `json:"rev"`
	// Manifest is the signed artifact.ReleaseManifest of this release (its Seq is Rev),
	// ManifestSig its signature by the key named ManifestKeyID. Devices trust only it.
	Manifest      []byte `json:"manifest,omitempty"`
	ManifestSig   []byte `json:"manifest_signature,omitempty"`
	ManifestKeyID string `json:"manifest_key_id,omitempty"`
	// Site, BaseVersion, BaseSeq and Revoked are a site release's (SiteRelease): the
	// device it is for, the project release it was adapted from (version and Rev), and
	// whether it was withdrawn. Empty on the project's release.
	Site        string `json:"site,omitempty"`
	BaseVersion int64  `json:"base_version,omitempty"`
	BaseSeq     int64  `json:"base_seq,omitempty"`
	Revoked     bool   `json:"revoked,omitempty"`
	// ReadaptedFor is the Rev of the project release a re-adaptation of the site was
	// last asked for (ClaimReadaptation): it is asked for once per project release.
	ReadaptedFor int64 `json:"readapted_for,omitempty"`
}

// ReleaseChange is one past release.
type ReleaseChange struct {
	Version int64     `json:"version"`
	At      time.Time `json:"at"`
	Reason  string    `json:"reason"`
	By      string    `json:"by"`
	Metric  string    `json:"metric"`
	// Site is the device of a site release's change ("" for the project's release).
	Site string `json:"site,omitempty"`
}

// Registry is one deployment's model registry.
type Registry struct {
	S    objstore.Store
	prod *kafkabus.Producer
	kcfg kafkabus.Config
	// PublicURL is how devices reach the API (e.g. http://curator:8080): artifact URLs
	// in releases start with it.
	PublicURL string
	// Key signs release manifests; without it SetRelease refuses (ErrNoKey).
	Key ed25519.PrivateKey
	// Corrupt hears of the version manifests and site releases that listings pass over
	// because they do not decode: one corrupt document hides only itself.
	Corrupt objstore.OnCorrupt
}

// ErrNoKey says this registry has no signing key, so it cannot change the release.
var ErrNoKey = errors.New("registry has no signing key: releases cannot be signed")

// New returns a registry; prod may be nil for read-only use.
func New(s objstore.Store, prod *kafkabus.Producer, kcfg kafkabus.Config, publicURL string) *Registry {
	return &Registry{S: s, prod: prod, kcfg: kcfg, PublicURL: strings.TrimRight(publicURL, "/")}
}

func versionPrefix(p string, v int64) string { return fmt.Sprintf("projects/%s/models/v%d/", p, v) }
func releaseKey(p string) string             { return "projects/" + p + "/release.json" }

// sign signs manifest m with the registry's key and keeps it, its signature and the
// key's ID in rel.
func (r *Registry) sign(rel *Release, m *artifact.ReleaseManifest) error {
	data, sig, err := artifact.SignManifest(r.Key, m)
	if err != nil {
		return err
	}
	rel.Manifest, rel.ManifestSig, rel.ManifestKeyID = data, sig, artifact.KeyID(r.Key.Public().(ed25519.PublicKey))
	return nil
}

// ErrNotFound says there is no such version or release.
var ErrNotFound = objstore.ErrNotFound

// Versions lists the visible versions, oldest first; a version whose manifest does not
// decode is passed over (and reported to r.Corrupt).
func (r *Registry) Versions(ctx context.Context, project string) ([]*Version, error) {
	out, err := listJSON[Version](ctx, r, "projects/"+project+"/models/", "/version.json")
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, err
}

// listJSON reads every JSON document under prefix whose key ends in suffix, passing
// over those deleted since the listing and those that do not decode (reported to
// r.Corrupt).
func listJSON[T any](ctx context.Context, r *Registry, prefix, suffix string) ([]*T, error) {
	var out []*T
	err := r.S.List(ctx, prefix, func(i objstore.Info) error {
		if !strings.HasSuffix(i.Key, suffix) {
			return nil
		}
		var v T
		_, err := objstore.GetJSON(ctx, r.S, i.Key, &v)
		switch {
		case errors.Is(err, objstore.ErrNotFound):
			return nil
		case errors.Is(err, objstore.ErrCorrupt):
			r.Corrupt.Report(i.Key, err)
			return nil
		case err != nil:
			return err
		}
		out = append(out, &v)
		return nil
	})
	return out, err
}

// Version reads one version's manifest.
func (r *Registry) Version(ctx context.Context, project string, v int64) (*Version, error) {
	var out Version
	if _, err := objstore.GetJSON(ctx, r.S, versionPrefix(project, v)+"version.json", &out); err != nil {
		return nil, fmt.Errorf("model %s v%d: %w", project, v, err)
	}
	return &out, nil
}

// NextVersion is one above the highest version whose manifest exists, decodable or not
// (a corrupt manifest still holds its number; a folder without one, a trainer killed
// before writing it, is reused).
func (r *Registry) NextVersion(ctx context.Context, project string) (int64, error) {
	prefix := "projects/" + project + "/models/"
	var last int64
	err := r.S.List(ctx, prefix, func(i objstore.Info) error {
		dir, ok := strings.CutSuffix(strings.TrimPrefix(i.Key, prefix), "/version.json")
		if !ok {
			return nil
		}
		if v, err := strconv.ParseInt(strings.TrimPrefix(dir, "v"), 10, 64); err == nil && strings.HasPrefix(dir, "v") {
			last = max(last, v)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("versions of %s: %w", project, err)
	}
	return last + 1, nil
}

// File reads one of a version's files: model.elm, metrics.json or report.png.
func (r *Registry) File(ctx context.Context, project string, v int64, name string) ([]byte, error) {
	switch name {
	case "model.elm", "metrics.json", "report.png":
	default:
		return nil, fmt.Errorf("model file %q: %w", name, ErrNotFound)
	}
	ver, err := r.Version(ctx, project, v)
	if err != nil {
		return nil, err // not visible
	}
	obj := name
	if f, ok := ver.Files[name]; ok {
		obj = f
	}
	o, err := r.S.Get(ctx, versionPrefix(project, v)+obj)
	if err != nil {
		return nil, err
	}
	return o.Data, nil
}

// Model reads and decodes a version's artifact.
func (r *Registry) Model(ctx context.Context, project string, v int64) (*artifact.Model, error) {
	b, err := r.File(ctx, project, v, "model.elm")
	if err != nil {
		return nil, err
	}
	return artifact.Decode(b)
}

// ErrVersionTaken says another writer created that version first.
var ErrVersionTaken = errors.New("model version already exists")

// Fence guards a writer's writes with a fencing token: the epoch of the lease under
// which it writes.
type Fence struct {
	// Token is the writer's lease epoch. The objects it creates carry it in their
	// names, so two writers of one version never write the same object.
	Token int64
	// Check, when set, is called before every write; it fails once the writer's lease
	// is lost, and the write does not happen.
	Check func(ctx context.Context) error
}

// Held runs Check (nil when none): it fails once the writer may no longer write.
func (f Fence) Held(ctx context.Context) error {
	if f.Check == nil {
		return nil
	}
	return f.Check(ctx)
}

// Put stores a new version: its files first, each create-only under a name carrying
// the fence's token, the manifest last and create-only, so that of two writers of one
// version the one whose manifest lands first wins and the other overwrites nothing.
// The fence is checked before every write. The artifact is signed here with key.
func (r *Registry) Put(ctx context.Context, v *Version, model []byte, metrics []byte, report []byte, key ed25519.PrivateKey, fence Fence) error {
	if _, err := artifact.Decode(model); err != nil {
		return err
	}
	v.SHA256, v.SizeBytes = artifact.SHA256(model), int64(len(model))
	v.Signature = artifact.Sign(key, model)
	v.KeyID = artifact.KeyID(key.Public().(ed25519.PublicKey))
	if v.CreatedAt.IsZero() {
		v.CreatedAt = time.Now().UTC()
	}
	pre := versionPrefix(v.Project, v.Version)
	if _, err := r.S.Stat(ctx, pre+"version.json"); err == nil {
		return fmt.Errorf("%s v%d: %w", v.Project, v.Version, ErrVersionTaken)
	}
	tag := "e" + strconv.FormatInt(fence.Token, 10)
	if fence.Token <= 0 { // an unfenced writer: a name no other writer picks
		tag = "t" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	v.Files = map[string]string{}
	for _, f := range []struct {
		name, ct string
		data     []byte
	}{{"model.elm", "application/octet-stream", model}, {"metrics.json", "application/json", metrics}, {"report.png", "image/png", report}} {
		if f.data == nil {
			continue
		}
		if err := fence.Held(ctx); err != nil {
			return fmt.Errorf("%s v%d %s: %w", v.Project, v.Version, f.name, err)
		}
		ext := path.Ext(f.name)
		obj := strings.TrimSuffix(f.name, ext) + "-" + tag + ext
		_, err := r.S.Put(ctx, pre+obj, f.data, objstore.PutOptions{ContentType: f.ct, IfNoneMatch: true})
		if errors.Is(err, objstore.ErrPrecondition) {
			return fmt.Errorf("%s v%d: %s exists: fencing token %d used twice: %w", v.Project, v.Version, obj, fence.Token, ErrVersionTaken)
		}
		if err != nil {
			return fmt.Errorf("%s v%d %s: %w", v.Project, v.Version, f.name, err)
		}
		v.Files[f.name] = obj
	}
	if err := fence.Held(ctx); err != nil {
		return fmt.Errorf("%s v%d manifest: %w", v.Project, v.Version, err)
	}
	_, err := objstore.PutJSON(ctx, r.S, pre+"version.json", v, objstore.PutOptions{IfNoneMatch: true})
	if errors.Is(err, objstore.ErrPrecondition) {
		return fmt.Errorf("%s v%d: %w", v.Project, v.Version, ErrVersionTaken)
	}
	return err
}

// Current reads the release (ErrNotFound when none yet).
func (r *Registry) Current(ctx context.Context, project string) (*Release, error) {
	var rel Release
	if _, err := objstore.GetJSON(ctx, r.S, releaseKey(project), &rel); err != nil {
		return nil, fmt.Errorf("release of %s: %w", project, err)
	}
	return &rel, nil
}

// SetRelease points the release at version v by compare-and-swap and produces the
// ModelRelease. A rollback may go to an older version; otherwise the release only moves
// forward. It returns the new release.
func (r *Registry) SetRelease(ctx context.Context, project string, v int64, reason, by string, rollback bool) (*Release, error) {
	if len(r.Key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("release of %s v%d: %w", project, v, ErrNoKey)
	}
	ver, err := r.Version(ctx, project, v)
	if err != nil {
		return nil, err
	}
	if ver.Site != "" {
		return nil, fmt.Errorf("release of %s v%d: %w", project, v, ErrSiteVersion)
	}
	var out Release
	_, err = objstore.Update(ctx, r.S, releaseKey(project), func(rel *Release, exists bool) error {
		if exists && rel.Version == v {
			out = *rel
			return objstore.ErrNoChange
		}
		if exists && v < rel.Version && !rollback {
			return fmt.Errorf("release of %s is v%d: moving to older v%d needs a rollback", project, rel.Version, v)
		}
		now := time.Now().UTC()
		metric := ""
		if d := ver.Decision; d.Metric != "" && d.TestExamples > 0 {
			metric = fmt.Sprintf("%s %.3f", d.Metric, d.Candidate)
		}
		previous := int64(0)
		if exists {
			previous = rel.Version
		}
		rel.History = append(rel.History, ReleaseChange{Version: v, At: now, Reason: reason, By: by, Metric: metric})
		rel.Version, rel.SHA256, rel.At, rel.Reason, rel.By, rel.Rollback = v, ver.SHA256, now, reason, by, rollback
		rel.Rev++
		m := &artifact.ReleaseManifest{Project: project, Version: v, SHA256: ver.SHA256, SizeBytes: ver.SizeBytes,
			Created: now, Seq: int64(rel.Rev), Rollback: rollback, PreviousVersion: previous}
		if err := r.sign(rel, m); err != nil {
			return fmt.Errorf("release of %s v%d: %w", project, v, err)
		}
		out = *rel
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The release has moved: the devices must hear of it, whatever it takes.
	err = retry.Do(ctx, retry.Backoff{Max: 5 * time.Second}, func(ctx context.Context) error { return r.Announce(ctx, project) }, nil)
	return &out, err
}

// Announce produces the current release as a ModelRelease (idempotent for devices: the
// same version again changes nothing).
func (r *Registry) Announce(ctx context.Context, project string) error {
	rel, err := r.Current(ctx, project)
	if err != nil {
		return err
	}
	ver, err := r.Version(ctx, project, rel.Version)
	if err != nil {
		return err
	}
	return r.announce(ctx, project, rel, ver)
}

// announce produces rel (of version ver) as a ModelRelease: a site release carries its
// site, which routes it to that device's topic.
func (r *Registry) announce(ctx context.Context, project string, rel *Release, ver *Version) error {
	task := edgeloopv1.Task_TASK_CLASSIFY
	if ver.Task == "detect" {
		task = edgeloopv1.Task_TASK_DETECT
	}
	msg := &edgeloopv1.ModelRelease{
		Project: project, Version: ver.Version, Task: task, ArtifactUrl: r.ArtifactURL(project, ver.Version),
		Sha256: ver.SHA256, Signature: ver.Signature, KeyId: ver.KeyID, SizeBytes: ver.SizeBytes, Rollback: rel.Rollback,
		ReleasedAt: timestamppb.New(rel.At), ParentVersion: ver.Parent, Metrics: ver.Metrics, Reason: rel.Reason, ClassNames: ver.Classes,
		Manifest: rel.Manifest, ManifestSignature: rel.ManifestSig, ManifestKeyId: rel.ManifestKeyID, Site: rel.Site,
	}
	b, _ := proto.Marshal(msg)
	if r.prod == nil {
		return retry.Permanent(errors.New("registry: no producer to announce releases with"))
	}
	return r.prod.Publish(ctx, r.kcfg.Topic(contract.TopicModels), &message.Message{Key: []byte(project), Value: b})
}

// ArtifactURL is where devices download a version.
func (r *Registry) ArtifactURL(project string, v int64) string {
	return r.PublicURL + "/api/v1/projects/" + project + "/models/" + strconv.FormatInt(v, 10) + "/artifact"
}

// Metrics decodes a version's metrics.json into v.
func (r *Registry) Metrics(ctx context.Context, project string, version int64, v any) error {
	b, err := r.File(ctx, project, version, "metrics.json")
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// RequestTraining asks the retrain service for a training of project now, whatever its
// trigger policy: a BatchApproved whose batch id starts with "manual-", then the mode
// asked for, if any: "full" (the release fine-tuned on the whole train split),
// "scratch" (fresh weights), "replay" or "adapt-bn" (the release with its batch norm
// statistics re-estimated on the project's recent frames) or "adapt-bn:SITE" (on the
// frames of one site, a device id, only); "" lets the policy decide.
func (r *Registry) RequestTraining(ctx context.Context, pid, by, mode string) (string, error) {
	id := fmt.Sprintf("manual-%d", time.Now().UnixNano())
	base, site, bySite := strings.Cut(mode, ":")
	switch {
	case mode == "":
	case bySite && base == "adapt-bn":
		if err := contract.CheckID("site (device)", site); err != nil {
			return "", fmt.Errorf("%w: training mode %q: %v", project.ErrInvalid, mode, err)
		}
		id = fmt.Sprintf("manual-adapt-bn.%s-%d", site, time.Now().UnixNano())
	case !bySite && (mode == "replay" || mode == "full" || mode == "scratch" || mode == "adapt-bn"):
		id = fmt.Sprintf("manual-%s-%d", mode, time.Now().UnixNano())
	default:
		return "", fmt.Errorf("%w: training mode %q: want replay, full, scratch, adapt-bn or adapt-bn:SITE", project.ErrInvalid, mode)
	}
	b, _ := proto.Marshal(&edgeloopv1.BatchApproved{Project: pid, BatchId: id, ApprovedAt: timestamppb.Now(), ApprovedBy: by})
	if r.prod == nil {
		return "", errors.New("registry: no producer")
	}
	return id, r.prod.Publish(ctx, r.kcfg.Topic(contract.TopicBatchesApproved), &message.Message{Key: []byte(pid), Value: b})
}
