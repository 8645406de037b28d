package synth

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/streamrec/streamrec/internal/kuairec"
	"github.com/streamrec/streamrec/internal/progress"
)

type userOut struct {
	u         int
	big, sm   []byte
	nBig, nSm int
}

// writeMatrices generates all users in parallel and writes both matrices in
// user order.
func (g *genModel) writeMatrices(dataDir string, cfg GenConfig) (int, int, error) {
	workers := cfg.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	open := func(name string) (*os.File, *bufio.Writer, error) {
		f, err := os.Create(filepath.Join(dataDir, name))
		if err != nil {
			return nil, nil, err
		}
		w := bufio.NewWriterSize(f, 1<<20)
		w.WriteString(kuairec.MatrixHeader + "\n")
		return f, w, nil
	}
	bf, bw, err := open(kuairec.BigMatrixFile)
	if err != nil {
		return 0, 0, err
	}
	defer bf.Close()
	sf, sw, err := open(kuairec.SmallMatrixFile)
	if err != nil {
		return 0, 0, err
	}
	defer sf.Close()

	var bar *progress.Bar
	if cfg.Progress != nil {
		est := int64(g.sc.BigRows) + int64(float64(g.sc.SmallUsers*g.sc.SmallVideos)*(1-smallMissingP))
		bar = progress.New(cfg.Progress, "rows", est)
		defer bar.Finish()
	}
	jobs := make(chan int)
	results := make(chan *userOut, 2*workers)
	window := make(chan struct{}, 8*workers) // bounds users held out of order
	free := sync.Pool{New: func() any { return &userOut{} }}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := &genScratch{}
			for u := range jobs {
				o := free.Get().(*userOut)
				sc.big, sc.sm = o.big[:0], o.sm[:0]
				o.u = u
				o.nBig, o.nSm = g.genUser(u, sc)
				o.big, o.sm = sc.big, sc.sm
				results <- o
			}
		}()
	}
	go func() {
		for u := range g.sc.Users {
			window <- struct{}{}
			jobs <- u
		}
		close(jobs)
		wg.Wait()
		close(results)
	}()
	pending := map[int]*userOut{}
	next, nBig, nSm := 0, 0, 0
	var werr error
	for o := range results {
		pending[o.u] = o
		for {
			p, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			if werr == nil {
				_, werr = bw.Write(p.big)
			}
			if werr == nil {
				_, werr = sw.Write(p.sm)
			}
			nBig += p.nBig
			nSm += p.nSm
			if bar != nil {
				bar.Add(int64(p.nBig + p.nSm))
			}
			free.Put(p)
			<-window
		}
	}
	if werr == nil {
		werr = errors.Join(bw.Flush(), sw.Flush(), bf.Close(), sf.Close())
	}
	if werr != nil {
		return 0, 0, fmt.Errorf("writing matrices: %w", werr)
	}
	return nBig, nSm, nil
}
