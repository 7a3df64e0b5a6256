package netfault

import (
	"bufio"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// echo serves a line echo on loopback until the test ends.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					c.Write([]byte(line))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func startLink(t *testing.T) *Link {
	t.Helper()
	l, err := Listen("127.0.0.1:0", echo(t))
	if err != nil {
		t.Fatal(err)
	}
	go l.Serve()
	t.Cleanup(func() { l.Close() })
	return l
}

func dial(t *testing.T, l *Link) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", l.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// roundTrip sends a line and reads the echo, waiting at most wait.
func roundTrip(c net.Conn, r *bufio.Reader, wait time.Duration) (string, error) {
	c.SetDeadline(time.Now().Add(wait))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return "", err
	}
	return r.ReadString('\n')
}

// TestLinkCutAndHeal: a cut link is silent, not refusing, for connections
// old and new; healing closes them and relays new ones.
func TestLinkCutAndHeal(t *testing.T) {
	l := startLink(t)
	old, oldR := dial(t, l)
	if got, err := roundTrip(old, oldR, time.Second); err != nil || got != "ping\n" {
		t.Fatalf("before the cut: %q, %v", got, err)
	}

	l.Cut()
	if got, err := roundTrip(old, oldR, 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("an open connection across the cut: %q, %v; want silence (a timeout)", got, err)
	}
	held, heldR := dial(t, l) // accepted: a black hole does not refuse
	if got, err := roundTrip(held, heldR, 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("a new connection across the cut: %q, %v; want silence (a timeout)", got, err)
	}

	l.Heal()
	for name, c := range map[string]net.Conn{"open before the cut": old, "made during the cut": held} {
		c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Read(make([]byte, 16)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("connection %s: not closed by Heal (%v)", name, err)
		}
	}
	c, r := dial(t, l)
	if got, err := roundTrip(c, r, time.Second); err != nil || got != "ping\n" {
		t.Errorf("after Heal: %q, %v", got, err)
	}
}
