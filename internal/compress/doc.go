// Package compress is the edge's content coding of stored bodies: the
// encoders (brotli, zstd, gzip), the compiled per-host policy that says
// which responses are compressed, and the choice of a coding from a
// request's Accept-Encoding (RFC 9110 §12.5.3).
//
// It knows nothing of the store or the request path: the edge asks a
// Policy whether an object may be compressed and which coding a request
// picks, and calls Encode once per object and coding.
package compress
