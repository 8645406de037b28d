package towers

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// metaPrefix prefixes the keys of TwoTower.Meta in the model file's meta.
const metaPrefix = "x."

// Keys of TwoTower.Meta written by the ingestor (cmd/ingestor train).
const (
	// MetaCutMS is the training cut in Unix milliseconds: the model was
	// trained only on events strictly before it, and a replay streams the
	// events at or after it. Absent when the whole log was used.
	MetaCutMS = "cut_ms"
	// MetaLastTrainMS is the time of the last training event (Unix ms).
	MetaLastTrainMS = "last_train_ms"
	// MetaTrainRows is the number of training rows (validation excluded).
	MetaTrainRows = "train_rows"
	// MetaTargetCap is the watch-ratio cap of the training targets.
	MetaTargetCap = "target_cap"
	// MetaCalibShift and MetaCalibSlope record the median calibration
	// folded into the parameters (MedianCalibration; absent without one).
	MetaCalibShift = "calib_shift"
	MetaCalibSlope = "calib_slope"
)

// The model file is versioned binary, little-endian throughout:
//
//	magic     8 bytes "SRTOWERS"
//	format    uint32 (FormatVersion)
//	kind      string ("twotower" or "seed")
//	version   string (the model version, e.g. a timestamp)
//	meta      uint32 count, then count x (key string, value float64), keys sorted
//	tensors   uint32 count, then count x (name string, rows uint32, cols uint32,
//	          rows*cols float64)
//	checksum  uint32 CRC-32C (Castagnoli) of every byte before it
//
// where string is a uint32 length and that many UTF-8 bytes. Every parameter
// is stored as float64 bits, so a model round-trips bit-exactly.
const (
	FileMagic     = "SRTOWERS"
	FormatVersion = 1
	// maxFileBytes bounds what a reader accepts (a corrupt length must not
	// make it allocate without limit).
	maxFileBytes = 1 << 31
)

// ErrBadModelFile wraps every decoding failure of a model file.
var ErrBadModelFile = errors.New("bad model file")

var crcTable = crc32.MakeTable(crc32.Castagnoli)

type namedTensor struct {
	name       string
	rows, cols int
	data       []float64
}

type modelFile struct {
	kind, version string
	meta          map[string]float64
	tensors       []namedTensor
}

