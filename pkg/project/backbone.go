package project

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/objstore"
)

// MaxBackboneBytes bounds an uploaded backbone: torchvision's MobileNetV2 1.0 is 14 MB.
const MaxBackboneBytes = 128 << 20

// BackboneKey is the store key of a backbone uploaded as name whose bytes hash to sum:
// content-addressed, under its file name (which the model's lineage records).
func BackboneKey(sum, name string) string { return nn.BackbonePrefix + sum + "/" + name }

// PutBackbone keeps the weights file name (b, its bytes) in the store, once per content,
// and returns the model setting's backbone that names it ("s3:backbones/<sha256>/name")
// and its sha256. It checks the name only; the caller checks that b is weights.
func (s *Store) PutBackbone(ctx context.Context, name string, b []byte) (ref, sum string, err error) {
	if err := backboneName(name); err != nil {
		return "", "", err
	}
	h := sha256.Sum256(b)
	sum = hex.EncodeToString(h[:])
	key := BackboneKey(sum, name)
	_, err = s.S.Put(ctx, key, b, objstore.PutOptions{ContentType: "application/octet-stream", IfNoneMatch: true})
	if err != nil && !errors.Is(err, objstore.ErrPrecondition) { // already there: the same bytes
		return "", "", fmt.Errorf("backbone %s: %w", key, err)
	}
	return nn.StoreBackbone + key, sum, nil
}

// backboneName checks an uploaded backbone's file name: a base name of letters, digits,
// '.', '_' and '-', ending in .safetensors or .onnx.
func backboneName(name string) error {
	if name == "" || len(name) > 128 || strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" || strings.HasPrefix(name, ".") {
		return fmt.Errorf("%w: backbone name %q: want a file name of letters, digits, '.', '_' and '-' (at most 128)", ErrInvalid, name)
	}
	if !strings.HasSuffix(name, ".safetensors") && !strings.HasSuffix(name, ".onnx") {
		return fmt.Errorf("%w: backbone name %q: want a .safetensors or .onnx file", ErrInvalid, name)
	}
	return nil
}

// Backbone reads the bytes of spec's backbone, from the store ("s3:…") or the retrain
// machine's disk (a path), and checks them against spec.BackboneSHA256 when it is set.
// A missing object or file, or bytes that differ, is an error naming it.
func (s *Store) Backbone(ctx context.Context, spec nn.Spec) ([]byte, error) {
	var b []byte
	if key, ok := spec.BackboneKey(); ok {
		o, err := s.S.Get(ctx, key)
		if errors.Is(err, objstore.ErrNotFound) {
			return nil, fmt.Errorf("backbone %s: no such object in edgeloop's store (upload it with POST /api/v1/backbones): %w", spec.Backbone, err)
		}
		if err != nil {
			return nil, fmt.Errorf("backbone %s: %w", spec.Backbone, err)
		}
		b = o.Data
	} else {
		var err error
		if b, err = os.ReadFile(spec.Backbone); err != nil {
			return nil, fmt.Errorf("backbone: %w", err)
		}
	}
	if want := spec.BackboneSHA256; want != "" {
		if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != want {
			return nil, fmt.Errorf("backbone %s: its bytes have sha256 %x, the project's model setting wants %s: the file changed since the project was created",
				spec.Backbone, got, want)
		}
	}
	return b, nil
}

// pinBackbone reads a store backbone of a project being created and records its sha256
// in the setting, or checks the one given: a project cannot name a backbone that is not
// there, and its first training refuses one that changed afterwards.
func (s *Store) pinBackbone(ctx context.Context, m *nn.Spec) error {
	if m == nil {
		return nil
	}
	if _, ok := m.BackboneKey(); !ok {
		return nil
	}
	b, err := s.Backbone(ctx, *m)
	if err != nil {
		return fmt.Errorf("%w: model %v", ErrInvalid, err) // 400, not the 404 of a missing object
	}
	if m.BackboneSHA256 == "" {
		h := sha256.Sum256(b)
		m.BackboneSHA256 = hex.EncodeToString(h[:])
	}
	return nil
}
