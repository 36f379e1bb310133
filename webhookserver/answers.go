package webhookserver

import (
	"time"

	"k8s.io/apimachinery/pkg/util/cache"

	"github.com/cardplane/cardplane/webhookserver/adapter"
)

// answerCache remembers the answer given to each delivery that carries a provider delivery ID, for as long as
// the provider may repeat it (twice the timestamp tolerance), so a repeated delivery gets the same answer and
// changes nothing. It is bounded: the least recently used answers go first.
type answerCache struct {
	lru *cache.LRUExpireCache
}

func newAnswerCache(size int) *answerCache { return &answerCache{lru: cache.NewLRUExpireCache(size)} }

func (a *answerCache) get(key string) (adapter.Answer, bool) {
	if key == "" {
		return adapter.Answer{}, false
	}
	v, ok := a.lru.Get(key)
	if !ok {
		return adapter.Answer{}, false
	}
	return v.(adapter.Answer), true
}

func (a *answerCache) remember(key string, answer adapter.Answer, ttl time.Duration) {
	if key != "" {
		a.lru.Add(key, answer, ttl)
	}
}
