// Package cvfile recognises the files an applicant may attach as a CV (PDF,
// DOCX, ODT and plain text) by their content alone, and cleans the name
// they were sent under. It imports only the standard library.
//
// A file's name and the type its client declared are never trusted to say
// what it is; they are only compared with what the content turns out to be,
// so a file that claims one accepted kind and is another (or none) is told
// apart from a file of a kind Intake does not take at all.
package cvfile
