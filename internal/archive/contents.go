package archive

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bulwarkdb/bulwark/internal/repo"
	"github.com/bulwarkdb/bulwark/internal/wal"
)

func sortPieces(ps []piece) {
	slices.SortFunc(ps, func(a, b piece) int { return cmp.Or(cmp.Compare(a.from, b.from), cmp.Compare(b.to, a.to)) })
}

// Contents describes what the archive holds.
type Contents struct {
	SystemID    uint64     `json:"system_id,string,omitempty"`
	SegmentSize uint64     `json:"segment_size,omitempty"`
	Timelines   []Timeline `json:"timelines"`
	// Newest is the newest archived position over all timelines.
	Newest *Position `json:"newest,omitempty"`
}

// Position is a point in the archived WAL and when it was archived.
type Position struct {
	TLI      wal.TimelineID `json:"timeline"`
	LSN      wal.LSN        `json:"lsn"`
	Archived time.Time      `json:"archived"`
}

// Timeline is what the archive holds of one timeline.
type Timeline struct {
	TLI wal.TimelineID `json:"timeline"`
	// Parent and SwitchLSN come from the timeline's history file: it
	// branched off Parent at SwitchLSN. Zero for timeline 1 or when the
	// history file is missing (HistoryMissing).
	Parent         wal.TimelineID `json:"parent,omitempty"`
	SwitchLSN      wal.LSN        `json:"switch_lsn,omitempty"`
	HistoryMissing bool           `json:"history_missing,omitempty"`
	First          string         `json:"first_segment,omitempty"`
	Last           string         `json:"last_segment,omitempty"`
	Segments       int            `json:"segments"`
	// Gaps lists the segments missing between First and Last.
	Gaps []Gap `json:"gaps,omitempty"`
	// Streamed is the segment the receiver is writing, if any, and how far.
	Streamed *Streamed `json:"streamed,omitempty"`
	// End is the newest archived position on this timeline.
	End Position `json:"end"`

	segNos map[uint64]bool
}

// Gap is a run of missing segments, From through To.
type Gap struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Count int    `json:"count"`
}

func (g Gap) String() string {
	if g.Count == 1 {
		return g.From
	}
	return fmt.Sprintf("%s..%s (%d segments)", g.From, g.To, g.Count)
}

// Streamed is a segment whose beginning the receiver has archived.
type Streamed struct {
	Segment string  `json:"segment"`
	Bytes   uint64  `json:"bytes"`
	EndLSN  wal.LSN `json:"end_lsn"`
}

type tlScan struct {
	full    map[uint64]bool
	streams map[uint64][]piece
}

// Contents lists the archive. An empty archive has no timelines.
func (a *Archive) Contents(ctx context.Context) (*Contents, error) {
	c := &Contents{}
	info, err := a.Info(ctx)
	if errors.Is(err, ErrNotFound) {
		return c, nil
	} else if err != nil {
		return nil, err
	}
	c.SystemID, c.SegmentSize = info.SystemID, info.SegmentSize
	scans := map[wal.TimelineID]*tlScan{}
	scan := func(tli wal.TimelineID) *tlScan {
		s := scans[tli]
		if s == nil {
			s = &tlScan{full: map[uint64]bool{}, streams: map[uint64][]piece{}}
			scans[tli] = s
		}
		return s
	}
	histories := map[wal.TimelineID]bool{}
	for key, err := range a.r.Store().List(ctx, prefix) {
		if err != nil {
			return nil, fmt.Errorf("list archive: %w", err)
		}
		rest := strings.TrimPrefix(key, prefix)
		if name, ok := strings.CutPrefix(key, historyDir); ok {
			if wal.IsHistoryFile(name) {
				tli, _ := strconv.ParseUint(name[:8], 16, 32) // IsHistoryFile checked the digits
				histories[wal.TimelineID(tli)] = true
			}
			continue
		}
		parts := strings.Split(rest, "/")
		switch {
		case len(parts) == 2:
			k, seg, err := Classify(parts[1])
			if err != nil || k != KindSegment {
				continue
			}
			s := scan(seg.TLI)
			n := seg.SegNo(info.SegmentSize)
			s.full[n] = true
		case len(parts) == 3:
			base, ok := strings.CutSuffix(parts[1]+"/", streamDir)
			if !ok {
				continue
			}
			seg, err := wal.ParseSegmentName(base)
			if err != nil {
				continue
			}
			from, to, ok := parsePieceName(parts[2])
			if !ok {
				continue
			}
			s := scan(seg.TLI)
			n := seg.SegNo(info.SegmentSize)
			s.streams[n] = append(s.streams[n], piece{key: key, from: from, to: to})
		}
	}
	for tli := range histories {
		scan(tli)
	}
	for _, tli := range slices.Sorted(maps.Keys(scans)) {
		tl, err := a.timeline(ctx, tli, scans[tli], histories[tli], info.SegmentSize)
		if err != nil {
			return nil, err
		}
		c.Timelines = append(c.Timelines, tl)
		if tl.End.LSN != 0 && (c.Newest == nil || tl.End.Archived.After(c.Newest.Archived)) {
			end := tl.End
			c.Newest = &end
		}
	}
	return c, nil
}

