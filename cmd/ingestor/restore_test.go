package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseRestoreFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string // "" for none
	}{
		{args: nil},
		{args: []string{"--follow", "--every", "250ms", "--model-topic", "x.models"}},
		{args: []string{"extra"}, err: "unexpected arguments"},
		{args: []string{"--model-topic", "none"}, err: "restore needs the model log"},
		{args: []string{"--every", "1ms"}, err: "--every 1ms"},
		{args: []string{"--brokers", ""}, err: "--brokers must not be empty"},
		{args: []string{"--nope"}, err: "flag provided but not defined"},
	} {
		o, err := parseRestoreFlags(tc.args, io.Discard)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.args, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want one with %q", tc.args, err, tc.err)
		case tc.err == "" && len(tc.args) > 0 && (!o.follow || o.every != 250*time.Millisecond || o.modelLog.topic != "x.models"):
			t.Errorf("%q: parsed %+v", tc.args, o)
		}
	}
}
