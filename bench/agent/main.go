// Command agent benchmarks the edge agent: frames/s and latency of inference + sampling
// per frame for both tasks, the outbox's throughput with and without fsync, and the
// agent binary's size and resident memory while it serves simulated frames.
//
//	go run ./bench/agent -binary bin/edge-agent
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/agent"
	"github.com/edgeloop/edgeloop/pkg/artifact"
	"github.com/edgeloop/edgeloop/pkg/datasets"
	"github.com/edgeloop/edgeloop/pkg/drift"
	"github.com/edgeloop/edgeloop/pkg/mnist"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/outbox"
	"github.com/edgeloop/edgeloop/pkg/raster"
	"github.com/edgeloop/edgeloop/pkg/scenes"
)

func main() {
	binary := flag.String("binary", "", "edge-agent binary to measure size and RSS of (empty: skip)")
	frames := flag.Int("frames", 1000, "frames per measurement")
	flag.Parse()
	dir, err := os.MkdirTemp("", "bench-agent")
	check(err)
	defer os.RemoveAll(dir)
	tr, _, err := mnist.Load("")
	check(err)
	none, _ := drift.Get(drift.None)

	fmt.Printf("\nEdge agent: inference + sampling per frame (%d frames, %d cores, %s)\n\n", *frames, runtime.NumCPU(), blas())
	fmt.Println("| model      | callers | frames/s | p50 ms | p99 ms | sampled |")
	fmt.Println("|------------|---------|----------|--------|--------|---------|")
	for _, task := range []nn.Task{nn.Classify, nn.Detect} {
		var ims []*raster.Image
		a := nn.ClassifierArch(10)
		if task == nn.Classify {
			for _, s := range datasets.Digits(tr, 0, 256, "b", none, 1) {
				ims = append(ims, s.Image)
			}
		} else {
			a = nn.DetectorArch(10)
			sc, err := scenes.Generate(tr, 256, 1, scenes.Config{}, none)
			check(err)
			for _, s := range sc {
				ims = append(ims, s.Image)
			}
		}
		modelPath := writeModel(filepath.Join(dir, string(task)+".elm"), a)
		for _, callers := range []int{1, 2} {
			ag, err := agent.New(agent.Config{Project: "bench", Device: "d" + strconv.Itoa(callers) + string(task)[:1],
				DataDir: filepath.Join(dir, fmt.Sprintf("%s-%d", task, callers)), Model: modelPath, Workers: callers}, nil, zap.NewNop())
			check(err)
			lat, rate := run(ag, ims, *frames, callers)
			st := ag.Status()
			var sampled uint64
			for _, v := range st.SampledByReason {
				sampled += v
			}
			fmt.Printf("| %-10s | %7d | %8.0f | %6.2f | %6.2f | %6.1f%% |\n", map[nn.Task]string{nn.Classify: "classifier", nn.Detect: "detector"}[task], callers, rate,
				lat[len(lat)/2], lat[int(0.99*float64(len(lat)-1))], 100*float64(sampled)/float64(st.Frames))
		}
	}

	fmt.Println("\nOutbox: Put of 50 KB examples")
	fmt.Println()
	fmt.Println("| durability          | puts/s | MB/s  |")
	fmt.Println("|---------------------|--------|-------|")
	for _, noSync := range []bool{false, true} {
		ob, err := outbox.Open(filepath.Join(dir, fmt.Sprintf("ob-%v", noSync)), outbox.Options{NoSync: noSync})
		check(err)
		payload := make([]byte, 50_000)
		n := 500
		start := time.Now()
		for i := 0; i < n; i++ {
			_, err := ob.Put(i%3, strconv.Itoa(i), payload)
			check(err)
		}
		s := time.Since(start).Seconds()
		name := "fsync per entry"
		if noSync {
			name = "no fsync (unsafe)"
		}
		fmt.Printf("| %-19s | %6.0f | %5.1f |\n", name, float64(n)/s, float64(n*len(payload))/s/1e6)
	}

	if *binary != "" {
		st, err := os.Stat(*binary)
		check(err)
		png := datasets.Digits(tr, 0, 1, "rss", none, 1)[0].Image.EncodePNG()
		serve, servePeak := residentMemory(*binary, dir, false, png)
		sim, simPeak := residentMemory(*binary, dir, true, nil)
		fmt.Printf("\nedge-agent binary: %.1f MB (goal: resident memory ≤ 64 MB serving the smallest model)\n\n", float64(st.Size())/1e6)
		fmt.Println("| agent serving 20 frames/s (28-px classifier)   | RSS MB | peak RSS MB |")
		fmt.Println("|------------------------------------------------|-------:|------------:|")
		fmt.Printf("| camera frames over its HTTP API (a real agent) | %6.1f | %11.1f |\n", serve/1e6, servePeak/1e6)
		fmt.Printf("| the built-in MNIST simulator (-sim mnist)      | %6.1f | %11.1f |\n", sim/1e6, simPeak/1e6)
		out, _ := exec.Command("go", "list", "-deps", "./edge-agent").Output()
		server := []string{}
		for _, dep := range strings.Fields(string(out)) {
			for _, bad := range []string{"segmentio/kafka-go", "minio/minio-go", "twmb/franz-go", "mochi-mqtt/server", "gofakes3"} {
				if strings.Contains(dep, bad) {
					server = append(server, dep)
				}
			}
		}
		fmt.Printf("server-side packages linked into the agent: %d %v\n", len(server), server)
	}
}

