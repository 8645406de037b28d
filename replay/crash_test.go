package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestIntegrationKill9ThenResume kills the replay binary with SIGKILL while it
// publishes, then resumes: the topic holds every event exactly once.
func TestIntegrationKill9ThenResume(t *testing.T) {
	broker := testBroker(t)
	dir, p := tiny(t)
	topic := testTopic(t, broker)
	bin := filepath.Join(t.TempDir(), "replay")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building: %v\n%s", err, out)
	}
	args := []string{"--data", dir, "--brokers", broker, "--topic", topic, "--batch", "50", "--progress=false", "--log-level", "warn"}
	cmd := exec.Command(bin, append(args, "--max-rate", "10000")...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		total := int64(0)
		for part := 0; part < 8; part++ {
			if first, last, err := partitionOffsets(t.Context(), []string{broker}, topic, part); err == nil {
				total += last - first
			}
		}
		if total >= 3000 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the replay published nothing in 60 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	n := len(consume(t, broker, topic))
	if n >= p.Len() {
		t.Fatalf("killed too late: %d of %d events already published", n, p.Len())
	}
	runReplay(t, t.Context(), args...)
	checkExactlyOnce(t, p, consume(t, broker, topic), 0, p.Len(), 8)
}
