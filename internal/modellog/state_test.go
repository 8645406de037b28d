package modellog

import (
	"bytes"
	"encoding/json"
	"hash/crc32"
	"strings"
	"testing"
)

// stateOf builds a State holding version v's string values in pieces of
// PieceBytes, with its manifest when complete.
func stateOf(t *testing.T, v string, seq int64, vals map[string][]byte, complete bool) *State {
	t.Helper()
	s := &State{raw: map[string][]byte{}}
	m := Manifest{Version: v, Seq: seq, Strings: map[string]Piece{}}
	for name, val := range vals {
		p := Piece{Bytes: len(val), Pieces: (len(val) + PieceBytes - 1) / PieceBytes, CRC: crc32.ChecksumIEEE(val)}
		for i := range p.Pieces {
			s.raw[pieceKey(v, name, i)] = val[i*PieceBytes : min(len(val), (i+1)*PieceBytes)]
		}
		m.Strings[name] = p
	}
	if complete {
		js, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		s.raw[manifestKey(v)] = js
	}
	return s
}

func TestStateDump(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789"), PieceBytes/4) // 2.5 pieces
	vals := map[string][]byte{"meta": []byte(`{}`), "tower": big, "empty": nil, "items:0": []byte("x")}
	s := stateOf(t, "v1", 3, vals, true)
	d, m, err := s.Dump("v1")
	if err != nil {
		t.Fatal(err)
	}
	if m.Strings["tower"].Pieces != 3 || d.Seq != 3 || len(d.Strings) != len(vals) {
		t.Fatalf("manifest %+v, dump of %d strings", m, len(d.Strings))
	}
	for k, v := range vals {
		if !bytes.Equal(d.Strings[k], v) {
			t.Fatalf("%s: %d bytes back, want %d", k, len(d.Strings[k]), len(v))
		}
	}
	for name, break_ := range map[string]func(*State){
		"missing piece": func(s *State) { delete(s.raw, pieceKey("v1", "tower", 1)) },
		"corrupt piece": func(s *State) { s.raw[pieceKey("v1", "tower", 2)] = []byte("y") },
		"same length":   func(s *State) { s.raw[pieceKey("v1", "items:0", 0)] = []byte("z") },
	} {
		s := stateOf(t, "v1", 3, vals, true)
		break_(s)
		if _, _, err := s.Dump("v1"); err == nil || !strings.Contains(err.Error(), "v1") {
			t.Errorf("%s: err %v, want an error naming the version", name, err)
		}
	}
	if _, _, err := stateOf(t, "v2", 1, vals, false).Dump("v2"); err == nil {
		t.Error("an incomplete version (no manifest) was dumped")
	}
	if vs, err := stateOf(t, "v2", 1, vals, false).Versions(); err != nil || len(vs) != 0 {
		t.Errorf("versions of a log without manifests: %v %v", vs, err)
	}
	s.raw[pointersKey] = []byte(`{"current":""}`)
	if _, _, err := s.Pointers(); err == nil {
		t.Error("pointers without a current version accepted")
	}
}
