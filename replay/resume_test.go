package main

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"
)

// TestResumeRule simulates a run that stopped with each partition holding some
// prefix of its positions (a crash, a signal or a --limit leaves exactly that: a
// partition is written in position order without gaps), derives the heads a
// second run reads, and checks that the second run publishes exactly the rest.
func TestResumeRule(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n, parts = 5000, 8
	pt := newPartitioner(parts)
	partOf := make([]int, n)
	byPart := make([][]int, parts)
	for i := range partOf {
		partOf[i] = pt.of(uint32(rng.IntN(300)))
		byPart[partOf[i]] = append(byPart[partOf[i]], i)
	}
	for trial := 0; trial < 50; trial++ {
		heads := make([]head, parts)
		first := make([]bool, n) // published by the first run
		for p := range heads {
			k := rng.IntN(len(byPart[p]) + 1) // prefix length, 0..all
			heads[p] = noHead
			for _, i := range byPart[p][:k] {
				first[i] = true
			}
			if k > 0 {
				heads[p] = head{Pos: int64(byPart[p][k-1]), Run: "r", Offset: int64(k - 1)}
			}
		}
		if err := checkHeads(heads, "r"); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if second := !published(heads, partOf[i], i); second == first[i] {
				t.Fatalf("trial %d pos %d: first run %v, second run %v", trial, i, first[i], second)
			}
		}
	}
	// No heads (--resume=false): nothing is skipped.
	if published(nil, 0, 0) {
		t.Fatal("skipped without heads")
	}
}

func TestCheckHeads(t *testing.T) {
	heads := []head{noHead, {Pos: 5, Run: "a", Offset: 2}, {Pos: 9, Run: "b", Offset: 0}}
	err := checkHeads(heads, "a")
	if err == nil || !strings.Contains(err.Error(), "partition 2 holds replay run b") || strings.Contains(err.Error(), "partition 1") {
		t.Fatalf("got %v", err)
	}
	if err := checkHeads([]head{noHead, noHead}, "x"); err != nil {
		t.Fatal(err)
	}
}

func TestHeadFromMessage(t *testing.T) {
	h, ok, err := headFromMessage(kafka.Message{Offset: 7, Headers: []kafka.Header{
		{Key: HeaderPos, Value: []byte("1234")}, {Key: HeaderRun, Value: []byte("abcd")}}})
	if err != nil || !ok || h != (head{Pos: 1234, Run: "abcd", Offset: 7}) {
		t.Fatalf("got %+v %v %v", h, ok, err)
	}
	// Another producer's message (the API) has no replay headers.
	if _, ok, err := headFromMessage(kafka.Message{}); ok || err != nil {
		t.Fatalf("api message: %v %v", ok, err)
	}
	for _, bad := range []string{"", "-1", "x", "1e3"} {
		_, _, err := headFromMessage(kafka.Message{Headers: []kafka.Header{{Key: HeaderRun, Value: []byte("r")}, {Key: HeaderPos, Value: []byte(bad)}}})
		if err == nil {
			t.Errorf("pos %q accepted", bad)
		}
	}
}
