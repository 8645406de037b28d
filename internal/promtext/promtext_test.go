package promtext

import "testing"

func TestValue(t *testing.T) {
	body := "# HELP x_total help\n# TYPE x_total counter\nx_total 42\nx_total_other 1\ny{partition=\"0\"} 3\nz 1.5e+06\n"
	for _, tc := range []struct {
		name string
		want float64
		ok   bool
	}{{"x_total", 42, true}, {"z", 1.5e6, true}, {"y", 0, false}, {"x", 0, false}} {
		if got, ok := Value(body, tc.name); got != tc.want || ok != tc.ok {
			t.Errorf("Value(%q) = %v %v, want %v %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}
