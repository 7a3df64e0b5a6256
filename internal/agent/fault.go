package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"syscall"
	"time"
)

// Drill faults through the agent: `bulwark drill run --faults agents`
// asks each node's agent, over the authenticated REST API, to do to its
// own node what a drill on this machine does with signals. That is how a
// cluster on other hosts is drilled. The endpoint exists only when the
// agent was started with --drill-faults.

// Fault kinds the agent injects into its own node.
const (
	FaultCrash    = "crash"     // kill -9 of the postmaster
	FaultHang     = "hang"      // SIGSTOP of the agent and PostgreSQL for Hold, then SIGCONT
	FaultNodeLoss = "node-loss" // kill -9 of the agent and the postmaster; the agent starts again after Hold
)

// MaxFaultHold bounds how long a hang or a node loss lasts.
const MaxFaultHold = 10 * time.Minute

// Fault is a fault a helper process injects into this node: one that
// stops or kills the agent itself, so the agent cannot carry it out.
type Fault struct {
	Kind       string
	Hold       time.Duration
	Agent      int // the agent's PID
	Postmaster int // PostgreSQL's postmaster's PID
}

// FaultRequest is the body of POST /drill/fault.
type FaultRequest struct {
	Fault   string  `json:"fault"`
	Seconds float64 `json:"seconds,omitempty"` // hang and node-loss: how long
}

func (a *Agent) handleFault(w http.ResponseWriter, r *http.Request) {
	if a.o.InjectFault == nil {
		statusJSON(w, http.StatusForbidden, map[string]string{"error": "drill faults are off on this agent: start it with --drill-faults"})
		return
	}
	var req FaultRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		statusJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	hold := time.Duration(req.Seconds * float64(time.Second))
	switch req.Fault {
	case FaultCrash:
	case FaultHang, FaultNodeLoss:
		if hold <= 0 || hold > MaxFaultHold {
			statusJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("%s needs seconds from 0 to %.0f", req.Fault, MaxFaultHold.Seconds())})
			return
		}
	default:
		statusJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("unknown fault %q (known: %s, %s, %s)", req.Fault, FaultCrash, FaultHang, FaultNodeLoss)})
		return
	}
	pm, ok := a.o.PG.PID()
	if !ok {
		statusJSON(w, http.StatusConflict, map[string]string{"error": "PostgreSQL is not running on " + a.o.Self.Name})
		return
	}
	a.log.Warn("drill fault", "fault", req.Fault, "hold", hold, "postmaster", pm)
	act := func() {}
	var err error
	if req.Fault == FaultCrash {
		err = syscall.Kill(pm, syscall.SIGKILL)
	} else {
		act, err = a.o.InjectFault(Fault{Kind: req.Fault, Hold: hold, Agent: syscall.Getpid(), Postmaster: pm})
	}
	if err != nil {
		statusJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	// A helper stops or kills this agent: answer first.
	statusJSON(w, http.StatusAccepted, map[string]string{"fault": req.Fault, "node": a.o.Self.Name})
	http.NewResponseController(w).Flush()
	act()
}
