package config

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// The child process of TestSecondSignalEnds: it reports the first signal and
// then hangs, as a shutdown stuck on an unreachable broker would.
func TestMain(m *testing.M) {
	if os.Getenv("STREAMREC_SIGNAL_CHILD") == "1" {
		ctx, cancel := SignalContext(context.Background())
		defer cancel()
		os.Stdout.WriteString("ready\n")
		<-ctx.Done()
		os.Stdout.WriteString("stopping\n")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestSecondSignalEnds(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), "STREAMREC_SIGNAL_CHILD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(out)
	expect := func(want string) {
		t.Helper()
		if !lines.Scan() || lines.Text() != want {
			t.Fatalf("child said %q, want %q", lines.Text(), want)
		}
	}
	expect("ready")
	cmd.Process.Signal(syscall.SIGINT)
	expect("stopping") // the first signal is a graceful shutdown
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the child exited 0 after the second signal, want killed by it")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a second SIGINT did not end the process")
	}
}
