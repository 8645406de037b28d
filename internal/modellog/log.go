// Package modellog keeps every model version that Redis serves in a compacted
// Kafka topic (the model log), so that Redis holds nothing that cannot be
// rebuilt without a retrain: after a FLUSHALL (or a Redis restarted without
// persistence) the Restorer writes the versions, their registered videos,
// the version pointers and every user's offline serving record back from
// the topic; the updater rewrites the users it holds (their online
// embeddings) from its changelog.
//
// The topic has one partition (so its records keep their order) and is
// compacted: the latest record of each key is kept. Record keys:
//
//	p                        the version pointers, JSON {current, previous}
//	v/<ver>/s/<name>/<i>     piece i of the string key <ns>:model:<ver>:<name> (raw bytes)
//	v/<ver>/h/<name>/<field> a field of the hash key <ns>:model:<ver>:<name> (raw bytes;
//	                         "newitems": the videos registered after training)
//	v/<ver>/m                the version's manifest (JSON), written after its pieces:
//	                         it marks the version complete in the log
//
// Values are the exact bytes Redis held, so a restored version is bit-exact.
// A string value is cut into pieces of at most PieceBytes, under Kafka's
// default message limit (1 MB). A version that leaves the pointers is deleted
// from the log with tombstones (its manifest first).
package modellog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/stream"
)

// PieceBytes is the largest value of one record: Kafka's default
// max.message.bytes is 1 MB, and a record also carries its key and headers.
const PieceBytes = 512 << 10

// DefaultTopic is the model log's name for the default namespace: the
// namespace followed by ".models".
func DefaultTopic(namespace string) string { return namespace + ".models" }

// TopicSpec is the model log's topic: one partition, compacted.
func TopicSpec(name string) stream.TopicSpec { return stream.CompactedTopic(name, 1) }

// Pointers are the version pointers of the log.
type Pointers struct {
	Current  string `json:"current"`
	Previous string `json:"previous,omitempty"`
}

// Manifest describes a version in the log.
type Manifest struct {
	Version string `json:"version"`
	// Seq is the version's registration order in Redis.
	Seq int64 `json:"seq"`
	// UsersUpdatedAtMs is the UpdatedAtMs of the version's offline serving
	// records (the user records the ingestor wrote with the version, one per
	// offline user vector; see cmd/ingestor's publishModel).
	UsersUpdatedAtMs int64 `json:"users_updated_at_ms"`
	// Strings: key name -> its pieces.
	Strings map[string]Piece `json:"strings"`
	// WrittenAtMs is when the version was written to the log.
	WrittenAtMs int64 `json:"written_at_ms"`
}

// Piece describes one string value of a version: its length, its piece
// count and the CRC-32 (IEEE) of the whole value.
type Piece struct {
	Bytes  int    `json:"bytes"`
	Pieces int    `json:"pieces"`
	CRC    uint32 `json:"crc32"`
}

// Log writes the model log (it is not safe for concurrent use) and reads it.
type Log struct {
	brokers []string
	topic   string
	w       *stream.StateLog
}

// New returns the log of topic on brokers. Ensure creates the topic.
func New(brokers []string, topic string) (*Log, error) {
	if len(brokers) == 0 || topic == "" {
		return nil, fmt.Errorf("model log: want brokers and a topic name (got %v, %q)", brokers, topic)
	}
	return &Log{brokers: brokers, topic: topic, w: stream.NewStateLog(brokers, topic, 2*PieceBytes)}, nil
}

// Topic returns the topic's name.
func (l *Log) Topic() string { return l.topic }

// Ensure creates the topic if it is missing (one partition, compacted).
func (l *Log) Ensure(ctx context.Context) error {
	if err := stream.EnsureTopics(ctx, l.brokers, TopicSpec(l.topic)); err != nil {
		return fmt.Errorf("ensuring the model log %s: %w", l.topic, err)
	}
	return nil
}

// Close flushes and closes the writer.
func (l *Log) Close() error { return l.w.Close() }

func versionPrefix(v string) string { return "v/" + v + "/" }
func manifestKey(v string) string   { return versionPrefix(v) + "m" }
func pieceKey(v, name string, i int) string {
	return versionPrefix(v) + "s/" + name + "/" + strconv.Itoa(i)
}
func fieldKey(v, name, field string) string { return versionPrefix(v) + "h/" + name + "/" + field }

const pointersKey = "p"

