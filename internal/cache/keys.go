package cache

import (
	"regexp"
	"strconv"
)

// Every Redis key and channel name this package uses is built here, from the
// namespace and the separator ":". Layout (ns = namespace, v = model version):
//
//	ns:model:pointers           hash {current, previous}: the version pointers
//	ns:model:seq                counter: registration order of versions
//	ns:model:versions           sorted set: version -> registration seq (for GC)
//	ns:model:events             list: the last 1,000 version flips (ModelUpdate JSON; model.go)
//	ns:model:v:meta             string: ModelMeta JSON; written last, marks v complete
//	ns:model:v:items:i          string: item chunk i (ids, biases, vectors)
//	ns:model:v:tower            string: the user-tower weights blob
//	ns:model:v:ufeat            string: the users' model input features (PutUserFeatures)
//	ns:model:v:uoff             string: the chunk count of the offline user vectors; ns:model:v:uoff:i chunk i (offline.go)
//	ns:model:v:newitems         hash video id -> bias and vector: videos registered after training (RegisterItem)
//	ns:model:v:popular          string: Popularity JSON, counts of positive interactions per video (PutPopularity)
//	ns:user:v:uid               string: one UserRecord (binary)
//	ns:served:uid               string: one ServedList (binary), with a TTL
//	ns:watched:uid              string: the user's recent watched videos (uint32 LE each), any model version (PutUsersIfNewer)
//	ns:model-updates            pub/sub channel: ModelUpdate JSON notices
//	ns:marker:name              string: a liveness marker (see Store.SetMarker)
//	ns:slist:id                 hash {r: ServedRecord (binary), w: server time written}: one served list (v2)
//	ns:slist-p:p                sorted set: list id -> serve time, per partition of the interactions topic
//	ns:slist-u:uid              sorted set: list id -> serve time, the user's last ServedPerUser lists
//	ns:eval:g:offsets           hash partition -> next input offset of evaluator group g's windows
//	ns:eval:g:index:k           sorted set: the window indexes of kind k (t: time, n: count)
//	ns:eval:g:w:k:i             hash field -> integer: window i of kind k
//	ns:eval:g:w:k:i:sets        hash: the names of the window's distinct fields
//	ns:eval:g:w:k:i:set:f       set: the members of distinct field f (windows.go's Lua script builds these names)
//	ns:status:kind:member       string: a process's JSON status record, with a TTL (status.go)
//	ns:intake:h                 hash: an intake idempotency record, h = hex SHA-256 of client, 0, key (see BeginIntake)
const (
	keySep = ":"

	segModel    = "model"
	segPointers = "pointers"
	segSeq      = "seq"
	segVersions = "versions"
	segMeta     = "meta"
	segItems    = "items"
	segTower    = "tower"
	segUFeat    = "ufeat"
	segPopular  = "popular"
	segNewItems = "newitems"
	segUser     = "user"
	segServed   = "served"
	segWatched  = "watched"
	segSeen     = "seen"
	segMarker   = "marker"
	segEval     = "eval"
	segSList    = "slist"
	segIntake   = "intake"

	channelModelUpdates = "model-updates"

	fieldCurrent  = "current"
	fieldPrevious = "previous"
)

// DefaultNamespace is the key prefix used in production.
const DefaultNamespace = "streamrec"

// namePattern restricts namespaces and model versions: no separator and no
// glob metacharacters, so that SCAN MATCH patterns built from them are exact.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// keys builds key names for one namespace.
type keys struct{ ns string }

func (k keys) pointers() string { return k.ns + keySep + segModel + keySep + segPointers }
func (k keys) seq() string      { return k.ns + keySep + segModel + keySep + segSeq }
func (k keys) versions() string { return k.ns + keySep + segModel + keySep + segVersions }

func (k keys) modelPrefix(v string) string  { return k.ns + keySep + segModel + keySep + v + keySep }
func (k keys) meta(v string) string         { return k.modelPrefix(v) + segMeta }
func (k keys) tower(v string) string        { return k.modelPrefix(v) + segTower }
func (k keys) userFeatures(v string) string { return k.modelPrefix(v) + segUFeat }
func (k keys) popularity(v string) string   { return k.modelPrefix(v) + segPopular }
func (k keys) newItems(v string) string     { return k.modelPrefix(v) + segNewItems }
func (k keys) itemChunk(v string, i int) string {
	return k.modelPrefix(v) + segItems + keySep + strconv.Itoa(i)
}

// modelPattern matches every key of version v's model data.
func (k keys) modelPattern(v string) string { return k.modelPrefix(v) + "*" }

func (k keys) userPrefix(v string) string { return k.ns + keySep + segUser + keySep + v + keySep }
func (k keys) user(v string, uid uint32) string {
	return k.userPrefix(v) + strconv.FormatUint(uint64(uid), 10)
}

// userPattern matches every user record of version v.
func (k keys) userPattern(v string) string { return k.userPrefix(v) + "*" }

func (k keys) served(uid uint32) string {
	return k.ns + keySep + segServed + keySep + strconv.FormatUint(uint64(uid), 10)
}

func (k keys) watched(uid uint32) string {
	return k.ns + keySep + segWatched + keySep + strconv.FormatUint(uint64(uid), 10)
}

func (k keys) seen(uid uint32) string {
	return k.ns + keySep + segSeen + keySep + strconv.FormatUint(uint64(uid), 10)
}

func (k keys) marker(name string) string { return k.ns + keySep + segMarker + keySep + name }

func (k keys) modelUpdates() string { return k.ns + keySep + channelModelUpdates }

// namespacePattern matches every key of the namespace (tests use it to clean up).
func (k keys) namespacePattern() string { return k.ns + keySep + "*" }

func (k keys) evalPrefix(group string) string {
	return k.ns + keySep + segEval + keySep + group + keySep
}
func (k keys) windowOffsets(group string) string { return k.evalPrefix(group) + "offsets" }
func (k keys) windowIndex(group string, kind byte) string {
	return k.evalPrefix(group) + "index" + keySep + string(kind)
}

// windowPrefix is the prefix the window script appends "kind:index" to.
func (k keys) windowPrefix(group string) string { return k.evalPrefix(group) + "w" + keySep }
func (k keys) window(group string, kind byte, index int64) string {
	return k.windowPrefix(group) + string(kind) + keySep + strconv.FormatInt(index, 10)
}

func (k keys) servedList(id string) string { return k.ns + keySep + segSList + keySep + id }
func (k keys) servedByPartition(p int32) string {
	return k.ns + keySep + segSList + "-p" + keySep + strconv.FormatInt(int64(p), 10)
}
func (k keys) servedByUser(uid uint32) string {
	return k.ns + keySep + segSList + "-u" + keySep + strconv.FormatUint(uint64(uid), 10)
}
