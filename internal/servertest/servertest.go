// Package servertest gives tests the real servers they run against: Kafka, MinIO and
// Mosquitto, installed and started by the deploy/local scripts (cached, so only the
// first run is slow). The shared instances are started once and reused by every test
// package; a test that stops a server gets a dedicated instance of its own.
//
// EDGELOOP_TEST_KAFKA, EDGELOOP_TEST_S3 and EDGELOOP_TEST_MQTT point the tests at
// servers that are already running instead.
package servertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/objstore/s3store"
)

// Default loopback ports of the shared instances (deploy/local's defaults).
const (
	KafkaPort     = 19092
	MinIOPort     = 19000
	MosquittoPort = 11883
)

// RepoRoot returns the repository root (the directory holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("servertest: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// script runs deploy/local/<name>.sh with args and env.
func script(t testing.TB, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(RepoRoot(t), "deploy", "local", name+".sh"), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("deploy/local/%s.sh %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// Install installs kind ("kafka", "minio" or "mosquitto") once, as its deploy/local
// script does, for a test that runs the server's binary itself.
func Install(t testing.TB, kind string) {
	t.Helper()
	script(t, nil, kind, "install")
}

// Kafka returns a client config for the shared test Kafka, starting it if needed.
func Kafka(t testing.TB) kafkabus.Config {
	t.Helper()
	addr := os.Getenv("EDGELOOP_TEST_KAFKA")
	if addr == "" {
		script(t, nil, "kafka", "start")
		addr = "127.0.0.1:" + strconv.Itoa(KafkaPort)
	}
	cfg := kafkabus.Config{Brokers: []string{addr}, ClientID: "test"}
	waitKafka(t, cfg)
	return cfg
}

func waitKafka(t testing.TB, cfg kafkabus.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		err := kafkabus.Ping(ctx, cfg)
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("kafka %v not ready: %v", cfg.Brokers, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// S3 returns a store config for the shared test MinIO with a fresh bucket of its own,
// starting MinIO if needed.
func S3(t testing.TB) s3store.Config {
	t.Helper()
	addr := os.Getenv("EDGELOOP_TEST_S3")
	if addr == "" {
		script(t, nil, "minio", "start")
		addr = "127.0.0.1:" + strconv.Itoa(MinIOPort)
	}
	return s3store.Config{Endpoint: addr, Bucket: "t-" + RandomID(8), AccessKey: "edgeloop", SecretKey: "edgeloop-secret"}
}

// MQTT returns the URL of the shared test Mosquitto, starting it if needed.
func MQTT(t testing.TB) string {
	t.Helper()
	if u := os.Getenv("EDGELOOP_TEST_MQTT"); u != "" {
		return u
	}
	script(t, nil, "mosquitto", "start")
	return "tcp://127.0.0.1:" + strconv.Itoa(MosquittoPort)
}

// Server is a dedicated server instance that a test may stop and start again.
type Server struct {
	t    testing.TB
	kind string
	inst string
	env  []string
	// Addr is host:port.
	Addr string
}

// Stop stops the server; its data stays.
func (s *Server) Stop() { s.t.Helper(); script(s.t, s.env, s.kind, "stop", s.inst) }

// Kill ends the server with SIGKILL, as a crash or a power cut would: it saves
// nothing on the way out. Start brings it back on the same port and data.
func (s *Server) Kill() {
	s.t.Helper()
	run := os.Getenv("EDGELOOP_RUN")
	if run == "" {
		run = filepath.Join(os.TempDir(), "edgeloop-local")
	}
	pidfile := filepath.Join(run, s.inst, s.kind+".pid")
	b, err := os.ReadFile(pidfile)
	if err != nil {
		s.t.Fatalf("servertest: kill %s: %v", s.inst, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		s.t.Fatalf("servertest: kill %s: pid file %s: %v", s.inst, pidfile, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		s.t.Fatalf("servertest: kill -9 %s (pid %d): %v", s.inst, pid, err)
	}
	for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(50 * time.Millisecond)
	}
}

// Start starts it again on the same port and data.
func (s *Server) Start() { s.t.Helper(); script(s.t, s.env, s.kind, "start", s.inst) }

// StartDedicated starts a private instance of kind ("kafka", "minio" or "mosquitto") on
// free ports, purged when the test ends.
func StartDedicated(t testing.TB, kind string) *Server {
	t.Helper()
	port := freePorts(t, 2)
	envName := map[string]string{"kafka": "KAFKA_PORT", "minio": "MINIO_PORT", "mosquitto": "MOSQUITTO_PORT"}[kind]
	if envName == "" {
		t.Fatalf("servertest: unknown server kind %q", kind)
	}
	s := &Server{
		t: t, kind: kind, inst: fmt.Sprintf("%s-%d", kind, port),
		env:  []string{fmt.Sprintf("%s=%d", envName, port)},
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
	}
	t.Cleanup(func() { script(t, s.env, kind, "purge", s.inst) })
	s.Start()
	if kind == "kafka" {
		waitKafka(t, kafkabus.Config{Brokers: []string{s.Addr}})
	}
	return s
}

// freePorts returns the first of n consecutive free loopback ports.
func freePorts(t testing.TB, n int) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		ok := true
		for i := 1; i < n; i++ {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i)))
			if err != nil {
				ok = false
				break
			}
			_ = l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("servertest: no free ports")
	return 0
}

// RandomID returns n random hex characters, for unique topic, bucket and group names.
func RandomID(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}
