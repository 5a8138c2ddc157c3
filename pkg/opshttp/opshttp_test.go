package opshttp_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/opshttp"
)

// selfSigned writes a certificate and key for 127.0.0.1 and returns their paths and a
// pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "edgeloop test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// serve runs Serve until the test ends and returns the bound address.
func serve(t *testing.T, h http.Handler, opts ...opshttp.Option) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- opshttp.Serve(ctx, "127.0.0.1:0", h, zap.NewNop(), func(a string) { addr <- a }, opts...)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case a := <-addr:
		return a
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	return ""
}

// TestServeTLS: with -tls-cert and -tls-key the server speaks only TLS, with the
// certificate given.
func TestServeTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	tc, err := (&config.ServerTLS{CertFile: certFile, KeyFile: keyFile}).Config()
	if err != nil || tc == nil {
		t.Fatalf("server TLS config: %v %v", tc, err)
	}
	mux := http.NewServeMux()
	opshttp.Mount(mux, opshttp.NewRegistry())
	addr := serve(t, mux, opshttp.WithTLS(tc))
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("GET https: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil || !strings.Contains(string(body), "ok") {
		t.Fatalf("GET https /healthz: %d %s (TLS %v)", resp.StatusCode, body, resp.TLS != nil)
	}
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil && resp.StatusCode == 200 {
		t.Fatal("plain HTTP answered 200 on a TLS server")
	}
	// Half a pair, or files that are not a certificate, is an error, not plain HTTP.
	if _, err := (&config.ServerTLS{CertFile: certFile}).Config(); err == nil {
		t.Error("a certificate without its key: no error")
	}
	if _, err := (&config.ServerTLS{CertFile: keyFile, KeyFile: keyFile}).Config(); err == nil {
		t.Error("a key given as the certificate: no error")
	}
	if tc, err := (&config.ServerTLS{}).Config(); tc != nil || err != nil {
		t.Errorf("no files: %v %v, want plain HTTP (nil, nil)", tc, err)
	}
}

// TestServeTimesOutSlowClients: a client that sends its headers and then trickles (or
// never sends) the body it announced does not hold a connection and a handler forever.
func TestServeTimesOutSlowClients(t *testing.T) {
	readErr := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
	})
	addr := serve(t, h, opshttp.WithTimeouts(opshttp.Timeouts{ReadHeader: time.Second, Read: 300 * time.Millisecond, Write: time.Second, Idle: time.Second}))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nabc"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-readErr:
		if err == nil {
			t.Fatal("the handler read a body that never came")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a stalled upload held its handler for 5 s with a read timeout of 300 ms")
	}
	if d := opshttp.DefaultTimeouts(); d.ReadHeader <= 0 || d.Read <= 0 || d.Write <= 0 || d.Idle <= 0 {
		t.Errorf("default timeouts %+v: every one must be set", d)
	}
}
