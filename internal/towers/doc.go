// Package towers is the two-tower model library of streamrec: parameters,
// forward and backward passes, losses, optimisers, the offline trainer, offline
// evaluation helpers, the versioned binary model file and the accessors that the
// cache and the updater use to publish and apply the model.
//
// Two models live here:
//
//   - "seed": the named baseline reproduced from the seed notebook. User and item
//     towers Dense 128-64-64 with ReLU, dropout 0.3 and L2 normalisation, a
//     combination MLP 128-64-32-1 over the concatenated tower outputs, MSE on
//     watch ratio, Adam lr 0.001, batch 512, early stopping with patience 5.
//     Its score is not an inner product, so it cannot serve top-K by a vector
//     search; it is kept to be compared against.
//
//   - "twotower": the serving model. Both towers map features to a D-dimensional
//     vector (D = 64 by default), to which a per-user learned vector (user side)
//     and a per-item learned vector (item side, zero for videos unseen in
//     training) are added:
//
//     a_u = T_u(x_u) + p_u        a_i = T_i(x_i) + q_i        (both in R^D)
//
//     The last coordinate of each is a bias. The exported embeddings are
//
//     e_u = [s * a_u[0:D-1], 1]   e_i = a_i
//
//     so that score(u, i) = <e_u, e_i> = s * <a_u[:D-1], a_i[:D-1]> + a_i[D-1]
//     and the calibrated watch-ratio prediction is
//
//     pred(u, i) = mu + a_u[D-1] + <e_u, e_i>
//
//     with mu the (capped) training mean of watch ratio, s a learned scale, and
//     a_u[D-1], a_i[D-1] the user and item biases. For a fixed user, ranking by
//     the inner product <e_u, e_i> is exactly ranking by predicted watch ratio,
//     so top-K over cached item embeddings is an exact maximum-inner-product
//     search. See OnlineStep for the per-event update the updater applies.
//
// Conventions (after gonum): results are written into a destination argument or
// the receiver; a shape mismatch is a programmer error and panics; errors are
// returned only for data-dependent failures (I/O, corrupt files, bad inputs).
// All randomness comes from an explicit *rand.Rand (math/rand/v2 PCG), so that
// training is deterministic for a given seed and worker count.
//
// Numbers are float64 during training (gonum BLAS kernels) and float32 at the
// serving boundary (exported embeddings, tower weights, OnlineStep).
package towers
