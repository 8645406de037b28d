package towers

import "fmt"

// tensor names one block of a flat parameter vector.
type tensor struct {
	Name       string
	Rows, Cols int
	Off        int
}

// params is a flat parameter vector and the named blocks that tile it. Every
// dense parameter of a model lives here, so that the optimiser, the gradient
// reduction between workers, best-epoch snapshots and the model file each
// handle one slice.
type params struct {
	Data    []float64
	Tensors []tensor
}

// reserve appends a rows x cols block to the layout and returns its offset.
// Call alloc once every block is reserved.
func (p *params) reserve(name string, rows, cols int) int {
	off := 0
	if n := len(p.Tensors); n > 0 {
		t := p.Tensors[n-1]
		off = t.Off + t.Rows*t.Cols
	}
	p.Tensors = append(p.Tensors, tensor{Name: name, Rows: rows, Cols: cols, Off: off})
	return off
}

// size is the total number of parameters reserved.
func (p *params) size() int {
	if len(p.Tensors) == 0 {
		return 0
	}
	t := p.Tensors[len(p.Tensors)-1]
	return t.Off + t.Rows*t.Cols
}

func (p *params) alloc() { p.Data = make([]float64, p.size()) }

// block returns the data of the named block.
func (p *params) block(name string) []float64 {
	for _, t := range p.Tensors {
		if t.Name == name {
			return p.Data[t.Off : t.Off+t.Rows*t.Cols]
		}
	}
	panic(fmt.Sprintf("towers: no parameter block %q", name))
}

// reserveDense reserves the weight and bias blocks of an in x out layer and
// returns the unbound layer; bindDense points it at p.Data after alloc.
func (p *params) reserveDense(name string, in, out int) *Dense {
	d := &Dense{In: in, Out: out}
	d.offW = p.reserve(name+".W", in, out)
	d.offB = p.reserve(name+".b", 1, out)
	return d
}

func (p *params) bindDense(d *Dense) {
	d.W = p.Data[d.offW : d.offW+d.In*d.Out]
	d.B = p.Data[d.offB : d.offB+d.Out]
}
