package main

import (
	"os"
	"runtime"
	"runtime/pprof"

	"github.com/rs/zerolog"
)

// startProfiles writes a CPU profile to $EGRESSD_CPUPROFILE and a heap
// (allocation) profile to $EGRESSD_MEMPROFILE for the whole run, for
// performance work (the benchmark uses them). Off unless set.
func startProfiles(log zerolog.Logger) (stop func()) {
	cpuPath, memPath := os.Getenv("EGRESSD_CPUPROFILE"), os.Getenv("EGRESSD_MEMPROFILE")
	if cpuPath == "" && memPath == "" {
		return nil
	}
	var cpuFile *os.File
	if cpuPath != "" {
		f, err := os.Create(cpuPath)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			log.Warn().Err(err).Msg("cpu profile not started")
		} else {
			cpuFile = f
		}
	}
	if memPath != "" {
		runtime.MemProfileRate = 64 << 10
	}
	return func() {
		if cpuFile != nil {
			pprof.StopCPUProfile()
			cpuFile.Close()
		}
		if memPath != "" {
			if f, err := os.Create(memPath); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}
	}
}
