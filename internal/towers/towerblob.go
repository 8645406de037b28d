package towers

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// The tower-weights blob is what the ingestor publishes as a model version's
// TowerWeights (internal/cache stores it opaquely): the float32 user tower,
// with which the serving side computes T_u(x_u) for OnlineStep and for users
// unseen in training, and the float32 item tower, with which it embeds videos
// that appear after training. Little-endian throughout:
//
//	magic     8 bytes "SRTWRBLB"
//	format    uint32 (TowerBlobVersion)
//	towers    uint32 count, then count x:
//	            name    uint32 length + UTF-8 bytes ("user", "item")
//	            layers  uint32 count, then count x:
//	                      in, out uint32; relu uint8 (0 or 1);
//	                      W in*out float32 (row-major); B out float32
//	checksum  uint32 CRC-32C (Castagnoli) of every byte before it
const (
	TowerBlobMagic   = "SRTWRBLB"
	TowerBlobVersion = 1
)

// ErrBadTowerBlob wraps every decoding failure of a tower-weights blob.
var ErrBadTowerBlob = errors.New("bad tower-weights blob")

// NamedTower is one tower of a tower-weights blob.
type NamedTower struct {
	Name   string
	Layers []LayerWeights
}

// TowerBlob returns the model's tower-weights blob with the towers "user"
// and "item" (see EncodeTowers).
func (m *TwoTower) TowerBlob() []byte {
	return EncodeTowers([]NamedTower{{"user", m.UserTowerWeights()}, {"item", m.ItemTowerWeights()}})
}

// EncodeTowers encodes towers as a tower-weights blob. It panics if a layer's
// slices do not match its shape.
func EncodeTowers(towers []NamedTower) []byte {
	le := binary.LittleEndian
	var b []byte
	u32 := func(v int) { b = le.AppendUint32(b, uint32(v)) }
	b = append(b, TowerBlobMagic...)
	u32(TowerBlobVersion)
	u32(len(towers))
	for _, t := range towers {
		u32(len(t.Name))
		b = append(b, t.Name...)
		u32(len(t.Layers))
		for _, l := range t.Layers {
			if len(l.W) != l.In*l.Out || len(l.B) != l.Out {
				panic("towers: EncodeTowers: layer shape mismatch")
			}
			u32(l.In)
			u32(l.Out)
			if l.ReLU {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
			for _, v := range l.W {
				b = le.AppendUint32(b, math.Float32bits(v))
			}
			for _, v := range l.B {
				b = le.AppendUint32(b, math.Float32bits(v))
			}
		}
	}
	return le.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// DecodeTowers decodes a tower-weights blob. A truncated, corrupt or
// inconsistent blob (a layer whose input is not the previous layer's output)
// returns an error wrapping ErrBadTowerBlob.
func DecodeTowers(blob []byte) ([]NamedTower, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadTowerBlob, fmt.Sprintf(format, a...))
	}
	le := binary.LittleEndian
	if len(blob) < len(TowerBlobMagic)+8 || string(blob[:len(TowerBlobMagic)]) != TowerBlobMagic {
		return nil, bad("no %q magic", TowerBlobMagic)
	}
	body, sum := blob[:len(blob)-4], le.Uint32(blob[len(blob)-4:])
	if got := crc32.Checksum(body, crcTable); got != sum {
		return nil, bad("checksum %08x, stored %08x", got, sum)
	}
	p := body[len(TowerBlobMagic):]
	var derr error
	u32 := func() int {
		if derr != nil || len(p) < 4 {
			derr = cmpErr(derr, bad("truncated"))
			return 0
		}
		v := le.Uint32(p)
		p = p[4:]
		return int(v)
	}
	f32s := func(n int) []float32 {
		if derr != nil || n < 0 || n > len(p)/4 {
			derr = cmpErr(derr, bad("truncated data"))
			return nil
		}
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(p[4*i:]))
		}
		p = p[4*n:]
		return out
	}
	if v := u32(); v != TowerBlobVersion {
		return nil, bad("format version %d, this build reads %d", v, TowerBlobVersion)
	}
	nt := u32()
	var out []NamedTower
	for i := 0; i < nt && derr == nil; i++ {
		n := u32()
		if derr != nil || n > len(p) {
			return nil, cmpErr(derr, bad("truncated name"))
		}
		t := NamedTower{Name: string(p[:n])}
		p = p[n:]
		nl := u32()
		for j := 0; j < nl && derr == nil; j++ {
			l := LayerWeights{In: u32(), Out: u32()}
			if derr != nil || len(p) < 1 {
				derr = cmpErr(derr, bad("truncated layer"))
				break
			}
			l.ReLU = p[0] == 1
			p = p[1:]
			if l.In == 0 || l.Out == 0 || l.In > len(p)/4/l.Out+1 {
				derr = bad("tower %q layer %d: bad shape %dx%d", t.Name, j, l.In, l.Out)
				break
			}
			if j > 0 && l.In != t.Layers[j-1].Out {
				derr = bad("tower %q layer %d: input %d, previous output %d", t.Name, j, l.In, t.Layers[j-1].Out)
				break
			}
			l.W, l.B = f32s(l.In*l.Out), f32s(l.Out)
			t.Layers = append(t.Layers, l)
		}
		out = append(out, t)
	}
	if derr != nil {
		return nil, derr
	}
	if len(p) != 0 {
		return nil, bad("%d trailing bytes", len(p))
	}
	return out, nil
}

// FindTower returns the layers of the tower named name, or nil.
func FindTower(towers []NamedTower, name string) []LayerWeights {
	for _, t := range towers {
		if t.Name == name {
			return t.Layers
		}
	}
	return nil
}