func (a *Archive) timeline(ctx context.Context, tli wal.TimelineID, s *tlScan, hasHistory bool, segSize uint64) (Timeline, error) {
	tl := Timeline{TLI: tli, segNos: s.full}
	if tli > 1 {
		if !hasHistory {
			tl.HistoryMissing = true
		} else {
			h, err := a.History(ctx, tli)
			if err != nil {
				return tl, err
			}
			if len(h) > 0 {
				tl.Parent, tl.SwitchLSN = h[len(h)-1].TLI, h[len(h)-1].SwitchLSN
			}
		}
	}
	nos := slices.Sorted(maps.Keys(s.full))
	name := func(n uint64) string { return wal.SegmentOf(tli, wal.LSN(n*segSize), segSize).String() }
	if len(nos) > 0 {
		tl.First, tl.Last, tl.Segments = name(nos[0]), name(nos[len(nos)-1]), len(nos)
		for i := 1; i < len(nos); i++ {
			if nos[i] != nos[i-1]+1 {
				tl.Gaps = append(tl.Gaps, Gap{From: name(nos[i-1] + 1), To: name(nos[i] - 1), Count: int(nos[i] - nos[i-1] - 1)})
			}
		}
		last := nos[len(nos)-1]
		key, _ := objectKey(tl.Last)
		h, err := a.readHeader(ctx, key)
		if err != nil {
			return tl, err
		}
		tl.End = Position{TLI: tli, LSN: wal.LSN((last + 1) * segSize), Archived: h.Pushed}
	}
	// The streamed segment that reaches furthest beyond the full ones.
	for _, n := range slices.Backward(slices.Sorted(maps.Keys(s.streams))) {
		if len(nos) > 0 && n <= nos[len(nos)-1] {
			break
		}
		ps := s.streams[n]
		sortPieces(ps)
		end, run := partialRun(ps)
		if end == 0 {
			continue
		}
		h, err := a.readHeader(ctx, run[len(run)-1].key)
		if err != nil && !errors.Is(err, repo.ErrNotFound) {
			return tl, err
		}
		tl.Streamed = &Streamed{Segment: name(n), Bytes: end, EndLSN: wal.LSN(n*segSize + end)}
		if len(nos) > 0 && n != nos[len(nos)-1]+1 {
			tl.Gaps = append(tl.Gaps, Gap{From: name(nos[len(nos)-1] + 1), To: name(n - 1), Count: int(n - nos[len(nos)-1] - 1)})
		}
		tl.End = Position{TLI: tli, LSN: tl.Streamed.EndLSN, Archived: h.Pushed}
		break
	}
	return tl, nil
}

// Timeline returns the timeline tli of c, or nil.
func (c *Contents) Timeline(tli wal.TimelineID) *Timeline {
	for i := range c.Timelines {
		if c.Timelines[i].TLI == tli {
			return &c.Timelines[i]
		}
	}
	return nil
}