func (f *modelFile) encode(w io.Writer) (int64, error) {
	var b bytes.Buffer
	le := binary.LittleEndian
	u32 := func(v int) { b.Write(le.AppendUint32(nil, uint32(v))) }
	str := func(s string) { u32(len(s)); b.WriteString(s) }
	f64 := func(v float64) { b.Write(le.AppendUint64(nil, math.Float64bits(v))) }
	b.WriteString(FileMagic)
	u32(FormatVersion)
	str(f.kind)
	str(f.version)
	keys := make([]string, 0, len(f.meta))
	for k := range f.meta {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	u32(len(keys))
	for _, k := range keys {
		str(k)
		f64(f.meta[k])
	}
	u32(len(f.tensors))
	for _, t := range f.tensors {
		if len(t.data) != t.rows*t.cols {
			panic("towers: model file tensor " + t.name + ": shape mismatch")
		}
		str(t.name)
		u32(t.rows)
		u32(t.cols)
		buf := make([]byte, 8*len(t.data))
		for i, v := range t.data {
			le.PutUint64(buf[8*i:], math.Float64bits(v))
		}
		b.Write(buf)
	}
	u32(int(crc32.Checksum(b.Bytes(), crcTable)))
	n, err := w.Write(b.Bytes())
	return int64(n), err
}

func decodeModelFile(r io.Reader) (*modelFile, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading model file: %w", err)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadModelFile, fmt.Sprintf(format, a...))
	}
	if len(raw) > maxFileBytes {
		return nil, bad("larger than %d bytes", maxFileBytes)
	}
	br, err := openChecked(raw, FileMagic, bad)
	if err != nil {
		return nil, err
	}
	if v := br.u32(); v != FormatVersion && br.err == nil {
		return nil, bad("format version %d, this build reads %d", v, FormatVersion)
	}
	f := &modelFile{kind: br.str(), version: br.str(), meta: map[string]float64{}}
	nm := br.u32()
	for i := 0; i < nm && br.err == nil; i++ {
		k := br.str()
		if v := br.f64s(1); br.err == nil {
			f.meta[k] = v[0]
		}
	}
	nt := br.u32()
	for i := 0; i < nt && br.err == nil; i++ {
		t := namedTensor{name: br.str(), rows: br.u32(), cols: br.u32()}
		if br.err == nil && t.rows > 0 && t.cols > len(br.p)/8/t.rows+1 {
			br.fail("tensor %q too large", t.name)
			break
		}
		t.data = br.f64s(t.rows * t.cols)
		f.tensors = append(f.tensors, t)
	}
	if err := br.end(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *modelFile) tensor(name string) (namedTensor, error) {
	for _, t := range f.tensors {
		if t.name == name {
			return t, nil
		}
	}
	return namedTensor{}, fmt.Errorf("%w: no tensor %q", ErrBadModelFile, name)
}

func (f *modelFile) int(key string) (int, error) {
	v, ok := f.meta[key]
	if !ok || v != math.Trunc(v) || v < 0 || v > 1<<30 {
		return 0, fmt.Errorf("%w: meta %q missing or not a size", ErrBadModelFile, key)
	}
	return int(v), nil
}

// loadParams fills p (already laid out and allocated) from f's tensors.
func (f *modelFile) loadParams(p *params) error {
	for _, t := range p.Tensors {
		ft, err := f.tensor(t.Name)
		if err != nil {
			return err
		}
		if ft.rows != t.Rows || ft.cols != t.Cols {
			return fmt.Errorf("%w: tensor %q is %dx%d, want %dx%d", ErrBadModelFile, t.Name, ft.rows, ft.cols, t.Rows, t.Cols)
		}
		copy(p.Data[t.Off:], ft.data)
	}
	return nil
}

func paramTensors(p *params) []namedTensor {
	var out []namedTensor
	for _, t := range p.Tensors {
		out = append(out, namedTensor{name: t.Name, rows: t.Rows, cols: t.Cols, data: p.Data[t.Off : t.Off+t.Rows*t.Cols]})
	}
	return out
}

func putSizes(meta map[string]float64, key string, s []int) {
	meta[key+".n"] = float64(len(s))
	for i, v := range s {
		meta[fmt.Sprintf("%s.%d", key, i)] = float64(v)
	}
}

func (f *modelFile) sizes(key string) ([]int, error) {
	n, err := f.int(key + ".n")
	if err != nil {
		return nil, err
	}
	s := make([]int, n)
	for i := range s {
		if s[i], err = f.int(fmt.Sprintf("%s.%d", key, i)); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// WriteTo writes the serving model as a model file (kind "twotower").
func (m *TwoTower) WriteTo(w io.Writer) (int64, error) {
	c := m.Cfg
	meta := map[string]float64{
		"dim": float64(c.Dim), "item_vectors": b2f(c.ItemVectors), "rank_weight": c.RankWeight,
		"rank_threshold": c.RankThreshold, "rank_temp": c.RankTemp, "negatives": float64(c.Negatives),
		"global_mean": m.GlobalMean, "n_users": float64(m.nUsers), "n_items": float64(m.nItems),
		"user_features": float64(m.User.In()), "item_features": float64(m.Item.In()),
	}
	putSizes(meta, "hidden", c.Hidden)
	for k, v := range m.Meta {
		meta[metaPrefix+k] = v
	}
	ts := paramTensors(&m.p)
	ts = append(ts, namedTensor{"user_vec", m.nUsers, c.Dim, m.UserVec})
	if m.ItemVec != nil {
		ts = append(ts, namedTensor{"item_vec", m.nItems, c.Dim, m.ItemVec})
	}
	trained := make([]float64, m.nItems)
	for i, ok := range m.ItemTrained {
		trained[i] = b2f(ok)
	}
	ts = append(ts, namedTensor{"item_trained", 1, m.nItems, trained})
	f := modelFile{kind: "twotower", version: m.Version, meta: meta, tensors: ts}
	return f.encode(w)
}

// WriteTo writes the seed baseline as a model file (kind "seed").
func (m *Seed) WriteTo(w io.Writer) (int64, error) {
	meta := map[string]float64{"dropout": m.Cfg.Dropout,
		"user_features": float64(m.User.In()), "item_features": float64(m.Item.In())}
	putSizes(meta, "tower", m.Cfg.Tower)
	putSizes(meta, "comb", m.Cfg.Comb)
	f := modelFile{kind: "seed", version: m.Version, meta: meta, tensors: paramTensors(&m.p)}
	return f.encode(w)
}

// ReadModel reads a model file and returns a *TwoTower or a *Seed. A file that
// is truncated, corrupt (checksum), of another format version or
// inconsistent returns an error wrapping ErrBadModelFile.
func ReadModel(r io.Reader) (any, error) {
	f, err := decodeModelFile(r)
	if err != nil {
		return nil, err
	}
	switch f.kind {
	case "twotower":
		return f.twoTower()
	case "seed":
		return f.seed()
	}
	return nil, fmt.Errorf("%w: unknown model kind %q", ErrBadModelFile, f.kind)
}

func (f *modelFile) twoTower() (*TwoTower, error) {
	var errs []error
	geti := func(k string) int { v, err := f.int(k); errs = append(errs, err); return v }
	cfg := TwoTowerConfig{Dim: geti("dim"), ItemVectors: f.meta["item_vectors"] == 1,
		RankWeight: f.meta["rank_weight"], RankThreshold: f.meta["rank_threshold"],
		RankTemp: f.meta["rank_temp"], Negatives: geti("negatives")}
	hidden, err := f.sizes("hidden")
	errs = append(errs, err)
	cfg.Hidden = hidden
	nu, ni, du, di := geti("n_users"), geti("n_items"), geti("user_features"), geti("item_features")
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Dim < 2 || nu == 0 || ni == 0 || du == 0 || di == 0 {
		return nil, fmt.Errorf("%w: bad twotower sizes", ErrBadModelFile)
	}
	for _, h := range hidden {
		if h == 0 {
			return nil, fmt.Errorf("%w: zero hidden width", ErrBadModelFile)
		}
	}
	m := NewTwoTower(nu, du, ni, di, cfg, rand.New(rand.NewPCG(0, 0)))
	m.Version, m.GlobalMean = f.version, f.meta["global_mean"]
	for k, v := range f.meta {
		if rest, ok := strings.CutPrefix(k, metaPrefix); ok {
			if m.Meta == nil {
				m.Meta = map[string]float64{}
			}
			m.Meta[rest] = v
		}
	}
	if err := f.loadParams(&m.p); err != nil {
		return nil, err
	}
	load := func(name string, dst []float64, rows, cols int) error {
		t, err := f.tensor(name)
		if err != nil {
			return err
		}
		if t.rows != rows || t.cols != cols {
			return fmt.Errorf("%w: tensor %q is %dx%d, want %dx%d", ErrBadModelFile, name, t.rows, t.cols, rows, cols)
		}
		copy(dst, t.data)
		return nil
	}
	if err := load("user_vec", m.UserVec, nu, cfg.Dim); err != nil {
		return nil, err
	}
	if m.ItemVec != nil {
		if err := load("item_vec", m.ItemVec, ni, cfg.Dim); err != nil {
			return nil, err
		}
	}
	trained := make([]float64, ni)
	if err := load("item_trained", trained, 1, ni); err != nil {
		return nil, err
	}
	for i, v := range trained {
		m.ItemTrained[i] = v == 1
	}
	return m, nil
}

func (f *modelFile) seed() (*Seed, error) {
	tower, err1 := f.sizes("tower")
	comb, err2 := f.sizes("comb")
	du, err3 := f.int("user_features")
	di, err4 := f.int("item_features")
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return nil, err
	}
	cfg := SeedConfig{Tower: tower, Comb: comb, Dropout: f.meta["dropout"]}
	if len(tower) == 0 || len(comb) == 0 || comb[len(comb)-1] != 1 || du == 0 || di == 0 || slices.Contains(tower, 0) || slices.Contains(comb, 0) {
		return nil, fmt.Errorf("%w: bad seed sizes", ErrBadModelFile)
	}
	m := NewSeed(du, di, cfg, 0, rand.New(rand.NewPCG(0, 0)))
	m.Version = f.version
	if err := f.loadParams(&m.p); err != nil {
		return nil, err
	}
	return m, nil
}

// SaveModel writes m (a *TwoTower or *Seed) to path atomically: into a
// temporary file in the same directory, synced, then renamed.
func SaveModel(path string, m io.WriterTo) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("saving model: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := m.WriteTo(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("saving model: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("saving model: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("saving model: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("saving model: %w", err)
	}
	return nil
}

// LoadModel reads the model file at path (see ReadModel).
func LoadModel(path string) (any, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("loading model: %w", err)
	}
	defer fh.Close()
	return ReadModel(fh)
}
