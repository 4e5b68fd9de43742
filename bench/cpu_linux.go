package bench

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuSample is CPU time spent so far: by this process, and by the whole
// machine (every process, Postgres included).
type cpuSample struct {
	process, machine time.Duration
	ok               bool
}

// sampleCPU reads getrusage for this process and /proc/stat for the machine.
// A figure it cannot read leaves ok false; the report then omits CPU.
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
	const userHZ = 100 // USER_HZ is 100 on every Linux ABI Go supports
	s.machine = time.Duration(busy) * time.Second / userHZ
	s.ok = true
	return s
}
