package s3store

// SetPageSize makes List ask for n keys at a time, to test paging with few
// objects.
func SetPageSize(s *Store, n int) { s.pageSize = n }
