package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwarkdb/bulwark/internal/cluster"
	"github.com/bulwarkdb/bulwark/internal/plan"
)

func (a *app) newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Inspect and steer an HA cluster (needs --plan)"}
	cmd.AddCommand(a.newClusterStatusCmd(), a.newSwitchoverCmd("switchover"), a.newSwitchoverCmd("failover"),
		a.newPauseCmd(true), a.newPauseCmd(false), a.newReinitCmd(), a.newHistoryCmd(),
		a.newClusterConfigCmd(), a.newRestartCmd())
	return cmd
}

// withStore runs fn with the plan's cluster store, bounded by timeout.
func (a *app) withStore(ctx context.Context, timeout time.Duration, fn func(context.Context, *plan.Cluster, *cluster.Store) error) error {
	_, c, err := a.clusterPlan()
	if err != nil {
		return err
	}
	s, err := a.openClusterStore(c)
	if err != nil {
		return err
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return fn(ctx, c, s)
}

// memberStatus is one member in `cluster status`.
type memberStatus struct {
	Name      string `json:"name"`
	Role      string `json:"role"`
	State     string `json:"state"`
	Timeline  uint32 `json:"timeline"`
	LSN       string `json:"lsn"`
	LagBytes  int64  `json:"lag_bytes"`
	Sync      bool   `json:"sync"`
	Leader    bool   `json:"leader"`
	APIURL    string `json:"api_url"`
	Conn      string `json:"conn"`
	Following string `json:"following,omitempty"`
	Error     string `json:"error,omitempty"`
}

type clusterStatus struct {
	Cluster string           `json:"cluster"`
	Leader  string           `json:"leader"`
	Term    uint64           `json:"term"`
	Mode    string           `json:"mode"`
	Paused  bool             `json:"paused"`
	Sync    *cluster.Sync    `json:"sync,omitempty"`
	Request *cluster.Request `json:"request,omitempty"`
	Members []memberStatus   `json:"members"`
}

func buildClusterStatus(c *plan.Cluster, snap cluster.Snapshot) clusterStatus {
	st := clusterStatus{Cluster: c.Name, Term: snap.Term, Sync: snap.Sync, Request: snap.Request}
	if snap.Config != nil {
		st.Mode, st.Paused = string(snap.Config.Mode), snap.Config.Paused
		if snap.Config.Strict {
			st.Mode += " (strict)"
		}
	}
	var leaderLSN int64
	if snap.Leader != nil {
		st.Leader = snap.Leader.Name
		leaderLSN = int64(snap.Members[snap.Leader.Name].LSN)
	}
	for _, n := range c.Nodes {
		m, ok := snap.Members[n.Name]
		ms := memberStatus{Name: n.Name, Role: "unknown", State: "agent down", APIURL: apiURL(c, n), Leader: n.Name == st.Leader}
		if ok {
			ms.Role, ms.State, ms.Timeline, ms.LSN, ms.Conn = string(m.Role), m.State, uint32(m.Timeline), m.LSN.String(), m.Conn
			ms.Following, ms.Error = m.Following, m.Error
			if m.Role == cluster.RoleReplica && leaderLSN > 0 {
				ms.LagBytes = max(0, leaderLSN-int64(m.LSN))
			}
			ms.Sync = snap.Sync != nil && snap.Sync.Quorum > 0 && slices.Contains(snap.Sync.Standbys, n.Name)
		}
		st.Members = append(st.Members, ms)
	}
	return st
}

func (a *app) newClusterStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show members, roles, timelines, lag and synchronous standbys",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withStore(cmd.Context(), 5*time.Second, func(ctx context.Context, c *plan.Cluster, s *cluster.Store) error {
				snap, err := s.Read(ctx)
				if err != nil {
					return err
				}
				st := buildClusterStatus(c, snap)
				if a.json() {
					return json.NewEncoder(a.stdout).Encode(st)
				}
				a.printClusterStatus(st)
				return nil
			})
		},
	}
}

func (a *app) printClusterStatus(st clusterStatus) {
	fmt.Fprintf(a.stdout, "cluster %s  leader %s  term %d  mode %s", st.Cluster, cmp.Or(st.Leader, "(none)"), st.Term, st.Mode)
	if st.Paused {
		fmt.Fprint(a.stdout, "  PAUSED")
	}
	fmt.Fprintln(a.stdout)
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tROLE\tSTATE\tTL\tLSN\tLAG\tSYNC\tAPI")
	for _, m := range st.Members {
		sync := ""
		if m.Sync {
			sync = "sync"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", m.Name, m.Role, m.State, m.Timeline, m.LSN, humanBytes(m.LagBytes), sync, m.APIURL)
	}
	w.Flush()
	for _, m := range st.Members {
		if m.Error != "" {
			fmt.Fprintf(a.stdout, "%s: %s\n", m.Name, m.Error)
		}
	}
}

func (a *app) newSwitchoverCmd(kind string) *cobra.Command {
	var to, at string
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   kind,
		Short: "Planned change of leader with no acknowledged commit lost",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var when time.Time
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return usageError{fmt.Errorf("--at %q: want RFC 3339, such as 2026-11-24T03:00:00Z", at)}
				}
				when = t
			}
			return a.withStore(cmd.Context(), wait+10*time.Second, func(ctx context.Context, c *plan.Cluster, s *cluster.Store) error {
				return a.requestLeaderChange(ctx, c, s, cluster.Request{Kind: kind, To: to, At: when}, wait)
			})
		},
	}
	if kind == "failover" {
		cmd.Short = "Manual failover to a named node (when the leader is healthy, a switchover to it)"
	}
	cmd.Flags().StringVar(&to, "to", "", "node to promote (default: the best replica)")
	cmd.Flags().StringVar(&at, "at", "", "not before this time (RFC 3339)")
	cmd.Flags().DurationVar(&wait, "wait", time.Minute, "wait this long for the new leader (0: do not wait)")
	if kind == "failover" {
		cmd.MarkFlagRequired("to")
	}
	return cmd
}

