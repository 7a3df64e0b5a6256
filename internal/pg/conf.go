package pg

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ManagedConf is the file, in the data directory, that holds the settings an
// agent manages. postgresql.conf includes it at its end, so it overrides
// postgresql.conf; postgresql.auto.conf (ALTER SYSTEM) still overrides it,
// which is why operators must not ALTER SYSTEM what the agent manages.
const ManagedConf = "bulwark.conf"

const includeLine = "include_if_exists = '" + ManagedConf + "'\t# managed by bulwark agent"

// WriteConf replaces ManagedConf with settings (name → value, written
// quoted), atomically, and makes postgresql.conf include it. It does not
// reload the server. It reports whether the file changed.
func (i *Instance) WriteConf(settings map[string]string) (bool, error) {
	var b bytes.Buffer
	b.WriteString("# Written by the bulwark agent; changes here are overwritten.\n")
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		fmt.Fprintf(&b, "%s = %s\n", k, QuoteConf(settings[k]))
	}
	path := filepath.Join(i.DataDir, ManagedConf)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b.Bytes()) {
		return false, i.ensureInclude()
	}
	if err := writeFileAtomic(path, b.Bytes()); err != nil {
		return false, err
	}
	return true, i.ensureInclude()
}

// QuoteConf quotes a value for postgresql.conf.
func QuoteConf(v string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(v, `\`, `\\`), "'", "''") + "'"
}

func (i *Instance) ensureInclude() error {
	path := filepath.Join(i.DataDir, "postgresql.conf")
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read postgresql.conf: %w", err)
	}
	if bytes.Contains(data, []byte(includeLine)) {
		return nil
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		data = append(data, '\n')
	}
	return writeFileAtomic(path, append(data, includeLine+"\n"...))
}

// SetStandby creates standby.signal (on) or removes it (off), so that the
// next start runs the server as a standby or as a primary.
func (i *Instance) SetStandby(on bool) error {
	path := filepath.Join(i.DataDir, "standby.signal")
	if on {
		return writeFileAtomic(path, nil)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
