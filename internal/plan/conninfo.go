package plan

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// pgSecretMsg says where PostgreSQL's password goes instead of the plan.
const pgSecretMsg = "must not hold a password: use a password file (~/.pgpass or PGPASSFILE)"

// checkConnString says what is wrong with a libpq connection string, either
// keyword=value pairs or a postgres:// URL, or "" if nothing is. It checks the
// syntax and that no password is in it; which keywords and values are valid
// is left to libpq. Messages never repeat values.
func checkConnString(s string) string {
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		return checkConnURL(s)
	}
	for s = trimSpace(s); s != ""; s = trimSpace(s) {
		i := strings.IndexAny(s, "= \t\n\r\f\v")
		if i == 0 {
			return `keyword missing before "="`
		}
		key := s
		if i > 0 {
			key = s[:i]
		}
		s = trimSpace(s[len(key):])
		if !strings.HasPrefix(s, "=") {
			return fmt.Sprintf(`missing "=" after %s`, quote(key))
		}
		if strings.EqualFold(key, "password") {
			return pgSecretMsg
		}
		var ok bool
		if s, ok = skipConnValue(trimSpace(s[1:])); !ok {
			return fmt.Sprintf("unterminated quoted value for %s", quote(key))
		}
	}
	return ""
}

func checkConnURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // without the URL
		}
		return fmt.Sprintf("not a valid connection URL: %v", err)
	}
	if _, set := u.User.Password(); set || u.Query().Has("password") {
		return pgSecretMsg
	}
	return ""
}

// skipConnValue skips a value of a keyword=value connection string, quoted
// with ' or not, and returns the rest. It returns false if a quote is not
// closed.
func skipConnValue(s string) (string, bool) {
	quoted := strings.HasPrefix(s, "'")
	start := 0
	if quoted {
		start = 1
	}
	for i := start; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++ // the escaped byte is part of the value
		case quoted && c == '\'':
			return s[i+1:], true
		case !quoted && isConnSpace(c):
			return s[i:], true
		}
	}
	return "", !quoted
}

func trimSpace(s string) string {
	return strings.TrimLeftFunc(s, func(r rune) bool { return r < 0x80 && isConnSpace(byte(r)) })
}

// isConnSpace is libpq's idea of white space in a connection string (C isspace).
func isConnSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\f', '\v':
		return true
	}
	return false
}
