package main

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// defaultServer is where a local infer serve answers the protocol over
// HTTP: the default of every client command's --server.
const defaultServer = "http://localhost:8000"

// serverURL reads a --server value: a base URL, "http://" assumed when
// no scheme is given, so that host:port works too.
func serverURL(flag, s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("%s %q: want a URL such as %s", flag, s, defaultServer)
	}
	return u, nil
}

// siblingURL is the base URL of another of a server's listeners: the
// same scheme and host, on port (the metrics or admin port).
func siblingURL(u *url.URL, port int) string {
	v := *u
	v.Host = net.JoinHostPort(u.Hostname(), strconv.Itoa(port))
	v.Path, v.RawQuery = "", ""
	return v.String()
}
