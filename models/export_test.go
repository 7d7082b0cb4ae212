package models

// Internals the external tests drive directly.
var (
	ApplyInTx = apply
	Now       = now
)
