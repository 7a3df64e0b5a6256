package pgtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

// tmpl is the initdb template of this test binary, made once and copied by
// every Start.
var tmpl struct {
	once sync.Once
	dir  string // removed by removeTemplate
	data string
	err  error
}

// template returns the template data directory, running initdb on first use.
func template() (string, error) {
	tmpl.once.Do(func() {
		removeStale()
		tmpl.dir, tmpl.data, tmpl.err = initTemplate()
	})
	return tmpl.data, tmpl.err
}

func initTemplate() (dir, data string, err error) {
	dir, err = mkdirTemp("template")
	if err != nil {
		return "", "", fmt.Errorf("initdb template: %w", err)
	}
	data = filepath.Join(dir, "data")
	if err := initdb(data); err != nil {
		return dir, "", fmt.Errorf("initdb template: %w", err)
	}
	if err := appendConf(data, defaultConf); err != nil {
		return dir, "", fmt.Errorf("initdb template: %w", err)
	}
	return dir, data, nil
}

// initdb creates a cluster with data checksums in data, which must not exist.
func initdb(data string) error {
	if err := os.Mkdir(data, 0o700); err != nil {
		return err
	}
	if err := chownOwner(data); err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(BinDir(), "initdb"),
		"-D", data, "--data-checksums", "-A", "trust", "-U", "postgres",
		"--no-sync", "--no-instructions", "-E", "UTF8", "--locale=C")
	cmd.Dir = filepath.Dir(data)
	AsOwner(cmd)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w\n%s", cmd, err, out)
	}
	return nil
}

// removeTemplate removes the template; Main calls it after the tests.
func removeTemplate() {
	tmpl.once.Do(func() {}) // orders this read after a concurrent first use
	if tmpl.dir != "" {
		_ = os.RemoveAll(tmpl.dir) // best effort: the next binary sweeps leftovers
	}
}
