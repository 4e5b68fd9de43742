package bench

import "testing"

func TestPostgresTicks(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		want       int64
	}{
		{"backend", "2240 (postgres) S 1 2240 2240 0 -1 4194304 5880 622491 0 58 11 23 3315 1698 20 0 1 0 4264", 34},
		{"another command", "22999 (cat) R 22956 22956 4262 0 -1 4194304 125 0 0 0 7 5 0 0 20 0", 0},
		{"a name that only starts so", "12 (postgres-exporter) S 1 1 1 0 -1 0 0 0 0 0 40 2 0 0", 0},
		{"parentheses in the command", "13 (a) (postgres) S 1 1 1 0 -1 0 0 0 0 0 40 2 0 0", 0},
		{"truncated", "2240 (postgres) S 1 2240", 0},
		{"not a number", "2240 (postgres) S 1 2240 2240 0 -1 4194304 5880 622491 0 58 x 23", 0},
		{"empty", "", 0},
	} {
		if got := postgresTicks(tc.stat); got != tc.want {
			t.Errorf("%s: postgresTicks = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestSampleCPU(t *testing.T) {
	a := sampleCPU()
	if !a.ok {
		t.Fatal("sampleCPU: not ok on Linux")
	}
	x := 0
	for i := range 50_000_000 { // burn a few tens of milliseconds
		x ^= i * i
	}
	b := sampleCPU()
	// Postgres's sum can fall: a backend that exits takes its CPU along.
	if b.process < a.process || b.machine < a.machine {
		t.Fatalf("CPU went backwards: %+v then %+v (x=%d)", a, b, x)
	}
	if b.process == a.process {
		t.Fatalf("no CPU counted for a busy loop: %+v then %+v", a, b)
	}
}