// Latest returns the newest timeline that descends from (or is) tli.
func (c *Contents) Latest(tli wal.TimelineID) wal.TimelineID {
	best := tli
	for _, tl := range c.Timelines {
		if tl.TLI > best && c.descends(tl.TLI, tli) {
			best = tl.TLI
		}
	}
	return best
}

func (c *Contents) descends(child, ancestor wal.TimelineID) bool {
	for child != ancestor {
		tl := c.Timeline(child)
		if tl == nil || tl.Parent == 0 {
			return false
		}
		child = tl.Parent
	}
	return true
}

// Missing lists the segments that replaying from LSN from on timeline
// fromTLI up to LSN to on timeline toTLI needs and the archive lacks (a
// streamed beginning counts for the last segment). to == 0 means up to
// the newest archived position of toTLI.
func (c *Contents) Missing(fromTLI wal.TimelineID, from wal.LSN, toTLI wal.TimelineID, to wal.LSN) ([]string, error) {
	// The chain of timelines from toTLI back to fromTLI.
	var chain []*Timeline
	for t := toTLI; ; {
		tl := c.Timeline(t)
		if tl == nil {
			return nil, fmt.Errorf("the archive holds nothing of timeline %d", t)
		}
		chain = append(chain, tl)
		if t == fromTLI {
			break
		}
		if tl.Parent == 0 {
			return nil, fmt.Errorf("timeline %d does not descend from timeline %d (history file %s)", toTLI, fromTLI, wal.HistoryFileName(t))
		}
		t = tl.Parent
	}
	slices.Reverse(chain)
	if to == 0 {
		to = chain[len(chain)-1].End.LSN
		if to == 0 {
			return nil, fmt.Errorf("the archive holds no WAL on timeline %d", toTLI)
		}
		to-- // End is exclusive
	}
	size := c.SegmentSize
	var missing []string
	for i, tl := range chain {
		end := to
		if i+1 < len(chain) {
			// Recovery reads the segment holding the switch point from the
			// child timeline (it carries the parent's bytes before it).
			end = wal.LSN(uint64(chain[i+1].SwitchLSN)/size*size) - 1
		}
		if end < from {
			continue
		}
		for n := uint64(from) / size; n <= uint64(end)/size; n++ {
			if tl.segNos[n] {
				continue
			}
			if tl.Streamed != nil && uint64(tl.Streamed.EndLSN-1)/size == n && tl.Streamed.EndLSN > end {
				continue
			}
			missing = append(missing, wal.SegmentOf(tl.TLI, wal.LSN(n*size), size).String())
		}
		if i+1 < len(chain) {
			from = chain[i+1].SwitchLSN
		}
	}
	return missing, nil
}

// ExpireBefore removes the archived WAL of every segment numbered below
// segNo, on every timeline: segments, streamed pieces, .partial and backup
// history files. Timeline history files stay (they are tiny and every later
// timeline needs its ancestors'). Recovery only moves forward from a
// backup's start, so WAL before the oldest kept backup's start segment
// serves no restore. With dryRun it only counts. It returns how many
// objects (would) go.
func (a *Archive) ExpireBefore(ctx context.Context, segNo uint64, dryRun bool) (int, error) {
	info, err := a.Info(ctx)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	var doomed []string
	for key, err := range a.r.Store().List(ctx, prefix) {
		if err != nil {
			return 0, fmt.Errorf("list archive: %w", err)
		}
		if strings.HasPrefix(key, historyDir) {
			continue
		}
		parts := strings.Split(strings.TrimPrefix(key, prefix), "/")
		if len(parts) < 2 || len(parts[1]) < 24 {
			continue
		}
		seg, err := wal.ParseSegmentName(parts[1][:24])
		if err != nil {
			continue
		}
		if seg.SegNo(info.SegmentSize) < segNo {
			doomed = append(doomed, key)
		}
	}
	if dryRun {
		return len(doomed), nil
	}
	for _, key := range doomed {
		if err := a.r.Store().Delete(ctx, key); err != nil {
			return 0, fmt.Errorf("expire %s: %w", key, err)
		}
	}
	return len(doomed), nil
}
