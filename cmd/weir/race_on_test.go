//go:build race

package main

// raceEnabled reports a build with the race detector, whose shadow
// memory makes resident memory no measure of Weir's own.
const raceEnabled = true