func (a *app) requestLeaderChange(ctx context.Context, c *plan.Cluster, s *cluster.Store, r cluster.Request, wait time.Duration) error {
	snap, err := s.Read(ctx)
	if err != nil {
		return err
	}
	if r.To != "" {
		if _, ok := c.Node(r.To); !ok {
			return usageError{fmt.Errorf("--to %q: the plan's nodes are %s", r.To, strings.Join(c.NodeNames(), ", "))}
		}
		if snap.Leader != nil && snap.Leader.Name == r.To {
			return fmt.Errorf("%s already leads", r.To)
		}
	}
	if snap.Leader == nil && r.Kind == "switchover" {
		return errors.New("no leader to switch over from; use failover --to NODE")
	}
	if snap.Leader != nil {
		r.From = snap.Leader.Name
	}
	if err := s.PutRequest(ctx, r); err != nil {
		return err
	}
	if wait == 0 || !r.At.IsZero() {
		fmt.Fprintf(a.stdout, "%s requested\n", r.Kind)
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s requested, but no new leader after %s (see bulwark cluster status)", r.Kind, wait)
		case <-time.After(100 * time.Millisecond):
		}
		now, err := s.Read(ctx)
		if err != nil {
			continue
		}
		if l := now.Leader; l != nil && l.Term > snap.Term && now.Members[l.Name].Role == cluster.RolePrimary {
			fmt.Fprintf(a.stdout, "%s done: %s leads (term %d)\n", r.Kind, l.Name, l.Term)
			return nil
		}
	}
}

func (a *app) newPauseCmd(pause bool) *cobra.Command {
	use, short := "pause", "Maintenance mode: agents stop taking automatic actions"
	if !pause {
		use, short = "resume", "End maintenance mode"
	}
	return &cobra.Command{
		Use: use, Short: short, Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withStore(cmd.Context(), 5*time.Second, func(ctx context.Context, _ *plan.Cluster, s *cluster.Store) error {
				_, err := s.UpdateConfig(ctx, func(c *cluster.Config) error { c.Paused = pause; return nil })
				if err == nil {
					fmt.Fprintf(a.stdout, "cluster %sd\n", use)
				}
				return err
			})
		},
	}
}

func (a *app) newReinitCmd() *cobra.Command {
	return &cobra.Command{
		Use: "reinit NODE", Short: "Wipe a replica and clone it again from the leader", Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			return a.withStore(cmd.Context(), 5*time.Second, func(ctx context.Context, c *plan.Cluster, s *cluster.Store) error {
				if _, ok := c.Node(argv[0]); !ok {
					return usageError{fmt.Errorf("no node %q in the plan", argv[0])}
				}
				snap, err := s.Read(ctx)
				if err != nil {
					return err
				}
				if snap.Leader != nil && snap.Leader.Name == argv[0] {
					return fmt.Errorf("%s leads: switch over first", argv[0])
				}
				if err := s.SetReinit(ctx, argv[0], true); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "reinit of %s requested\n", argv[0])
				return nil
			})
		},
	}
}

func (a *app) newHistoryCmd() *cobra.Command {
	return &cobra.Command{
		Use: "history", Short: "List failovers and switchovers", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withStore(cmd.Context(), 5*time.Second, func(ctx context.Context, _ *plan.Cluster, s *cluster.Store) error {
				events, err := s.History(ctx)
				if err != nil {
					return err
				}
				if a.json() {
					return json.NewEncoder(a.stdout).Encode(events)
				}
				w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "TERM\tKIND\tPROMOTED\tNEW\tOLD\tTL\tNEW LSN\tOLD LSN\tDOWNTIME\tREWOUND")
				for _, e := range events {
					rw := ""
					if r := e.Rewound; r != nil {
						rw = fmt.Sprintf("%s %s..%s", r.Node, r.From, r.To)
						if r.Recloned {
							rw = r.Node + " recloned"
						}
					}
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", e.Term, e.Kind, e.Promoted.Format(time.RFC3339), e.New, e.Old,
						e.Timeline, e.NewLSN, e.OldLSN, time.Duration(e.Downtime).Round(time.Millisecond), rw)
				}
				return w.Flush()
			})
		},
	}
}
