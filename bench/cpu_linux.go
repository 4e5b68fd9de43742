package bench

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuSample is CPU time spent so far: by this process, by the Postgres
// server's processes when it runs on this machine, and by the whole machine.
type cpuSample struct {
	process, postgres, machine time.Duration
	ok                         bool
}

const userHZ = 100 // USER_HZ is 100 on every Linux ABI Go supports

// sampleCPU reads getrusage for this process, /proc/stat for the machine and
// /proc/<pid>/stat for each process named postgres. A figure it cannot read
// leaves ok false; the report then omits CPU. A Postgres backend that exits
// between two samples takes its CPU along, so the Postgres figure can only
// err low; the pool keeps its connections through a drain.
func sampleCPU() cpuSample {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuSample{}
	}
	s := cpuSample{process: time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
	f, err := os.Open("/proc/stat")
	if err != nil {
		return s
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return s
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 6 || fields[0] != "cpu" {
		return s
	}
	// user nice system idle iowait irq softirq steal...: busy is all but idle and iowait.
	var busy int64
	for i, v := range fields[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return s
		}
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is already in user
			continue
		}
		busy += n
	}
	s.machine = time.Duration(busy) * time.Second / userHZ
	s.postgres = postgresCPU()
	s.ok = true
	return s
}

// postgresCPU sums user and system time over the processes whose command
// is postgres (the postmaster, its backends and background workers).
func postgresCPU() time.Duration {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var ticks int64
	for _, d := range dirs {
		if name := d.Name(); name[0] < '0' || name[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		ticks += postgresTicks(string(b))
	}
	return time.Duration(ticks) * time.Second / userHZ
}

// postgresTicks returns utime+stime from one /proc/<pid>/stat line when the
// process is a postgres one, and 0 otherwise. The command sits in
// parentheses and may itself hold spaces or parentheses, so the fields
// are counted from the last ')'.
func postgresTicks(stat string) int64 {
	open, end := strings.IndexByte(stat, '('), strings.LastIndexByte(stat, ')')
	if open < 0 || end < open || stat[open+1:end] != "postgres" {
		return 0
	}
	f := strings.Fields(stat[end+1:])
	if len(f) < 13 { // state ppid ... utime(12) stime(13), counted from state
		return 0
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	k, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return u + k
}
