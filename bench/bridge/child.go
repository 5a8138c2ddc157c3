package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/edgeloop/edgeloop/pkg/bridge"
	"github.com/edgeloop/edgeloop/pkg/embedded"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/mqttbus"
)

// The bridge and the embedded servers run in child processes (this binary, started
// with -role), so that each one's CPU time can be read from /proc apart from the load
// generator's. A child runs until its stdin closes.

// childContext ends when stdin closes (the parent went away) or on SIGTERM/SIGINT.
func childContext() (context.Context, context.CancelFunc) {
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	return ctx, cancel
}

// runBridgeChild runs the bridge service as the bridge binary does, with a CPU profile
// to profile when set.
func runBridgeChild(kafkaAddr, mqttURL, prefix, clientID, profile string) {
	bridge.TuneGC()
	ctx, cancel := childContext()
	defer cancel()
	if profile != "" {
		f, err := os.Create(profile)
		check(err)
		check(pprof.StartCPUProfile(f))
		defer func() {
			pprof.StopCPUProfile()
			check(f.Close())
		}()
	}
	kcfg := kafkabus.Config{Brokers: []string{kafkaAddr}, ClientID: "bench-bridge", TopicPrefix: prefix}
	err := bridge.RunService(ctx, bridge.ServiceConfig{
		Kafka: kcfg, OpsAddr: "127.0.0.1:0", Partitions: partitions,
		MQTT:    mqttbus.Config{URL: mqttURL, ClientID: clientID},
		Options: bridge.Options{ShareGroup: clientID, ReleaseGroup: clientID},
	}, logger())
	if err != nil && ctx.Err() == nil {
		check(err)
	}
}

// runServersChild runs the standalone's embedded Kafka and MQTT servers and prints
// their addresses as "kafka=ADDR mqtt=URL".
func runServersChild() {
	ctx, cancel := childContext()
	defer cancel()
	dir, err := os.MkdirTemp("", "bench-bridge")
	check(err)
	defer os.RemoveAll(dir)
	srv, err := embedded.Start(embedded.Config{Dir: dir, Partitions: partitions}, logger())
	check(err)
	defer srv.Close()
	fmt.Printf("kafka=%s mqtt=%s\n", srv.KafkaAddr, srv.MQTTURL)
	<-ctx.Done()
}

// child is a started child process.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// startChild starts this binary with args; its stderr goes to ours.
func startChild(args ...string) *child {
	self, err := os.Executable()
	check(err)
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	check(err)
	stdout, err := cmd.StdoutPipe()
	check(err)
	check(cmd.Start())
	return &child{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
}

func (c *child) pid() string { return fmt.Sprint(c.cmd.Process.Pid) }

// line reads the child's next line of output.
func (c *child) line() string {
	s, err := c.out.ReadString('\n')
	check(err)
	return strings.TrimSpace(s)
}

// stop closes the child's stdin and waits for it to end (killing it after 30 s).
func (c *child) stop() {
	_ = c.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}
