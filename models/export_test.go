package models

// Internals the external tests drive directly.
var (
	ApplyOrgChangesInTx = applyOrgChanges
	Now                 = now
)
