package drill

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// History keeps drill results on disk: DIR/ID/result.json, with the
// rendered reports beside it (report.html, report.md).
type History struct {
	Dir string
}

// Save writes r as DIR/r.ID/result.json, atomically, and returns the
// directory of the drill, where its reports belong.
func (h History) Save(r Result) (string, error) {
	if r.ID == "" || strings.ContainsAny(r.ID, `/\`) || r.ID == "." || r.ID == ".." {
		return "", fmt.Errorf("drill history: bad result ID %q", r.ID)
	}
	dir := filepath.Join(h.Dir, r.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("drill history: %w", err)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	tmp := filepath.Join(dir, ".result.json.tmp")
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("drill history: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "result.json")); err != nil {
		return "", fmt.Errorf("drill history: %w", err)
	}
	return dir, nil
}

// List returns every saved result, oldest first. A directory without a
// readable result is reported in the error, and the others still returned.
func (h History) List() ([]Result, error) {
	entries, err := os.ReadDir(h.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("drill history: %w", err)
	}
	var out []Result
	var errs []error
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(h.Dir, e.Name(), "result.json"))
		if err != nil {
			errs = append(errs, fmt.Errorf("drill history: %w", err))
			continue
		}
		var r Result
		if err := json.Unmarshal(data, &r); err != nil {
			errs = append(errs, fmt.Errorf("drill history: %s: %w", e.Name(), err))
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Result) int { return a.Started.Compare(b.Started) })
	return out, errors.Join(errs...)
}

// Latest returns the newest result of each scenario.
func (h History) Latest() (map[string]Result, error) {
	all, err := h.List()
	latest := map[string]Result{}
	for _, r := range all {
		latest[r.Scenario] = r
	}
	return latest, err
}