// WriteVersion writes a dumped version: its pieces and hash fields, then
// (once they are acknowledged) its manifest. usersUpdatedAtMs: see
// Manifest.UsersUpdatedAtMs.
func (l *Log) WriteVersion(ctx context.Context, d cache.VersionDump, usersUpdatedAtMs int64) (Manifest, error) {
	m := Manifest{Version: d.Version, Seq: d.Seq, UsersUpdatedAtMs: usersUpdatedAtMs, Strings: map[string]Piece{}}
	var recs []stream.StateRecord
	bytes := 0
	flush := func() error {
		if len(recs) == 0 {
			return nil
		}
		err := l.w.Write(ctx, recs)
		recs, bytes = recs[:0], 0
		return err
	}
	names := make([]string, 0, len(d.Strings))
	for name := range d.Strings {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		v := d.Strings[name]
		// An empty value has no piece: a record without a value would be a
		// tombstone.
		p := Piece{Bytes: len(v), Pieces: (len(v) + PieceBytes - 1) / PieceBytes, CRC: crc32.ChecksumIEEE(v)}
		m.Strings[name] = p
		for i := range p.Pieces {
			part := v[i*PieceBytes : min(len(v), (i+1)*PieceBytes)]
			recs = append(recs, stream.StateRecord{Key: []byte(pieceKey(d.Version, name, i)), Value: part})
			if bytes += len(part); bytes >= 4*PieceBytes {
				if err := flush(); err != nil {
					return m, fmt.Errorf("writing model version %s to %s: %w", d.Version, l.topic, err)
				}
			}
		}
	}
	for name, h := range d.Hashes {
		for f, v := range h {
			if len(v) > 0 { // an empty field cannot be told from a tombstone: left out
				recs = append(recs, stream.StateRecord{Key: []byte(fieldKey(d.Version, name, f)), Value: v})
			}
		}
	}
	if err := flush(); err != nil {
		return m, fmt.Errorf("writing model version %s to %s: %w", d.Version, l.topic, err)
	}
	m.WrittenAtMs = time.Now().UnixMilli()
	js, err := json.Marshal(m)
	if err != nil {
		return m, fmt.Errorf("encoding the manifest of %s: %w", d.Version, err)
	}
	if err := l.w.Write(ctx, []stream.StateRecord{{Key: []byte(manifestKey(d.Version)), Value: js}}); err != nil {
		return m, fmt.Errorf("writing the manifest of model version %s to %s: %w", d.Version, l.topic, err)
	}
	return m, nil
}

// WriteFields writes fields of a version's hash key name (registered videos).
func (l *Log) WriteFields(ctx context.Context, version, name string, fields map[string][]byte) error {
	if len(fields) == 0 {
		return nil
	}
	recs := make([]stream.StateRecord, 0, len(fields))
	for f, v := range fields {
		if len(v) > 0 {
			recs = append(recs, stream.StateRecord{Key: []byte(fieldKey(version, name, f)), Value: v})
		}
	}
	if len(recs) == 0 {
		return nil
	}
	if err := l.w.Write(ctx, recs); err != nil {
		return fmt.Errorf("writing %d fields of %s of model version %s to %s: %w", len(fields), name, version, l.topic, err)
	}
	return nil
}

// WritePointers writes the version pointers.
func (l *Log) WritePointers(ctx context.Context, p Pointers) error {
	if p.Current == "" {
		return errors.New("model log: refusing to write pointers without a current version")
	}
	js, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := l.w.Write(ctx, []stream.StateRecord{{Key: []byte(pointersKey), Value: js}}); err != nil {
		return fmt.Errorf("writing the version pointers to %s: %w", l.topic, err)
	}
	return nil
}

// DeleteVersion writes tombstones for every record of v that s holds, the
// manifest first (so that a half-deleted version is never restored), and
// forgets v in s.
func (l *Log) DeleteVersion(ctx context.Context, s *State, v string) error {
	keys := []string{manifestKey(v)}
	for k := range s.raw {
		if strings.HasPrefix(k, versionPrefix(v)) && k != manifestKey(v) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys[1:])
	if err := l.w.Write(ctx, []stream.StateRecord{{Key: []byte(keys[0])}}); err != nil {
		return fmt.Errorf("deleting model version %s from %s: %w", v, l.topic, err)
	}
	recs := make([]stream.StateRecord, 0, len(keys)-1)
	for _, k := range keys[1:] {
		recs = append(recs, stream.StateRecord{Key: []byte(k)})
	}
	if len(recs) > 0 {
		if err := l.w.Write(ctx, recs); err != nil {
			return fmt.Errorf("deleting model version %s from %s: %w", v, l.topic, err)
		}
	}
	for _, k := range keys {
		delete(s.raw, k)
	}
	return nil
}

// State is what the log holds: the latest value of each record key, read up
// to Next. The zero value is an empty log at offset 0; CatchUp reads it on.
type State struct {
	raw  map[string][]byte
	Next int64
}

// Pointers returns the log's version pointers (ok false if it has none).
func (s *State) Pointers() (p Pointers, ok bool, err error) {
	v, ok := s.raw[pointersKey]
	if !ok {
		return p, false, nil
	}
	if err := json.Unmarshal(v, &p); err != nil || p.Current == "" {
		return p, false, fmt.Errorf("model log: undecodable pointers %q", v)
	}
	return p, true, nil
}

