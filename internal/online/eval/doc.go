// Package eval is the online evaluator's core: it joins each interaction to
// the list that was open for its user when the interaction was produced, and
// turns the joins into window increments. It is pure (no Kafka, no Redis, no
// clock of its own): the caller feeds served lists and interactions, advances
// the evaluator's clock, and applies the increments it returns (in-process
// with Windows, or atomically to a shared store).
//
// # The join
//
// A list is open from its serve time until the same user's next list is
// served or OpenFor has passed (Config.OpenFor, default 30 min), whichever is
// first; then it closes. An interaction produced at p joins the user's list
// whose open interval contains p. Lists are written asynchronously, so an
// interaction waits Config.Grace after p (on the evaluator's clock) before it
// is joined, and a list is finalised only Grace after it closed: a list that
// reaches the evaluator later than Grace after its serve time is counted as
// late (late_lists) and ignored. Interactions are de-duplicated by (user,
// event id) within a bounded ring per user (Config.DedupRing) and Keep of
// produce time.
//
// # Metrics (names as in Increment.Field)
//
// Per interaction (in the window of its produce time):
//   - interactions, joined (an open list existed), hits (its video was in that
//     list): hit rate@K = hits / interactions;
//   - abs_err_u: |predicted - observed| watch ratio of each hit, in integer
//     micro-units (1e-6), with abs_err_n the number of terms;
//   - no_list: interactions with no open list; of those, preq_n, preq_abs_err_u
//     (the prequential error under the user vector of the user's last list,
//     which predates the event) and, 1 in Config.RankEvery, preq_rank_n and
//     preq_rank_sum (the watched video's rank under that vector, 1 = top);
//   - duplicates (dropped), late_lists, stale_interactions (more than Keep
//     behind the clock on arrival: not joined), late_interactions (joined to
//     a list already finalised: they count for the hit rate only).
//
// Per closed list (in the window of its serve time), with K its length and a
// served video's gain its first observed watch ratio after the serve (0 when
// unwatched):
//   - lists, and at each label L in {0.8: watch_ratio >= 0.8, 2: > 2.0}:
//     prec{L}_u, the micro-unit sum of precision@K = relevant slots / K;
//     ndcg{L}_u and ndcg{L}_n, binary NDCG@K over lists with at least one
//     relevant slot (ndcg{L}_none counts the others);
//   - ndcg_graded_u and ndcg_graded_n: NDCG@K with the observed watch ratios as
//     gains (ideal order: the same gains sorted), over lists with a watched slot;
//   - served_slots, pop_pct_u: the micro-unit sum of the served videos'
//     popularity percentiles (Config.Popularity; mean popularity of what is
//     served), and coverage: distinct videos served in the window (counted once
//     per window and video, Increment.Distinct) over Config.Catalogue.
//
// The frozen twin (Config.Twin: the list version's offline user vectors as
// training published them, never updated online), on every joined
// interaction of a list with a user vector, beside the live model (that
// list's scored vector):
//   - twin_n, live_abs_err_u and twin_abs_err_u: both absolute errors of the
//     predicted watch ratio, on the same interactions;
//   - 1 in RankEvery (by a hash of user and event id, so that processing
//     again after a restart samples the same ones): twin_rank_n,
//     live_rank_sum and twin_rank_sum, the watched video's rank among the
//     list's candidates under each, and live_rank_top and twin_rank_top,
//     whether that rank is within the list's K.
//
// Feedback-to-effect (lists record the input position of their embedding):
// an interaction's latency is from its produce time to the serve time of the
// first list of its user whose embedding includes it (the interaction's
// offset below the list's InputNext); f2e_n, f2e_sum_ms and a histogram
// f2e_le_<ms> over F2EBucketsMS (1 ms to 60 s) and f2e_le_inf, in the window
// of the interaction's produce time. A latency beyond Keep is not counted,
// and at most 64 interactions per user wait for their list.
//
// Every per-interaction field is also counted per source (field + "|source=" +
// replay, api or simulator) and every field of a joined interaction and of a
// closed list per fallback kind (field + "|fallback=" + none, feature_tower or
// popularity).
//
// # Exactly once, across replicas and restarts
//
// Partition evaluates one partition of the interactions topic as a
// deterministic function of its messages and of the served-list log: its
// clock is the partition's watermark (the largest produce time seen), lists
// are loaded once the watermark has passed their serve time by Grace, and a
// list is valid only if the log received it within Grace of its serve time
// (the log records the Redis server time of each write). Runner applies each
// batch's increments, coalesced, together with the offsets they cover, the
// watermark and a resume offset, in one Lua script (cache.Store.ApplyWindows):
// a batch the store already recorded is skipped, one that does not continue
// the recorded offsets is refused. A runner that restarts (after kill -9, a
// rebalance, a Redis outage) reads the recorded position, processes again
// from the resume offset (the first message produced within Keep = OpenFor +
// 2 Grace of the watermark) to rebuild the open lists, the duplicate rings and
// the pending interactions, drops the increments of the offsets already
// applied, and goes on: the windows are exactly those of an uninterrupted run
// (tests: TestPartitionRestartIsExact, TestRunnerExactlyOnceAcrossRestarts,
// TestRunnerGroupRebalance, and cmd/api's TestOnlineEvaluationSurvivesKill9).
// Partitions are assigned statically (RunnerConfig.Partitions) or by a Kafka
// consumer group (KafkaGroup), which only assigns: positions live with the
// windows.
//
// Limits, by construction: an interaction produced more than Keep before the
// watermark is counted as stale_interactions and not joined; duplicates are
// recognised within Keep; a quiet partition's watermark does not move, so its
// last lists close when traffic resumes; the prequential metrics use the live
// item index, so a model switch between a run and its replay can change them.
//
// # Windows
//
// A window is a span of produce time (Config.Window, default 1 min; never the
// 2020 event time of a replayed event) or a count of interactions
// (Config.CountWindow): with Partition, the increments produced while
// processing offset o fall in count window o / CountWindow of every
// partition (deterministic, so that replicas and restarts agree); a bare
// Evaluator counts the interactions it processed instead. Counts are exact integers; sums are integer
// micro-units, so that increments from several replicas add up exactly.
package eval
