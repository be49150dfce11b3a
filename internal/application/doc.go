// Package application is Intake's domain: postings, applications, the rules
// an application must satisfy, and the errors the rest of the system speaks
// in. It imports nothing but the standard library, so every other package can
// depend on it and it depends on none of them.
package application
