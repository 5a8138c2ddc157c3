// Package config binds command-line flags to EDGELOOP_* environment variables: a flag
// given on the command line wins, then its environment variable, then its default. Every
// default works on localhost.
package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

// EnvName is the environment variable that sets a flag: "kafka-brokers" is read from
// EDGELOOP_KAFKA_BROKERS.
func EnvName(flagName string) string {
	return "EDGELOOP_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(flagName))
}

// Parse parses args into fs, then sets every flag that args did not name from its
// environment variable (see EnvName), looked up with lookup (os.LookupEnv when nil).
func Parse(fs *flag.FlagSet, args []string, lookup func(string) (string, bool)) error {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		name := EnvName(f.Name)
		if v, ok := lookup(name); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("environment variable %s=%q: %w", name, v, err))
			}
		}
	})
	return errors.Join(errs...)
}

// SplitList splits a comma-separated flag value, dropping empty items and spaces.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// TLS holds the TLS settings of one client connection.
type TLS struct {
	// Enabled turns TLS on; the other fields refine it.
	Enabled bool
	// CAFile is a PEM bundle of the CAs to trust instead of the system's.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and key, for mutual TLS.
	CertFile, KeyFile string
	// InsecureSkipVerify turns off server certificate checks (tests only).
	InsecureSkipVerify bool
}

// RegisterTLS adds prefix-tls, prefix-tls-ca, prefix-tls-cert, prefix-tls-key and
// prefix-tls-insecure flags to fs and returns the settings they fill.
func RegisterTLS(fs *flag.FlagSet, prefix string) *TLS {
	t := &TLS{}
	fs.BoolVar(&t.Enabled, prefix+"-tls", false, "connect to "+prefix+" over TLS")
	fs.StringVar(&t.CAFile, prefix+"-tls-ca", "", "PEM CA bundle that signs the "+prefix+" server certificate")
	fs.StringVar(&t.CertFile, prefix+"-tls-cert", "", "PEM client certificate for "+prefix+" (mutual TLS)")
	fs.StringVar(&t.KeyFile, prefix+"-tls-key", "", "PEM client key for "+prefix+" (mutual TLS)")
	fs.BoolVar(&t.InsecureSkipVerify, prefix+"-tls-insecure", false, "skip "+prefix+" server certificate verification (tests only)")
	return t
}

// Config returns the *tls.Config, or nil when TLS is off.
func (t *TLS) Config() (*tls.Config, error) {
	if t == nil || !t.Enabled {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in for tests
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS CA file %s holds no PEM certificate", t.CAFile)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load TLS client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// ServerTLS is the certificate an HTTP server presents; with neither file set the server
// speaks plain HTTP.
type ServerTLS struct {
	// CertFile and KeyFile are the PEM certificate (chain) and its private key.
	CertFile, KeyFile string
}

// RegisterServerTLS adds the tls-cert and tls-key flags (server certificate and key of
// every HTTP server of the process) to fs and returns the settings they fill.
func RegisterServerTLS(fs *flag.FlagSet) *ServerTLS {
	t := &ServerTLS{}
	fs.StringVar(&t.CertFile, "tls-cert", "", "PEM certificate of the HTTP servers (API and ops); with -tls-key they serve HTTPS only (empty: plain HTTP)")
	fs.StringVar(&t.KeyFile, "tls-key", "", "PEM private key of -tls-cert")
	return t
}

// Config returns the server's *tls.Config, or nil when no certificate is set.
func (t *ServerTLS) Config() (*tls.Config, error) {
	if t == nil || (t.CertFile == "" && t.KeyFile == "") {
		return nil, nil
	}
	if t.CertFile == "" || t.KeyFile == "" {
		return nil, errors.New("server TLS: set both the certificate (-tls-cert) and its key (-tls-key)")
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("server TLS: load certificate %s and key %s: %w", t.CertFile, t.KeyFile, err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, nil
}
