package main

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The demo end to end on the embedded stack, staying up for 60 s after its
// steps (the smoke test the dashboard issue asks for): it exits
// 0 by itself, the dashboard and GET /v1/drift answer while it is up, and
// every child is gone afterwards (the port is free again).
func TestDemoStaysUpThenStops(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole demo (about a minute)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "dev")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building dev: %v\n%s", err, out)
	}
	cmd := exec.CommandContext(ctx, bin, "demo", "--duration", "60s", "--out", t.TempDir(), "--port", strconv.Itoa(port))
	cmd.Dir = "../.." // the demo builds ./cmd/... from the repository root
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	var log strings.Builder
	checked := false
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		log.WriteString(line + "\n")
		if strings.Contains(line, "the demo stays up") && !checked {
			checked = true
			for _, p := range []string{"/dashboard", "/dashboard/app.js", "/v1/drift", "/v1/metrics/online"} {
				resp, err := http.Get(base + p)
				if err != nil {
					t.Errorf("GET %s while the demo is up: %v", p, err)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("GET %s while the demo is up: %d", p, resp.StatusCode)
				}
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("demo: %v\n%s", err, log.String())
	}
	if !checked || !strings.Contains(log.String(), "the background closed loop ended after 1m0s") {
		t.Fatalf("the demo did not stay up and stop by itself:\n%s", log.String())
	}
	if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err != nil {
		t.Fatalf("port %d still taken after the demo: %v", port, err)
	} else {
		ln.Close()
	}
}
