package kuairec

// SetChunkSizeForTest sets the matrix reader's chunk size and returns a
// function that restores it (for the external test package).
func SetChunkSizeForTest(n int) (restore func()) {
	old := chunkSize
	chunkSize = n
	return func() { chunkSize = old }
}
