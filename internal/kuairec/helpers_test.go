package kuairec

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// realSideDir is the folder with the real KuaiRec side files, or "" (tests skip).
func realSideDir(t testing.TB) string {
	t.Helper()
	for _, d := range []string{"../../../shared/kuairec", "/work/shared/kuairec"} {
		if _, err := os.Stat(filepath.Join(d, ItemCategoryFile)); err == nil {
			return d
		}
	}
	t.Skip("real KuaiRec side files not found (../shared/kuairec)")
	return ""
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
