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
	r, err := openChecked(blob, TowerBlobMagic, bad)
	if err != nil {
		return nil, err
	}
	if v := r.u32(); v != TowerBlobVersion && r.err == nil {
		return nil, bad("format version %d, this build reads %d", v, TowerBlobVersion)
	}
	nt := r.u32()
	var out []NamedTower
	for i := 0; i < nt && r.err == nil; i++ {
		t := NamedTower{Name: r.str()}
		nl := r.u32()
		for j := 0; j < nl && r.err == nil; j++ {
			l := LayerWeights{In: r.u32(), Out: r.u32()}
			l.ReLU = r.byte1() == 1
			if r.err != nil {
				break
			}
			if l.In == 0 || l.Out == 0 || l.In > len(r.p)/4/l.Out+1 {
				r.fail("tower %q layer %d: bad shape %dx%d", t.Name, j, l.In, l.Out)
				break
			}
			if j > 0 && l.In != t.Layers[j-1].Out {
				r.fail("tower %q layer %d: input %d, previous output %d", t.Name, j, l.In, t.Layers[j-1].Out)
				break
			}
			l.W, l.B = r.f32s(l.In*l.Out), r.f32s(l.Out)
			t.Layers = append(t.Layers, l)
		}
		out = append(out, t)
	}
	if err := r.end(); err != nil {
		return nil, err
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
