package wal_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps wal pure: parsing and arithmetic only, so no package
// that does I/O and nothing outside the standard library.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports " "}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	forbidden := []string{"os", "os/exec", "io/fs", "path/filepath", "net", "net/http", "database/sql", "syscall"}
	for _, imp := range strings.Fields(string(out)) {
		first, _, _ := strings.Cut(imp, "/")
		if strings.Contains(first, ".") {
			t.Errorf("wal imports %s: only the standard library is allowed", imp)
		}
		for _, f := range forbidden {
			if imp == f {
				t.Errorf("wal imports %s, which does I/O", imp)
			}
		}
	}
}
