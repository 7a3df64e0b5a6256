package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/bulwarkdb/bulwark/internal/backup"
)

// progressLine redraws one status line: bytes, rate and ETA.
type progressLine struct {
	w     io.Writer
	start time.Time
}

func (p *progressLine) update(pr backup.Progress) {
	if p.start.IsZero() {
		p.start = time.Now()
	}
	el := time.Since(p.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(pr.Done) / el
	}
	line := fmt.Sprintf("%s %s", pr.Phase, humanBytes(pr.Done))
	if pr.Phase == "verify" {
		line = fmt.Sprintf("verify %d/%d packs", pr.Done, pr.Total)
	} else {
		if pr.Total > 0 {
			line += " / " + humanBytes(pr.Total)
		}
		line += fmt.Sprintf("  %s/s", humanBytes(int64(rate)))
		if pr.Total > pr.Done && rate > 0 {
			line += fmt.Sprintf("  ETA %s", time.Duration(float64(pr.Total-pr.Done)/rate*float64(time.Second)).Round(time.Second))
		}
	}
	fmt.Fprintf(p.w, "\r\033[K%s", line)
}
