package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// The canary on the closed loop (real Kafka, Redis, updater, evaluating API
// and simulator): a deliberately worse version (trained on shuffled labels)
// published as a canary for half the users is rolled back by the API's
// controller from the arms' windows; then a version trained like the live
// one, as a canary, is promoted and becomes current.
func TestIntegrationCanaryClosedLoop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	st := newLoopStack(t, ctx, 9, nil)
	st.train(t, ctx, "can-v1")
	st.startServices(t)
	canary := []string{"--canary", "0.5", "--canary-windows", "5", "--canary-threshold", "0.15"}

	st.train(t, ctx, "can-bad", append([]string{"--shuffle-labels"}, canary...)...)
	list := loopUntilDecided(t, ctx, st, "can-bad")
	if cur := liveVersion(list); cur != "can-v1" || !hasEvent(list, "canary_rolled_back", "can-v1") {
		t.Fatalf("the worse canary: live %s, events %+v; want it rolled back", cur, list.Events)
	}

	st.train(t, ctx, "can-good", canary...)
	list = loopUntilDecided(t, ctx, st, "can-good")
	if cur := liveVersion(list); cur != "can-good" || !hasEvent(list, "canary_promoted", "can-good") {
		t.Fatalf("the canary trained like the live version: live %s, events %+v; want it promoted", cur, list.Events)
	}
}

type modelList struct {
	Versions []struct {
		Version string `json:"version"`
		Live    bool   `json:"live"`
	} `json:"versions"`
	Events []struct {
		Reason  string `json:"reason"`
		Current string `json:"current"`
	} `json:"events"`
	Canary *struct {
		Version string `json:"version"`
	} `json:"canary"`
}

func liveVersion(l modelList) string {
	for _, v := range l.Versions {
		if v.Live {
			return v.Version
		}
	}
	return ""
}

func hasEvent(l modelList, reason, current string) bool {
	for _, e := range l.Events {
		if e.Reason == reason && e.Current == current {
			return true
		}
	}
	return false
}

// loopUntilDecided runs the simulator against the API until the canary
// version is no longer running (at most 2 minutes) and returns the models.
func loopUntilDecided(t *testing.T, ctx context.Context, st *loopStack, version string) modelList {
	t.Helper()
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	simDone := make(chan error, 1)
	var out, errOut bytes.Buffer
	go func() {
		simDone <- runSim(sctx, []string{"--api", "http://" + st.apiAddr, "--data", st.data, "--redis-addr", st.redisAddr, "--namespace", st.ns,
			"--duration", "2m", "--from", st.cut, "--until", "2020-09-02T00:00:00+08:00", "--concurrency", "8", "--users", "80",
			"--exclude-watched=false", "--probes", "0", "--observe-wait", "0s", "--log-level", "warn"}, &out, &errOut)
	}()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var l modelList
		resp, err := http.Get("http://" + st.apiAddr + "/v1/models")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&l)
			resp.Body.Close()
		}
		if err == nil && (l.Canary == nil || l.Canary.Version != version) && (hasEvent(l, "canary_rolled_back", liveVersion(l)) || hasEvent(l, "canary_promoted", version)) {
			stop()
			<-simDone
			return l
		}
		select {
		case err := <-simDone:
			t.Fatalf("the simulator ended before the canary %s was decided: %v\n%s\n%s", version, err, out.String(), errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the canary %s was not decided in 2 minutes (models %+v)", version, l)
		}
		time.Sleep(time.Second)
	}
}
