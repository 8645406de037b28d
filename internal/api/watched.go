package api

import (
	"container/list"
	"sync"
)

// watchedSet keeps, per user, the most recent distinct videos the user
// interacted with through this API process, bounded twice: at most perUser
// videos per user (the oldest dropped) and at most maxUsers users (the least
// recently updated dropped). It is in-process: interactions that reach Kafka
// another way (replay, another API replica) are not in it, and it is empty
// after a restart. Safe for concurrent use; sharded to keep lock contention low.
type watchedSet struct {
	shards  [watchedShards]watchedShard
	perUser int
}

const watchedShards = 32

type watchedShard struct {
	mu       sync.Mutex
	users    map[uint32]*list.Element // of *watchedUser
	lru      *list.List               // front = most recently updated
	maxUsers int
}

type watchedUser struct {
	id     uint32
	videos []uint32 // ring buffer, len <= perUser
	next   int      // next slot to overwrite once full
}

func newWatchedSet(maxUsers, perUser int) *watchedSet {
	w := &watchedSet{perUser: perUser}
	per := max(1, (maxUsers+watchedShards-1)/watchedShards)
	for i := range w.shards {
		w.shards[i] = watchedShard{users: map[uint32]*list.Element{}, lru: list.New(), maxUsers: per}
	}
	return w
}

func (w *watchedSet) shard(user uint32) *watchedShard {
	return &w.shards[(user*2654435761)>>27%watchedShards]
}

// Add records that user watched video.
func (w *watchedSet) Add(user, video uint32) {
	sh := w.shard(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	el, ok := sh.users[user]
	if !ok {
		if sh.lru.Len() >= sh.maxUsers {
			old := sh.lru.Back()
			sh.lru.Remove(old)
			delete(sh.users, old.Value.(*watchedUser).id)
		}
		el = sh.lru.PushFront(&watchedUser{id: user, videos: make([]uint32, 0, min(w.perUser, 16))})
		sh.users[user] = el
	} else {
		sh.lru.MoveToFront(el)
	}
	u := el.Value.(*watchedUser)
	for _, v := range u.videos {
		if v == video {
			return
		}
	}
	if len(u.videos) < w.perUser {
		u.videos = append(u.videos, video)
		return
	}
	u.videos[u.next] = video
	u.next = (u.next + 1) % w.perUser
}

// Get appends user's recent videos to dst (in no particular order).
func (w *watchedSet) Get(user uint32, dst []uint32) []uint32 {
	sh := w.shard(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if el, ok := sh.users[user]; ok {
		dst = append(dst, el.Value.(*watchedUser).videos...)
	}
	return dst
}
