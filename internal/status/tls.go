package status

import (
	"github.com/weir-cdn/weir/internal/certs"
	"github.com/weir-cdn/weir/internal/h2"
)

// TLS is the /status document's tls section: the TLS edge listener's
// certificates, handshakes, session tickets and HTTP/2 counters, and the
// admin and peer listeners' certificates when they serve TLS.
type TLS struct {
	// Listener is the TLS edge listener's address; "" without one.
	Listener string `json:"listener,omitempty"`
	// Certificates are the edge's pairs, each with its expiry and last
	// reload error (the previous pair is served while there is one).
	Certificates []certs.Status `json:"certificates,omitempty"`
	// Handshakes count the edge's completed handshakes.
	Handshakes struct {
		Full    int64 `json:"full"`
		Resumed int64 `json:"resumed"`
	} `json:"handshakes"`
	// SessionTickets says how the ticket keys are made: shared by every
	// edge holding the cluster key file, or this process's own.
	SessionTickets struct {
		Shared   bool   `json:"shared_with_cluster"`
		Rotation string `json:"rotation"`
		Epoch    int64  `json:"epoch"`
	} `json:"session_tickets"`
	// HTTP2 are the edge's HTTP/2 counters, when it offers h2.
	HTTP2 *h2.Stats `json:"http2,omitempty"`
	// Admin and Peer are the admin and peer listeners' certificates.
	Admin []certs.Status `json:"admin_certificates,omitempty"`
	Peer  []certs.Status `json:"peer_certificates,omitempty"`
}
