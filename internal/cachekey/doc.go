// Package cachekey turns a request into the key its response is cached
// under, following a host's normalization Rules.
//
// A key has two parts. The primary key is a URL,
// "scheme://host/path?query", normalized so that requests an origin
// answers identically share one cache entry: scheme and host are
// lower-cased, default ports and a trailing dot are removed,
// percent-encodings are put in normal form (RFC 3986 §6.2.2), and query
// parameters are filtered and sorted. The extra part, present only when
// Rules name headers or cookies, holds those request values, so that for
// example a mobile and a desktop variant are cached apart.
//
// Normalization never merges requests that an origin may treat
// differently: dot-segments are kept ("/a/../b" is not "/b"), and a query
// parameter is left out of the key only when it is also left out of the
// request sent to the origin (see [Normalizer.ForwardQuery]), so a
// dropped parameter can never change a cached response.
//
// A [Normalizer] is immutable once compiled and safe for concurrent use.
// Its Append methods write into a caller-supplied buffer and do not
// allocate in the common case, since they run on every request.
package cachekey
