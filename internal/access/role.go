package access

// Role is what a token may do. viewer reads; admin reads and writes.
type Role string

const (
	RoleViewer Role = "viewer"
	RoleAdmin  Role = "admin"
)

// rank orders the roles; an unknown role ranks below every real one.
func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleAdmin:
		return 2
	default:
		return 0
	}
}

// Valid reports whether r is a role.
func (r Role) Valid() bool { return r.rank() > 0 }

// Allows reports whether a holder of r may do what needs role need; no
// role allows what needs an unknown one.
func (r Role) Allows(need Role) bool { return r.Valid() && need.Valid() && r.rank() >= need.rank() }
