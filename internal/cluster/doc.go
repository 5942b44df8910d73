// Package cluster makes Weir nodes one cache: gossip membership,
// rendezvous key ownership and authenticated peer fill.
//
// A [Ring] maps each cache key to the node that owns it, by rendezvous
// (highest random weight) hashing: every node computes the same owner from
// the same member list, and when a node joins or leaves only the keys it
// gains or loses change owner.
//
// A [Keyring] holds the cluster's shared secrets, read from the key file
// that `weir keygen` writes ([LoadKeyFile]). The first key is the primary:
// it encrypts gossip and signs peer requests; the other keys are still
// accepted, so keys can be rotated without downtime: add the new key
// second on every node, then move it first, then remove the old one.
// Each use gets its own secret derived from a key ([Key.Derive]).
//
// A node asking the key's owner for a response signs the request with
// [SignRequest]; the owner checks it with [VerifyRequest] before serving,
// so only cluster members can fill from each other.
//
// Rings and keyrings are immutable and safe for concurrent use, and
// SignRequest and VerifyRequest take the time as an argument rather than
// reading a clock, so all of them can be tested without a cluster.
package cluster