func run(ag *agent.Agent, ims []*raster.Image, n, callers int) ([]float64, float64) {
	var mu sync.Mutex
	var lat []float64
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	start := time.Now()
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t := time.Now()
				_, err := ag.Infer(context.Background(), "", ims[i%len(ims)], nil)
				check(err)
				mu.Lock()
				lat = append(lat, time.Since(t).Seconds()*1000)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	rate := float64(n) / time.Since(start).Seconds()
	sort.Float64s(lat)
	return lat, rate
}

func writeModel(path string, a nn.Arch) string {
	p, err := nn.InitParams(a, 1)
	check(err)
	b, err := artifact.Encode(&artifact.Model{Header: artifact.Header{Arch: a, Classes: datasets.Classes(), Version: 1}, Params: p})
	check(err)
	check(os.WriteFile(path, b, 0o644))
	return path
}

// residentMemory runs the agent binary for a few seconds at 20 frames/s — frames
// POSTed to its HTTP API, or its MNIST simulator with sim — and reads its VmRSS and
// VmHWM (peak).
func residentMemory(bin, dir string, sim bool, png []byte) (rss, peak float64) {
	model := writeModel(filepath.Join(dir, "rss.elm"), nn.ClassifierArch(10))
	name := "serve"
	args := []string{"-project", "bench", "-device", "rss", "-model", model, "-mqtt-url", "tcp://127.0.0.1:1", "-log-level", "error"}
	addr := ""
	if sim {
		name = "sim"
		args = append(args, "-sim", "mnist", "-sim-rate", "20", "-http-addr", "")
	} else {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		check(err)
		addr = l.Addr().String()
		check(l.Close())
		args = append(args, "-http-addr", addr)
	}
	cmd := exec.Command(bin, append(args, "-data-dir", filepath.Join(dir, "rss-"+name))...)
	check(cmd.Start())
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		if !sim {
			if resp, err := http.Post("http://"+addr+"/v1/infer", "image/png", bytes.NewReader(png)); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	check(err)
	for _, line := range strings.Split(string(b), "\n") {
		for key, dst := range map[string]*float64{"VmRSS:": &rss, "VmHWM:": &peak} {
			if strings.HasPrefix(line, key) {
				kb, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
				*dst = kb * 1024
			}
		}
	}
	return rss, peak
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench agent:", err)
		os.Exit(1)
	}
}