// Manifest returns the manifest of v (ok false if v is not complete in the
// log).
func (s *State) Manifest(v string) (m Manifest, ok bool, err error) {
	js, ok := s.raw[manifestKey(v)]
	if !ok {
		return m, false, nil
	}
	if err := json.Unmarshal(js, &m); err != nil || m.Version != v {
		return m, false, fmt.Errorf("model log: undecodable manifest of %s", v)
	}
	return m, true, nil
}

// Versions returns the versions complete in the log, by Seq.
func (s *State) Versions() ([]Manifest, error) {
	var out []Manifest
	for k := range s.raw {
		rest, ok := strings.CutPrefix(k, "v/")
		if !ok || !strings.HasSuffix(rest, "/m") || strings.Count(rest, "/") != 1 {
			continue
		}
		m, ok, err := s.Manifest(strings.TrimSuffix(rest, "/m"))
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b Manifest) int { return int(a.Seq - b.Seq) })
	return out, nil
}

// Fields returns the fields of a version's hash key name that the log holds.
func (s *State) Fields(v, name string) map[string][]byte {
	prefix := versionPrefix(v) + "h/" + name + "/"
	out := map[string][]byte{}
	for k, val := range s.raw {
		if f, ok := strings.CutPrefix(k, prefix); ok {
			out[f] = val
		}
	}
	return out
}

// Dump assembles version v from the log, checking each value's length and
// CRC against the manifest.
func (s *State) Dump(v string) (cache.VersionDump, Manifest, error) {
	m, ok, err := s.Manifest(v)
	if err != nil {
		return cache.VersionDump{}, m, err
	}
	if !ok {
		return cache.VersionDump{}, m, fmt.Errorf("model log: version %s is not complete in the log", v)
	}
	d := cache.VersionDump{Version: v, Seq: m.Seq, Strings: map[string][]byte{}, Hashes: map[string]map[string][]byte{}}
	for name, p := range m.Strings {
		b := make([]byte, 0, p.Bytes)
		for i := range p.Pieces {
			part, ok := s.raw[pieceKey(v, name, i)]
			if !ok {
				return d, m, fmt.Errorf("model log: version %s: piece %d of %s is missing", v, i, name)
			}
			b = append(b, part...)
		}
		if len(b) != p.Bytes || crc32.ChecksumIEEE(b) != p.CRC {
			return d, m, fmt.Errorf("model log: version %s: %s has %d bytes (want %d) or a bad CRC", v, name, len(b), p.Bytes)
		}
		d.Strings[name] = b
	}
	prefix := versionPrefix(v) + "h/"
	for k, val := range s.raw {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		name, field, ok := strings.Cut(rest, "/")
		if !ok {
			continue
		}
		if d.Hashes[name] == nil {
			d.Hashes[name] = map[string][]byte{}
		}
		d.Hashes[name][field] = val
	}
	return d, m, nil
}

// CatchUp reads the log from s.Next to its end (as it was when CatchUp
// began) into s, and reports how many records it read. Records written
// after that are read by the next CatchUp.
func (l *Log) CatchUp(ctx context.Context, s *State) (int, error) {
	if s.raw == nil {
		s.raw = map[string][]byte{}
	}
	client := &kafka.Client{Addr: kafka.TCP(l.brokers...), Timeout: 10 * time.Second}
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		l.topic: {kafka.FirstOffsetOf(0), kafka.LastOffsetOf(0)}}})
	if err != nil {
		return 0, fmt.Errorf("listing the offsets of %s: %w", l.topic, err)
	}
	ps := resp.Topics[l.topic]
	if len(ps) != 1 {
		return 0, fmt.Errorf("listing the offsets of %s: %d partitions answered (does the topic exist?)", l.topic, len(ps))
	}
	if ps[0].Error != nil {
		return 0, fmt.Errorf("listing the offsets of %s: %w", l.topic, ps[0].Error)
	}
	first, end := ps[0].FirstOffset, ps[0].LastOffset
	if s.Next < first {
		// Compaction or retention removed what we did not read; start over.
		clear(s.raw)
		s.Next = first
	}
	if end <= s.Next {
		return 0, nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: l.brokers, Topic: l.topic, Partition: 0,
		MinBytes: 1, MaxBytes: 32 << 20, MaxWait: 500 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(s.Next); err != nil {
		return 0, fmt.Errorf("seeking %s to %d: %w", l.topic, s.Next, err)
	}
	n := 0
	for s.Next < end {
		msg, err := r.ReadMessage(ctx)
		if err != nil {
			return n, fmt.Errorf("reading %s at offset %d of %d: %w", l.topic, s.Next, end, err)
		}
		n++
		if len(msg.Value) == 0 { // a tombstone (no value is ever written empty)
			delete(s.raw, string(msg.Key))
		} else {
			s.raw[string(msg.Key)] = msg.Value
		}
		s.Next = msg.Offset + 1
	}
	return n, nil
}
