package modules

import (
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"

	"github.com/edgeloop/edgeloop/pkg/artifact"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/mqttbus"
	"github.com/edgeloop/edgeloop/pkg/objstore/s3store"
)

// LocalServers are servers the process runs itself (the embedded module): every
// module's clients then talk to them instead of the flags' addresses.
type LocalServers struct {
	MQTTURL, KafkaAddr, S3Addr string
	AccessKey, SecretKey       string
	// Close stops them when the process ends.
	Close func()
}

// UseLocal points every client at s; the embedded module calls it in its Setup.
func (a *App) UseLocal(s *LocalServers) { a.local = s }

// Local returns the process's own servers, or nil.
func (a *App) Local() *LocalServers { return a.local }

// Kafka is the Kafka client config of one module: the flags', or the local broker's.
func (a *App) Kafka(clientID string) kafkabus.Config {
	if a.local != nil {
		return kafkabus.Config{Brokers: []string{a.local.KafkaAddr}, ClientID: clientID}
	}
	// Run checked the flags before any module started, so this cannot fail here.
	c, _ := a.Config.Kafka.Config(clientID)
	return c
}

// S3 is the object store config: the flags', or the local server's.
func (a *App) S3() s3store.Config {
	if a.local != nil {
		return s3store.Config{Endpoint: a.local.S3Addr, Bucket: "edgeloop", AccessKey: a.local.AccessKey, SecretKey: a.local.SecretKey}
	}
	return *a.Config.S3
}

// MQTT is the MQTT client config of one client id: the flags', or the local broker's.
func (a *App) MQTT(clientID string) (mqttbus.Config, error) {
	if a.local != nil {
		return mqttbus.Config{URL: a.local.MQTTURL, ClientID: clientID}, nil
	}
	return a.Config.MQTT.Config(clientID)
}

// PublicURL is where devices reach the API: -public-url, or the API's own address.
func (a *App) PublicURL() string {
	if a.Config.PublicURL != "" {
		return a.Config.PublicURL
	}
	return a.Scheme() + "://" + a.Config.HTTPAddr
}

// Scheme is the HTTP servers' scheme: https with -tls-cert, else http.
func (a *App) Scheme() string {
	if a.Config.TLS != nil && a.Config.TLS.CertFile != "" {
		return "https"
	}
	return "http"
}

// DataPath is a path in the standalone's data dir (-data-dir).
func (a *App) DataPath(elem ...string) string {
	return filepath.Join(append([]string{a.Config.Embedded.DataDir}, elem...)...)
}

// SigningKey is the model signing key: the -key file, or with local servers the data
// dir's, made at first start.
func (a *App) SigningKey() (ed25519.PrivateKey, error) {
	a.keyOnce.Do(func() {
		if a.local != nil {
			a.key, a.keyErr = localKey(a.DataPath("keys"))
			return
		}
		a.key, a.keyErr = artifact.ReadPrivateKey(a.Config.KeyFile)
		if a.keyErr != nil {
			a.keyErr = fmt.Errorf("signing key %s: %w (make one with `retrain keygen`)", a.Config.KeyFile, a.keyErr)
		}
	})
	return a.key, a.keyErr
}

// localKey loads the key pair in dir, making it on first start.
func localKey(dir string) (ed25519.PrivateKey, error) {
	kp, pp := filepath.Join(dir, "signing.key"), filepath.Join(dir, "signing.pub")
	if k, err := artifact.ReadPrivateKey(kp); err == nil {
		return k, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	pub, priv, err := artifact.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if err := artifact.WriteKeys(kp, pp, pub, priv); err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	return priv, nil
}
