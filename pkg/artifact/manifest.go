package artifact

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"regexp"
	"time"
)

// manifestDomain separates release-manifest signatures from artifact signatures: a
// signature over one can never be taken for a signature over the other.
const manifestDomain = "edgeloop release manifest v1\x00"

// ReleaseManifest is the signed statement of a release: everything a device needs to
// trust about it. The release message carries it as bytes with its signature; agents
// use nothing else of the message.
type ReleaseManifest struct {
	// Project is the project whose devices should run the model.
	Project string `json:"project"`
	// Version is the model version released.
	Version int64 `json:"version"`
	// SHA256 is the hex sha256 of the artifact's bytes; SizeBytes its length.
	SHA256    string `json:"sha256"`
	SizeBytes int64  `json:"size_bytes"`
	// Created is when the release was made.
	Created time.Time `json:"created"`
	// Seq orders a project's releases: it grows by one with every release change, so a
	// device accepts only a manifest newer than the one it trusts.
	Seq int64 `json:"seq"`
	// Rollback marks a deliberate return to an older version.
	Rollback bool `json:"rollback"`
	// PreviousVersion is the version released before this one (0: none).
	PreviousVersion int64 `json:"previous_version"`
	// Site, when set, makes this a site release: a model adapted to one device's site
	// that only the device of that id runs (an agent refuses a site release for another
	// device); "" is the project's release, which every device follows. A site's
	// releases have a sequence of their own (Seq).
	Site string `json:"site,omitempty"`
	// BaseVersion and BaseSeq name the project release a site release was adapted
	// from (its version and Seq). A device runs a site release only while the project
	// release it trusts is not newer than BaseSeq: a newer project release replaces
	// it on the device.
	BaseVersion int64 `json:"base_version,omitempty"`
	BaseSeq     int64 `json:"base_seq,omitempty"`
	// Revoked, on a site release, withdraws it (Version and SHA256 name the model
	// withdrawn): the device returns to the project release.
	Revoked bool `json:"revoked,omitempty"`
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Check reports what makes m unusable: a missing project, a version below 1, a sha256
// that is not 64 lower-case hex digits, or a sequence below 1.
func (m *ReleaseManifest) Check() error {
	switch {
	case m.Project == "":
		return fmt.Errorf("release manifest: %w: no project", ErrSignature)
	case m.Version < 1:
		return fmt.Errorf("release manifest: %w: version %d", ErrSignature, m.Version)
	case !sha256Hex.MatchString(m.SHA256):
		return fmt.Errorf("release manifest: %w: sha256 %q is not 64 hex digits", ErrSignature, m.SHA256)
	case m.Seq < 1:
		return fmt.Errorf("release manifest: %w: sequence %d", ErrSignature, m.Seq)
	case m.SizeBytes < 0:
		return fmt.Errorf("release manifest: %w: size %d", ErrSignature, m.SizeBytes)
	case m.Site == "" && (m.BaseVersion != 0 || m.BaseSeq != 0 || m.Revoked):
		return fmt.Errorf("release manifest: %w: a base or a revocation without a site", ErrSignature)
	case m.Site != "" && (m.BaseVersion < 1 || m.BaseSeq < 1):
		return fmt.Errorf("release manifest: %w: site release without the project release it was adapted from", ErrSignature)
	}
	return nil
}

func manifestDigest(data []byte) []byte {
	h := sha256.New()
	h.Write([]byte(manifestDomain))
	h.Write(data)
	return h.Sum(nil)
}

// SignManifest encodes m and signs it with priv. It returns the manifest's bytes and
// their signature.
func SignManifest(priv ed25519.PrivateKey, m *ReleaseManifest) (data, sig []byte, err error) {
	if err := m.Check(); err != nil {
		return nil, nil, err
	}
	data, err = json.Marshal(m)
	if err != nil {
		return nil, nil, fmt.Errorf("release manifest: %w", err)
	}
	return data, ed25519.Sign(priv, manifestDigest(data)), nil
}

// VerifyManifest checks that sig is pub's signature over data and decodes the manifest.
// Only a manifest that verifies and passes Check is returned.
func VerifyManifest(pub ed25519.PublicKey, data, sig []byte) (*ReleaseManifest, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("release manifest: %w: public key has %d bytes", ErrSignature, len(pub))
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("release manifest: %w: the release carries no manifest", ErrSignature)
	}
	if !ed25519.Verify(pub, manifestDigest(data), sig) {
		return nil, fmt.Errorf("release manifest: %w: not signed by key %s", ErrSignature, KeyID(pub))
	}
	var m ReleaseManifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("release manifest: %w: does not decode: %v", ErrSignature, err)
	}
	if err := m.Check(); err != nil {
		return nil, err
	}
	return &m, nil
}
