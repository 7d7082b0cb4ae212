package clerkapi

// ParseEventGeneral is ParseEvent without its one-pass path, and
// ParseUserEvent that path alone.
var (
	ParseEventGeneral = parseEvent
	ParseUserEvent    = parseUserEvent
)
