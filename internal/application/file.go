package application

// File is an applicant's CV as it is stored: the content type is the kind
// the server recognised in the bytes, never the one the client declared,
// and the name is only ever used to name the download.
type File struct {
	Filename    string
	ContentType string
	Content     []byte
	SHA256      [32]byte
}

// FileInfo is what an admin sees of a stored CV without its bytes.
type FileInfo struct {
	Filename    string
	ContentType string
	Size        int64
	SHA256      []byte
}
