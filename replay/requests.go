package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamrec/streamrec/internal/api"
)

// sessionGapMS starts a new session of a user (--with-requests): more than
// 30 minutes of event time since the user's previous event.
const sessionGapMS = 30 * 60 * 1000

// requester is --with-requests: at the start of each of a user's sessions in
// the log it requests the user's recommendations from the API, so that an
// open-loop replay fills the served-list log and the online metrics join
// the replayed interactions to lists. Requests run on a pool of workers;
// before a chunk holding a session's events is handed to Kafka, every
// request issued so far has returned (wait), so a session's list is always
// served before its events are produced.
type requester struct {
	base, query string
	client      *http.Client
	log         *slog.Logger
	last        map[uint32]int64 // user -> event time of the previous event
	work        chan uint32
	outstanding sync.WaitGroup
	workers     sync.WaitGroup

	sent, failed atomic.Int64
}

func newRequester(base string, k int, candidates string, concurrency int, log *slog.Logger) *requester {
	q := "?k=" + strconv.Itoa(k)
	if candidates != "" {
		q += "&candidates=" + candidates
	}
	r := &requester{base: base, query: q, log: log, last: map[uint32]int64{}, work: make(chan uint32, 4*concurrency),
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: concurrency + 2}}}
	for range concurrency {
		r.workers.Add(1)
		go r.loop()
	}
	return r
}

func (r *requester) loop() {
	defer r.workers.Done()
	for u := range r.work {
		r.request(u)
		r.outstanding.Done()
	}
}

func (r *requester) request(user uint32) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet,
		r.base+"/v1/users/"+strconv.FormatUint(uint64(user), 10)+"/recommendations"+r.query, nil)
	if err == nil {
		req.Header.Set(api.ClientHeader, "replay")
		var resp *http.Response
		if resp, err = r.client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				r.sent.Add(1)
				return
			}
			err = &httpStatusError{resp.StatusCode}
		}
	}
	if r.failed.Add(1) <= 5 {
		r.log.Warn("--with-requests: a recommendation request failed (the replay goes on; counted in the summary)", "user", user, "err", err)
	}
}

type httpStatusError struct{ code int }

func (e *httpStatusError) Error() string { return "HTTP " + strconv.Itoa(e.code) }

// observe is called for each event handed over, in replay order: the first
// event of a session issues its user's request.
func (r *requester) observe(user uint32, tMS int64) {
	prev, seen := r.last[user]
	r.last[user] = tMS
	if seen && tMS-prev <= sessionGapMS {
		return
	}
	r.outstanding.Add(1)
	r.work <- user
}

// wait returns once every request issued so far has returned.
func (r *requester) wait() { r.outstanding.Wait() }

// close waits for the outstanding requests and stops the workers.
func (r *requester) close() {
	r.wait()
	close(r.work)
	r.workers.Wait()
}
