package backup

import (
	"context"
	"fmt"
	"io"

	"github.com/bulwarkdb/bulwark/internal/repo"
)

// Problem is one piece of damage, named by the backup and file it affects.
type Problem struct {
	Backup string `json:"backup,omitempty"`
	File   string `json:"file,omitempty"`
	Blob   string `json:"blob,omitempty"`
	Pack   string `json:"pack,omitempty"`
	Err    string `json:"error"`
}

// VerifyReport is the outcome of Verify.
type VerifyReport struct {
	ReadData     bool      `json:"read_data"`
	Backups      int       `json:"backups"`
	Packs        int       `json:"packs"`
	Blobs        int       `json:"blobs"`
	Unreferenced int       `json:"unreferenced_packs"`
	Problems     []Problem `json:"problems"`
}

// OK reports a repository with no damage.
func (v *VerifyReport) OK() bool { return len(v.Problems) == 0 }

// Verify checks the repository: every pack the index names exists, every
// backup record and manifest reads, and every blob a manifest names is
// indexed. With readData every blob is also read, decrypted and hashed.
// Damage is reported against the backups and files it affects.
func Verify(ctx context.Context, r *repo.Repo, readData bool, jobs int, progress func(Progress)) (*VerifyReport, error) {
	lock, err := r.Lock(ctx, "verify", false)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock(ctx)
	var pf func(done, total int)
	if progress != nil {
		pf = func(done, total int) { progress(Progress{Phase: "verify", Done: int64(done), Total: int64(total)}) }
	}
	d, err := r.CheckPacks(ctx, readData, jobs, pf)
	if err != nil {
		return nil, err
	}
	rep := &VerifyReport{ReadData: readData, Packs: len(r.Index().Packs()), Blobs: r.Index().Len(), Unreferenced: d.Unreferenced}
	for _, p := range d.Packs {
		rep.Problems = append(rep.Problems, Problem{Err: p})
	}
	names, err := r.ListDocs(ctx, docKind)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		rep.Backups++
		var info Info
		if err := r.LoadDoc(ctx, docKind, name, &info); err != nil {
			rep.Problems = append(rep.Problems, Problem{Backup: name, Err: "backup record: " + err.Error()})
			continue
		}
		rep.Problems = append(rep.Problems, checkBackup(ctx, r, &info, d)...)
	}
	return rep, nil
}

// checkBackup reports the files of one backup that use a damaged or
// missing blob, once per file.
func checkBackup(ctx context.Context, r *repo.Repo, info *Info, d *repo.Damage) []Problem {
	var out []Problem
	for _, id := range info.Manifest {
		if p, bad := blobProblem(r, id, d); bad {
			p.Backup, p.File = info.ID, "(manifest)"
			return append(out, p)
		}
	}
	m := OpenManifest(ctx, r, info)
	for {
		e, err := m.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			return append(out, Problem{Backup: info.ID, File: "(manifest)", Err: err.Error()})
		}
	file:
		for _, b := range e.Blocks {
			for _, id := range b.Parts {
				if p, bad := blobProblem(r, id, d); bad {
					p.Backup, p.File = info.ID, e.Path
					out = append(out, p)
					break file
				}
			}
		}
	}
}

func blobProblem(r *repo.Repo, id repo.ID, d *repo.Damage) (Problem, bool) {
	l, ok := r.Index().Lookup(id)
	if !ok {
		return Problem{Blob: id.String(), Err: "blob is not in the index"}, true
	}
	if err, bad := d.Blobs[id]; bad {
		return Problem{Blob: id.String(), Pack: l.Pack.String(), Err: err.Error()}, true
	}
	return Problem{}, false
}

// Summary is a one-line account of the report.
func (v *VerifyReport) Summary() string {
	mode := "structure"
	if v.ReadData {
		mode = "structure and data"
	}
	if v.OK() {
		return fmt.Sprintf("repository OK (%s): %d backups, %d packs, %d blobs", mode, v.Backups, v.Packs, v.Blobs)
	}
	return fmt.Sprintf("repository DAMAGED (%s): %d problems in %d backups, %d packs, %d blobs", mode, len(v.Problems), v.Backups, v.Packs, v.Blobs)
}
