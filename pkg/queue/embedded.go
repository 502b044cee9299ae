package queue

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedOptions configure a NATS server run inside infer.
type EmbeddedOptions struct {
	// Host and Port are its client address (Port 0: DefaultNATSPort; -1:
	// any free port).
	Host string
	Port int
	// StateDir keeps JetStream's streams on disk under StateDir/jetstream,
	// across restarts; empty keeps them in memory, lost at exit.
	StateDir string
	// MaxPayload bounds one message, in bytes (0: DefaultMaxPayload).
	MaxPayload int32
}

// DefaultNATSPort is NATS's own client port.
const DefaultNATSPort = 4222

// DefaultMaxPayload bounds an embedded server's message, in bytes: NATS
// advises at most 8 MiB.
const DefaultMaxPayload = 8 << 20

// Embedded is a NATS server with JetStream inside this process.
type Embedded struct {
	srv    *server.Server
	url    string
	memory bool
	temp   string
}

// StartEmbedded starts a NATS server with JetStream and waits until it
// takes connections (10 s at most).
func StartEmbedded(o EmbeddedOptions) (*Embedded, error) {
	if o.Port == 0 {
		o.Port = DefaultNATSPort
	}
	if o.MaxPayload == 0 {
		o.MaxPayload = DefaultMaxPayload
	}
	e := &Embedded{memory: o.StateDir == ""}
	dir := filepath.Join(o.StateDir, "jetstream")
	if e.memory {
		// JetStream wants a folder even for streams kept in memory.
		var err error
		if e.temp, err = os.MkdirTemp("", "infer-nats-"); err != nil {
			return nil, err
		}
		dir = e.temp
	}
	srv, err := server.NewServer(&server.Options{ServerName: "infer", Host: o.Host, Port: o.Port, JetStream: true, StoreDir: dir,
		MaxPayload: o.MaxPayload, NoSigs: true, NoLog: true})
	if err != nil {
		e.cleanup()
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		e.cleanup()
		return nil, fmt.Errorf("embedded NATS server on %s: not ready within 10s (port in use?)", net.JoinHostPort(o.Host, strconv.Itoa(o.Port)))
	}
	e.srv = srv
	e.url = srv.ClientURL()
	return e, nil
}

// URL is the broker URL clients and the front end connect to, with
// storage=memory when the server keeps no state on disk.
func (e *Embedded) URL() string {
	if e.memory {
		return e.url + "?storage=memory"
	}
	return e.url
}

// Addr is the client address, host:port.
func (e *Embedded) Addr() string { return e.srv.Addr().String() }

// Shutdown stops the server, its streams flushed to disk.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	e.cleanup()
}

func (e *Embedded) cleanup() {
	if e.temp != "" {
		os.RemoveAll(e.temp)
	}
}
