package mautic

// queries holds SQL text built once per prefix.
type queries struct{}

func buildQueries(prefix string) queries { return queries{} }
