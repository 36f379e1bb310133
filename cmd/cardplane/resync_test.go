package main

import (
	"testing"

	"github.com/cardplane/cardplane/controllers"
)

// TestResyncComesBeforeRetentionRecheck: a transaction whose deletion is not in the work queue is reconciled
// again by the resync (with its 10% jitter) before it is due.
func TestResyncComesBeforeRetentionRecheck(t *testing.T) {
	if cacheResync*11/10 >= controllers.RetentionRecheck {
		t.Errorf("resync every %s (+10%%) is not sooner than the retention recheck horizon %s", cacheResync, controllers.RetentionRecheck)
	}
}
