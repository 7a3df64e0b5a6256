package pgtest

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
)

// defaultConf is written into the template's postgresql.conf. fsync=off makes
// tests fast; durability tests set Options.Conf["fsync"] = "on".
var defaultConf = map[string]string{
	"fsync":             "off",
	"wal_level":         "replica",
	"max_wal_senders":   "10",
	"logging_collector": "off", // server output must reach the test log
}

// confLines renders conf as postgresql.conf lines, sorted by key, every
// value quoted (PostgreSQL accepts quotes around values of any type).
func confLines(conf map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(conf)) {
		v := strings.ReplaceAll(unquoteConf(conf[k]), "'", "''")
		fmt.Fprintf(&b, "%s = '%s'\n", k, v)
	}
	return b.String()
}

// confArgs renders conf as postgres command-line options, sorted by key.
func confArgs(conf map[string]string) []string {
	var args []string
	for _, k := range slices.Sorted(maps.Keys(conf)) {
		args = append(args, "-c", k+"="+unquoteConf(conf[k]))
	}
	return args
}

// unquoteConf accepts a value written either raw (cp %p /x/%f) or already
// quoted for postgresql.conf ('cp %p /x/%f') and returns it raw.
func unquoteConf(v string) string {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return strings.ReplaceAll(v[1:len(v)-1], "''", "'")
	}
	return v
}

// appendConf appends conf to the postgresql.conf in dataDir; later lines win.
func appendConf(dataDir string, conf map[string]string) error {
	if len(conf) == 0 {
		return nil
	}
	path := dataDir + "/postgresql.conf"
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString("\n# pgtest\n" + confLines(conf))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	return nil
}
