//go:build !linux

package bench

import "time"

type cpuSample struct {
	process, postgres, machine time.Duration
	ok                         bool
}

// sampleCPU has no portable source outside Linux; the report omits CPU.
func sampleCPU() cpuSample { return cpuSample{} }
