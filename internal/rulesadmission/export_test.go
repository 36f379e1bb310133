package rulesadmission

import "time"

// SetPoll shortens how often s looks for a missing certificate, for tests.
func SetPoll(s *Server, d time.Duration) { s.poll = d }
