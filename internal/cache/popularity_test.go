package cache

import (
	"context"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
)

func TestPopularityRoundTrip(t *testing.T) {
	s := newMiniredisStore(t, DefaultConfig())
	ctx := context.Background()
	if _, found, err := s.GetPopularity(ctx, "v1"); found || err != nil {
		t.Fatalf("absent: %v, %v", found, err)
	}
	p := Popularity{Label: "watch_ratio>=0.8", IDs: []uint32{4, 9}, Counts: []uint32{10, 3}}
	if err := s.PutPopularity(ctx, "v1", p); err != nil {
		t.Fatal(err)
	}
	got, found, err := s.GetPopularity(ctx, "v1")
	if !found || err != nil || !reflect.DeepEqual(got, p) {
		t.Fatalf("%+v, %v, %v", got, found, err)
	}
	for _, bad := range []Popularity{{Label: "x", IDs: []uint32{1}}, {IDs: []uint32{1}, Counts: []uint32{1}}} {
		if err := s.PutPopularity(ctx, "v1", bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", bad, err)
		}
	}
	if err := s.rdb.Set(ctx, s.k.popularity("v2"), `{"label":"x","ids":[1],"counts":[]}`, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.GetPopularity(ctx, "v2"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt value: %v", err)
	}
}

// Extend runs before an index is installed; its error keeps the old index.
func TestItemCacheExtend(t *testing.T) {
	s := newMiniredisStore(t, DefaultConfig())
	ctx := context.Background()
	r := rand.New(rand.NewPCG(3, 4))
	if _, err := s.Publish(ctx, testModel(r, "e1", 20, 4)); err != nil {
		t.Fatal(err)
	}
	var fail error
	c := &ItemCache{Extend: func(_ context.Context, x *ItemIndex) error {
		if fail != nil {
			return fail
		}
		x.Attach("extra of " + x.Version())
		return nil
	}}
	if ok, err := c.Refresh(ctx, s); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if got := c.Index().Attached(); got != "extra of e1" {
		t.Fatalf("attached %v", got)
	}
	if _, err := s.Publish(ctx, testModel(r, "e2", 20, 4)); err != nil {
		t.Fatal(err)
	}
	fail = errors.New("boom")
	if ok, err := c.Refresh(ctx, s); ok || !errors.Is(err, fail) || c.Index().Version() != "e1" {
		t.Fatalf("failing extend: %v, %v, version %s", ok, err, c.Index().Version())
	}
	fail = nil
	if ok, err := c.Refresh(ctx, s); !ok || err != nil || c.Index().Attached() != "extra of e2" {
		t.Fatalf("%v, %v, %v", ok, err, c.Index().Attached())
	}
}
