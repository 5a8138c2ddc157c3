package artifact

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// ErrSignature says a signature or digest does not verify.
var ErrSignature = errors.New("signature does not verify")

// GenerateKey makes a new ed25519 signing key.
func GenerateKey() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	return ed25519.GenerateKey(rand.Reader)
}

// KeyID names a public key: the first 8 bytes of its sha256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:8])
}

// Sign signs data: the signature covers the 32-byte sha256 digest of data.
func Sign(priv ed25519.PrivateKey, data []byte) []byte {
	d := sha256.Sum256(data)
	return ed25519.Sign(priv, d[:])
}

// Verify checks that data hashes to wantSHA256 (hex; skipped when empty) and that sig
// is pub's signature over that digest.
func Verify(pub ed25519.PublicKey, data []byte, wantSHA256 string, sig []byte) error {
	d := sha256.Sum256(data)
	if wantSHA256 != "" && hex.EncodeToString(d[:]) != wantSHA256 {
		return fmt.Errorf("%w: sha256 is %x, expected %s", ErrSignature, d, wantSHA256)
	}
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: public key has %d bytes", ErrSignature, len(pub))
	}
	if !ed25519.Verify(pub, d[:], sig) {
		return fmt.Errorf("%w: ed25519 signature by key %s does not match sha256 %x", ErrSignature, KeyID(pub), d)
	}
	return nil
}

// WriteKeys writes priv as PKCS#8 PEM (mode 0600) and its public key as PKIX PEM.
func WriteKeys(privPath, pubPath string, pub ed25519.PublicKey, priv ed25519.PrivateKey) error {
	pk, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	pu, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	if err := os.WriteFile(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pu}), 0o644)
}

// ParsePrivateKey reads a PKCS#8 PEM ed25519 private key.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("private key: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key: %T, want ed25519", k)
	}
	return ek, nil
}

// ParsePublicKey reads a PKIX PEM ed25519 public key.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("public key: no PEM block")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	ek, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key: %T, want ed25519", k)
	}
	return ek, nil
}

// ReadPrivateKey and ReadPublicKey read key files.
func ReadPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParsePrivateKey(b)
}

// ReadPublicKey reads a public key file.
func ReadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParsePublicKey(b)
}
