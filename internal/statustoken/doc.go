// Package statustoken makes and checks the applicant's status token, the
// capability in a status link. A token is an HMAC-SHA256 of the application
// id under a server secret (INTAKE_STATUS_SECRET), so it is stored nowhere:
// the API, which hands it out in status_url and the form's redirect, and the
// worker, which puts it in the confirmation email, derive the same token
// from the id. A previous secret can be kept for checking while the secret
// is rotated; it never mints. Standard library only.
package statustoken
